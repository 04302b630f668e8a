"""The convolution explorer of lecture 02: slide a window over an input and watch the output fill in.

:func:`explore_convolution` shows, for a setting of input size, channels, kernel size, stride, padding and number
of filters, the output shape, the number of parameters and of multiplications, and a step-through of the window
over the output positions. Shapes, parameter counts and output values come from real Keras layers
(``keras.layers.Conv2D``, and ``keras.layers.ZeroPadding2D`` for explicit padding): this module holds no
convolution code and no parameter formula. Its one formula, :func:`output_size`, only spots a kernel that does not
fit: such a setting gets an empty output from NumPy without asking Keras or TensorFlow, which refuse the layer
(Keras) or may crash the process on an empty output (TensorFlow's oneDNN kernels, SIGFPE).

The drawing functions (:func:`draw_step`, :func:`draw_static`) need only Matplotlib and Keras, not a running
kernel or ipywidgets, so the static figure is drawn the same way in a book build and in a test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

PADDING_CHOICES = ("valid", "same", "0", "1", "2", "3")


def output_size(n: int, window: int, stride: int, padding: str = "valid") -> int:
    """Output positions of a ``window`` sliding by ``stride`` over ``n`` cells (explorers of lectures 02 and 03).

    ``'valid'``: ``floor((n - window) / stride) + 1``, or 0 when the window is larger than the input; ``'same'``:
    ``ceil(n / stride)``. The explorers call it only to recognise an empty output before TensorFlow sees it.
    """
    if padding == "same":
        return -(-int(n) // int(stride))
    if padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return (int(n) - int(window)) // int(stride) + 1 if n >= window else 0


@dataclass(frozen=True)
class ConvSetting:
    """One configuration of a 2-D convolution layer on a square input (batch of one image)."""

    input_size: int = 7
    channels: int = 1
    kernel_size: int = 3
    stride: int = 2
    padding: str | int = 1  # 'valid', 'same', or an explicit number of zero rows/columns on every side
    filters: int = 1
    seed: int = 0

    def padding_label(self) -> str:
        if isinstance(self.padding, str) and not self.padding.isdigit():
            return f"'{self.padding}'"
        return f"{int(self.padding)} (explicit zeros)"


@dataclass
class ConvResult:
    """What Keras says about a :class:`ConvSetting`, plus the example numbers the figures show."""

    setting: ConvSetting
    inputs: np.ndarray  # (n, n, c) small integers
    kernel: np.ndarray  # (k, k, c, f) in {-1, 0, 1}
    padded_shape: tuple  # shape Conv2D sees: (1, n', n', c)
    output_shape: tuple  # (1, h, w, f); (1, 0, 0, f) when the kernel does not fit
    params: int  # weights and biases of the Conv2D layer (0 when the kernel does not fit)
    multiplications: int  # output values times weights per output value
    offset: int  # zero rows/columns before the input (top and left) in the padded view
    padded: np.ndarray  # (n', n', c): the input inside its zero border, as the windows see it
    outputs: np.ndarray  # (h, w, f) computed by Keras; an empty array from NumPy when the kernel does not fit
    error: str = ""  # why there is no output, when there is none

    @property
    def positions(self) -> int:
        return int(self.output_shape[1] * self.output_shape[2])


def _explicit_padding(padding) -> int | None:
    if isinstance(padding, (int, np.integer)):
        return int(padding)
    if isinstance(padding, str) and padding.isdigit():
        return int(padding)
    if padding in ("valid", "same"):
        return None
    raise ValueError(f"padding must be 'valid', 'same' or a non-negative integer, got {padding!r}")


def compute(setting: ConvSetting) -> ConvResult:
    """Build the Keras layers for ``setting``, ask them for shapes and parameters, and run them on an example.

    A kernel larger than the (padded) input has no output position: the result then has an empty output of shape
    ``(0, 0, filters)`` made by NumPy, and neither Keras nor TensorFlow is called.
    """
    n, c, k, s, f = setting.input_size, setting.channels, setting.kernel_size, setting.stride, setting.filters
    rng = np.random.default_rng(setting.seed)
    inputs = rng.integers(0, 10, size=(n, n, c)).astype("float32")
    kernel = rng.integers(-1, 2, size=(k, k, c, f)).astype("float32")
    explicit = _explicit_padding(setting.padding)
    if explicit is not None:
        seen = n + 2 * explicit
        out = output_size(seen, k, s, "valid")
    else:
        seen = n
        out = output_size(n, k, s, setting.padding)
    if out == 0:
        offset = explicit or 0
        padded = np.pad(inputs, ((offset, offset), (offset, offset), (0, 0)))
        message = f"a {k}x{k} kernel does not fit in the {seen}x{seen} padded input: no output"
        message += " (Keras refuses this layer)"
        return ConvResult(setting, inputs, kernel, (1, seen, seen, c), (1, 0, 0, f), 0, 0, offset, padded,
                          np.zeros((0, 0, f), dtype="float32"), message)  # fmt: skip

    import keras

    input_shape = (1, n, n, c)
    x = inputs[None]
    if explicit is not None:
        pad_layer = keras.layers.ZeroPadding2D(explicit)
        padded_shape = tuple(pad_layer.compute_output_shape(input_shape))
        x = pad_layer(x)
        conv = keras.layers.Conv2D(f, k, strides=s, padding="valid")
    else:
        padded_shape = input_shape
        conv = keras.layers.Conv2D(f, k, strides=s, padding=setting.padding)
    output_shape = tuple(int(d) for d in conv.compute_output_shape(padded_shape))
    conv.build(padded_shape)
    params = int(conv.count_params())
    conv.set_weights([kernel, np.zeros(f, dtype="float32")])
    outputs = np.asarray(conv(x))[0]
    weights_per_output = int(np.prod(conv.kernel.shape[:-1]))
    multiplications = int(np.prod(output_shape[1:])) * weights_per_output
    if explicit is not None:
        before = after = explicit
    else:
        # Where the windows sit: Keras/TensorFlow split the zeros that 'same' needs, the smaller half before.
        overhang = max((output_shape[1] - 1) * s + k - n, 0)
        before, after = overhang // 2, overhang - overhang // 2
    padded = np.pad(inputs, ((before, after), (before, after), (0, 0)))
    return ConvResult(setting, inputs, kernel, padded_shape, output_shape, params, multiplications, before,
                      padded, outputs)  # fmt: skip


def describe(result: ConvResult) -> str:
    """A short text with the setting, output shape, parameters and multiplications (from Keras)."""
    st = result.setting
    head = (
        f"input {st.input_size}x{st.input_size}x{st.channels}, {st.filters} filter(s) of "
        f"{st.kernel_size}x{st.kernel_size}x{st.channels}, stride {st.stride}, padding {st.padding_label()}"
    )
    if result.positions == 0:
        return f"{head}\n{result.error}"
    _, h, w, f = result.output_shape
    per = st.kernel_size * st.kernel_size * st.channels
    return (
        f"{head}\noutput {h}x{w}x{f}  |  parameters {result.params:,} (Keras count_params)  |  "
        f"multiplications {result.multiplications:,} ({h * w * f} outputs x {per} each)"
    )


def _draw_grid(ax, values, *, inside=None, window=None, highlight_color="tab:orange", title="", cmap="Blues"):
    """Draw a grid of numbers; cells outside the slice pair ``inside`` are padding (grey zeros)."""
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=float)
    rows, cols = values.shape
    real = np.zeros_like(values, dtype=bool)
    if inside is None:
        real[:] = True
    else:
        real[inside] = True
    shown = np.where(real, values, np.nan)
    low, high = (np.nanmin(shown), np.nanmax(shown)) if real.any() else (0.0, 1.0)
    ax.imshow(np.where(real, np.nan, 0.0), cmap="Greys", vmin=-1, vmax=3)
    ax.imshow(shown, cmap=cmap, vmin=low - 0.6 * (high - low + 1), vmax=high + 0.6 * (high - low + 1))
    largest = max(rows, cols)
    fontsize = 9 if largest <= 9 else (7 if largest <= 13 else 5)
    for (r, c), v in np.ndenumerate(values):
        ax.text(
            c, r, f"{v:g}", ha="center", va="center", fontsize=fontsize, color="black" if real[r, c] else "0.45"
        )
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if window is not None:
        r0, c0, size = window
        ax.add_patch(
            Rectangle((c0 - 0.5, r0 - 0.5), size, size, fill=False, edgecolor=highlight_color, linewidth=3)
        )
    if title:
        ax.set_title(title, fontsize=9)


def window_at(result: ConvResult, position: int) -> tuple[int, int, int, int]:
    """Output row and column of ``position`` (row-major) and the top-left corner of its window (padded input)."""
    _, _, w, _ = result.output_shape
    i, j = divmod(int(position), w)
    return i, j, i * result.setting.stride, j * result.setting.stride


def draw_step(result: ConvResult, position: int, axes=None, *, filter_index: int = 0):
    """Draw the padded input (channel 0) with the window of output ``position``, and the output map.

    Returns the figure. ``axes`` is a pair (input axis, output axis) to draw into, or None for a new figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.4), gridspec_kw={"width_ratios": [1.5, 1]})
    else:
        fig = axes[0].figure
    ax_in, ax_out = axes
    st = result.setting
    n, b = st.input_size, result.offset
    inside = (slice(b, b + n), slice(b, b + n))
    if result.positions == 0:  # the kernel does not fit: the input, and an empty output with the reason
        _draw_grid(ax_in, result.padded[..., 0], inside=inside, title="input (channel 0)")
        ax_out.axis("off")
        k, seen = st.kernel_size, result.padded.shape[0]
        ax_out.set_title("output 0x0 (kernel does not fit)", fontsize=9)
        ax_out.text(0.5, 0.5, f"no output: the {k}x{k} kernel\nis larger than the\n{seen}x{seen} padded input\n"
                    "(Keras refuses this layer)", ha="center", va="center", fontsize=9)  # fmt: skip
        return fig
    _, h, w, _ = result.output_shape
    i, j, r0, c0 = window_at(result, int(np.clip(position, 0, h * w - 1)))
    k = st.kernel_size
    value = result.outputs[i, j, filter_index]
    channel_note = f"channel 0 of {st.channels}, " if st.channels > 1 else ""
    _draw_grid(ax_in, result.padded[..., 0], inside=inside, window=(r0, c0, k),
               title=f"input ({channel_note}padding in grey)")  # fmt: skip
    _draw_grid(ax_out, result.outputs[..., filter_index], window=(i, j, 1), highlight_color="tab:red",
               cmap="Oranges", title=f"output map {filter_index + 1} of {st.filters} ({h}x{w})")  # fmt: skip
    if st.channels == 1 and k <= 3:
        patch = result.padded[r0 : r0 + k, c0 : c0 + k, 0]
        weights = result.kernel[..., 0, filter_index]
        terms = [f"{a:g}*{wt:g}" for a, wt in zip(patch.ravel(), weights.ravel())]
        caption = " + ".join(" + ".join(terms[r * k : r * k + k]) + ("\n" if r < k - 1 else "") for r in range(k))
        caption = caption.replace("\n + ", " +\n") + f" = {value:g}"
    else:
        caption = f"{k}x{k}x{st.channels} = {k * k * st.channels} products (window x filter), summed: {value:g}"
    ax_in.set_xlabel(caption, fontsize=7)
    ax_out.set_xlabel(f"output ({i}, {j}) = {value:g}", fontsize=9)
    return fig


STATIC_SETTING = ConvSetting(input_size=7, channels=1, kernel_size=3, stride=2, padding=1, filters=1, seed=2)


EXPLANATION = (
    "Each output value is the\nsum of the products of the\nkernel with the window\n"
    "(orange). The window moves\n{stride} cells per step; grey\nzeros are the padding."
)


def draw_static(setting: ConvSetting = STATIC_SETTING, positions=(0, 1, 5, 15), *, narrow: bool = False):
    """The explorer's static figure: the kernel, the output map and the window at a few output positions.

    ``narrow=True`` stacks the same panels two by two for a phone's screen (see :mod:`cnnbook.widgets`).
    """
    import matplotlib.pyplot as plt

    result = compute(setting)
    positions = [p for p in positions if p < result.positions] or [0]
    if narrow:
        return _draw_static_narrow(result, positions)
    ncols = len(positions) + 1
    width = 2.1 * ncols if result.positions else 7.0  # no output: room for the two-line title
    fig, axes = plt.subplots(2, ncols, figsize=(width, 5.8), gridspec_kw={"height_ratios": [1.25, 1]})
    fig.suptitle(describe(result), fontsize=9)
    k = setting.kernel_size
    _draw_grid(axes[1, 0], result.kernel[..., 0, 0], cmap="Purples", title=f"kernel {k}x{k}")
    axes[0, 0].axis("off")
    axes[0, 0].text(0.02, 0.5, EXPLANATION.format(stride=setting.stride), fontsize=8, va="center")
    for col, position in enumerate(positions, start=1):
        _draw_position(result, position, axes[0, col], axes[1, col])
    fig.tight_layout()
    return fig


def _draw_position(result: ConvResult, position: int, ax_in, ax_out) -> None:
    """One step of the static figure: the window on the input above, the output map below."""
    draw_step(result, position, axes=(ax_in, ax_out))
    if result.positions:  # else draw_step's titles say that the kernel does not fit
        ax_in.xaxis.label.set_fontsize(8)  # the sum, readable at the page's width
        ax_in.set_title(f"step {position + 1} of {result.positions}", fontsize=9)
        ax_out.set_title("output map", fontsize=8)


def _draw_static_narrow(result: ConvResult, positions: list[int]):
    """The static figure for a phone: steps two by two (window on the input, output map below), then the kernel."""
    import textwrap

    import matplotlib.pyplot as plt

    pairs = [positions[i : i + 2] for i in range(0, len(positions), 2)]
    heights = [1.35, 0.85] * len(pairs) + [0.85]
    fig, axes = plt.subplots(len(heights), 2, figsize=(3.8, 2.1 * sum(heights) + 0.9),
                             gridspec_kw={"height_ratios": heights})  # fmt: skip
    lines = describe(result).replace("  |  ", "\n").splitlines()
    fig.suptitle("\n".join(textwrap.fill(line, 50) for line in lines), fontsize=8)
    for row, pair in enumerate(pairs):
        for col in range(2):
            ax_in, ax_out = axes[2 * row, col], axes[2 * row + 1, col]
            if col < len(pair):
                _draw_position(result, pair[col], ax_in, ax_out)
            else:
                ax_in.axis("off")
                ax_out.axis("off")
    k = result.setting.kernel_size
    _draw_grid(axes[-1, 0], result.kernel[..., 0, 0], cmap="Purples", title=f"kernel {k}x{k}")
    axes[-1, 1].axis("off")
    axes[-1, 1].text(0.0, 0.5, EXPLANATION.format(stride=result.setting.stride), fontsize=7.5, va="center")
    fig.tight_layout()
    return fig


def build_live(initial: ConvSetting = STATIC_SETTING):
    """The live explorer: sliders for the setting, a Play/slider step-through and the drawing."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    style = {"description_width": "110px"}
    size = w.IntSlider(initial.input_size, 3, 12, description="input size", style=style)
    channels = w.IntSlider(initial.channels, 1, 4, description="channels", style=style)
    kernel = w.IntSlider(initial.kernel_size, 1, 7, description="kernel size", style=style)
    stride = w.IntSlider(initial.stride, 1, 4, description="stride", style=style)
    padding = w.Dropdown(options=PADDING_CHOICES, value=str(initial.padding), description="padding", style=style)
    filters = w.IntSlider(initial.filters, 1, 8, description="filters", style=style)
    step = w.IntSlider(0, 0, 0, description="output position", style=style)
    play = w.Play(value=0, min=0, max=0, interval=700, description="play")
    w.jslink((play, "value"), (step, "value"))
    which = w.IntSlider(0, 0, initial.filters - 1, description="show filter", style=style)
    info = w.HTML()
    canvas = w.Output()
    state = {"result": None}

    def setting() -> ConvSetting:
        pad = padding.value if padding.value in ("valid", "same") else int(padding.value)
        return replace(initial, input_size=size.value, channels=channels.value, kernel_size=kernel.value,
                       stride=stride.value, padding=pad, filters=filters.value)  # fmt: skip

    def redraw(*_):
        result = state["result"]
        canvas.clear_output(wait=True)
        with canvas:
            fig = draw_step(result, step.value, filter_index=min(which.value, result.setting.filters - 1))
            fig.tight_layout()
            display(fig)
            plt.close(fig)

    def recompute(*_):
        result = compute(setting())
        state["result"] = result
        last = max(result.positions - 1, 0)
        step.max = play.max = last
        step.value = min(step.value, last)
        which.max = result.setting.filters - 1
        info.value = "<pre>" + describe(result) + "</pre>"
        redraw()

    for control in (size, channels, kernel, stride, padding, filters):
        control.observe(recompute, names="value")
    for control in (step, which):
        control.observe(redraw, names="value")
    recompute()
    controls = w.HBox([w.VBox([size, channels, kernel]), w.VBox([stride, padding, filters])])
    return w.VBox([controls, info, w.HBox([play, step, which]), canvas])


def explore_convolution():
    """Show the convolution explorer: live widgets with a kernel, the static figure in a book build."""
    from .widgets import show

    return show(build_live, draw_static,
                caption="Convolution explorer: 7x7 input, 3x3 kernel, stride 2, zero padding 1.")  # fmt: skip
