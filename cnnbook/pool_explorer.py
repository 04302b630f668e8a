"""The pooling explorer (introduced in lecture 03).

It shows a small input with the current pooling window highlighted, steps through the output positions one by
one, and shows the pooled output. Pooled values come from Keras' own layers (``MaxPooling2D`` and
``AveragePooling2D``) and the windows from TensorFlow's patch extraction, so the explorer shows what the library
does; writing pooling by hand is the lecture's (and the assignments') job, not this module's. The one exception is
a window that does not fit (larger than the input, with ``valid`` padding): its empty output is made by NumPy
without calling TensorFlow, whose oneDNN kernels can kill the process (SIGFPE) on an empty pooling output.

``explore_pooling()`` displays it through :func:`cnnbook.widgets.show`: live ipywidgets in Jupyter or Colab, a
static figure of the lecture's 4x4 example on the published site.
"""

from __future__ import annotations

import numpy as np

from .conv_explorer import output_size
from .widgets import show

SEED_GRID = np.array([[1, 1, 2, 4], [5, 6, 3, 8], [3, 2, 0, 1], [1, 2, 7, 5]], dtype=np.float32)
"""The lecture's 4x4 example: 2x2 max pooling with stride 2 gives [[6, 8], [3, 7]]."""

KINDS = ("max", "average")
PADDINGS = ("valid", "same")
INPUTS = ("4x4 grid of the lecture", "random integers 5x5", "random integers 7x7")
COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive")


def pooled_shape(shape, window: int, stride: int, padding: str) -> tuple[int, int]:
    """Output (rows, columns) of pooling an input of ``shape``; 0 where the window does not fit (``valid``)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return tuple(output_size(n, window, stride, padding) for n in shape[:2])


def keras_pool(x, kind: str = "max", window: int = 2, stride: int = 2, padding: str = "valid") -> np.ndarray:
    """Pool a 2-D array with Keras' ``MaxPooling2D`` or ``AveragePooling2D``; returns a 2-D array.

    The output may have zero rows or columns (a window larger than the input with ``valid`` padding); that empty
    array comes from NumPy, and TensorFlow is not called.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    x = np.asarray(x, dtype=np.float32)
    out_h, out_w = pooled_shape(x.shape, window, stride, padding)
    if out_h == 0 or out_w == 0:
        return np.zeros((out_h, out_w), dtype=np.float32)
    import keras

    layer_class = keras.layers.MaxPooling2D if kind == "max" else keras.layers.AveragePooling2D
    layer = layer_class(pool_size=window, strides=stride, padding=padding)
    return np.asarray(layer(x[None, :, :, None]))[0, :, :, 0]


def window_corners(shape, window: int, stride: int, padding: str) -> np.ndarray:
    """Top-left corner (row, column) of the window behind each output position, shape ``(out_h, out_w, 2)``.

    Read off TensorFlow's ``tf.image.extract_patches`` applied to an image of cell numbers, so the windows are
    exactly those TensorFlow pools over; corners are negative where ``same`` padding adds cells above or left.
    When the window does not fit, the array is empty and TensorFlow is not called.
    """
    out_h, out_w = pooled_shape(shape, window, stride, padding)
    if out_h == 0 or out_w == 0:
        return np.zeros((out_h, out_w, 2), dtype=int)
    import tensorflow as tf

    rows, cols = shape
    numbers = np.arange(1, rows * cols + 1, dtype=np.float32).reshape(1, rows, cols, 1)  # 0 marks padding
    patches = tf.image.extract_patches(
        numbers, sizes=[1, window, window, 1], strides=[1, stride, stride, 1], rates=[1, 1, 1, 1],
        padding=padding.upper(),
    ).numpy()[0]  # fmt: skip
    out_h, out_w = patches.shape[:2]
    corners = np.zeros((out_h, out_w, 2), dtype=int)
    for i in range(out_h):
        for j in range(out_w):
            patch = patches[i, j].reshape(window, window)
            a, b = np.argwhere(patch > 0)[0]  # any real cell fixes where the window lies
            cell = int(patch[a, b]) - 1
            corners[i, j] = (cell // cols - a, cell % cols - b)
    return corners


def _grid(ax, values, *, title: str, origin=(0, 0), fmt: str = "{:g}", extent=None) -> None:
    """Draw a table of numbers with cell borders; ``extent`` = (top, left, bottom, right) in input cells."""
    rows, cols = values.shape
    top, left, bottom, right = extent if extent is not None else (0, 0, rows, cols)
    ax.set_xlim(left - 0.5, right - 0.5)
    ax.set_ylim(bottom - 0.5, top - 0.5)
    for r in range(top, bottom):
        for c in range(left, right):
            real = 0 <= r < rows and 0 <= c < cols
            ax.add_patch(_rect((r, c), 1, 1, face="white" if real else "#eeeeee", edge="0.6", hatch=None if real
                               else "///", lw=0.8))  # fmt: skip
            if real:
                ax.text(c, r, fmt.format(values[r, c]), ha="center", va="center", fontsize=11)
    ax.set_title(title, fontsize=11)
    ax.set_xticks(range(left, right))
    ax.set_yticks(range(top, bottom))
    ax.tick_params(length=0, labelsize=8)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_aspect("equal")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)


def _rect(corner, height, width, *, face="none", edge="black", lw=2.5, alpha=1.0, hatch=None):
    import matplotlib.patches as mpatches

    r, c = corner
    return mpatches.Rectangle((c - 0.5, r - 0.5), width, height, facecolor=face, edgecolor=edge, linewidth=lw,
                              alpha=alpha, hatch=hatch)  # fmt: skip


def draw_step(x, kind: str = "max", window: int = 2, stride: int = 2, padding: str = "valid", step: int = 0):
    """Figure of one output position: the input with its window, the pooled output with the cell it fills."""
    import matplotlib.pyplot as plt

    x = np.asarray(x, dtype=np.float32)
    out = keras_pool(x, kind, window, stride, padding)
    fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    if out.size == 0:  # the window does not fit: the input, and an empty output with the reason
        _grid(ax_in, x, title=f"input {x.shape[0]}x{x.shape[1]}")
        ax_out.axis("off")
        ax_out.set_title(f"output {out.shape[0]}x{out.shape[1]} (window does not fit)", fontsize=11)
        ax_out.text(0.5, 0.5, f"no output: a {window}x{window} window does not fit\ninside the input with "
                    "'valid' padding", ha="center", va="center", fontsize=11)  # fmt: skip
        fig.suptitle(f"{kind} pooling, window {window}, stride {stride}, padding '{padding}'")
        fig.tight_layout()
        return fig
    corners = window_corners(x.shape, window, stride, padding)
    out_h, out_w = out.shape
    step = int(np.clip(step, 0, out.size - 1))
    i, j = divmod(step, out_w)
    top, left = corners[i, j]
    all_top, all_left = min(0, corners[..., 0].min()), min(0, corners[..., 1].min())
    all_bottom = max(x.shape[0], corners[..., 0].max() + window)
    all_right = max(x.shape[1], corners[..., 1].max() + window)
    _grid(ax_in, x, title=f"input {x.shape[0]}x{x.shape[1]} (hatched: padding)",
          extent=(all_top, all_left, all_bottom, all_right))  # fmt: skip
    ax_in.add_patch(_rect((top, left), window, window, face="tab:orange", edge="none", alpha=0.3))
    ax_in.add_patch(_rect((top, left), window, window, edge="tab:orange"))
    inside = x[max(top, 0) : top + window, max(left, 0) : left + window]
    if kind == "max":
        for r, c in np.argwhere(inside == out[i, j]):
            ax_in.add_patch(_rect((max(top, 0) + r, max(left, 0) + c), 1, 1, edge="tab:red", lw=2))
        formula = f"max of {inside.size} values = {out[i, j]:g}"
    else:
        formula = f"mean of {inside.size} real values = {inside.sum():g} / {inside.size} = {out[i, j]:.3g}"
    _grid(ax_out, out, title=f"output {out_h}x{out_w}", fmt="{:.3g}")
    ax_out.add_patch(_rect((i, j), 1, 1, face="tab:orange", edge="tab:orange", alpha=0.3))
    ax_out.add_patch(_rect((i, j), 1, 1, edge="tab:orange"))
    fig.suptitle(f"{kind} pooling, window {window}, stride {stride}, padding '{padding}': "
                 f"output ({i}, {j}) is the {formula}", fontsize=11)  # fmt: skip
    fig.tight_layout()
    return fig


def draw_static(*, narrow: bool = False):
    """The lecture's 4x4 example: the four 2x2 windows (stride 2) in colour, and the max and average outputs.

    ``narrow=True`` puts the input above the two outputs, for a phone's screen (see :mod:`cnnbook.widgets`).
    """
    import matplotlib.pyplot as plt

    x = SEED_GRID
    pooled = {kind: keras_pool(x, kind, 2, 2, "valid") for kind in KINDS}
    corners = window_corners(x.shape, 2, 2, "valid")
    if narrow:
        fig = plt.figure(figsize=(3.8, 6.4))
        grid = fig.add_gridspec(2, 2, height_ratios=[1.6, 1])
        axes = [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]
        output_title = "{kind} pooling:\noutput 2x2"
    else:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.6, 1, 1]})
        output_title = "{kind} pooling: output 2x2"
    _grid(axes[0], x, title="input 4x4, four 2x2 windows")
    for k, kind in enumerate(KINDS, start=1):
        _grid(axes[k], pooled[kind], title=output_title.format(kind=kind), fmt="{:.3g}")
    for n, (i, j) in enumerate(np.ndindex(*pooled["max"].shape)):
        colour = COLOURS[n % len(COLOURS)]
        top, left = corners[i, j]
        axes[0].add_patch(_rect((top, left), 2, 2, face=colour, edge="none", alpha=0.3))
        axes[0].add_patch(_rect((top, left), 2, 2, edge=colour))
        window = x[top : top + 2, left : left + 2]
        for r, c in np.argwhere(window == pooled["max"][i, j]):
            axes[0].add_patch(_rect((top + r, left + c), 1, 1, edge="tab:red", lw=1.5))
        for ax in axes[1:]:
            ax.add_patch(_rect((i, j), 1, 1, face=colour, edge="none", alpha=0.3))
            ax.add_patch(_rect((i, j), 1, 1, edge=colour))
    title = "Pooling with a 2x2 window and stride 2 (red frames: the maxima that max pooling keeps)"
    fig.suptitle(title.replace(" (", "\n(") if narrow else title, fontsize=10 if narrow else None)
    fig.tight_layout()
    return fig


def _input_for(choice: str, seed: int) -> np.ndarray:
    if choice == INPUTS[0]:
        return SEED_GRID
    size = 5 if "5x5" in choice else 7
    return np.random.default_rng(seed).integers(0, 10, (size, size)).astype(np.float32)


def build_live():
    """The live explorer: controls for pooling type, window, stride, padding and input, plus a step-through."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    kind = widgets.ToggleButtons(options=list(KINDS), value="max", description="pooling")
    window = widgets.IntSlider(value=2, min=1, max=4, description="window")
    stride = widgets.IntSlider(value=2, min=1, max=4, description="stride")
    padding = widgets.ToggleButtons(options=list(PADDINGS), value="valid", description="padding")
    source = widgets.Dropdown(options=list(INPUTS), value=INPUTS[0], description="input")
    reroll = widgets.Button(description="new random numbers")
    step = widgets.IntSlider(value=0, min=0, max=3, description="output #")
    play = widgets.Play(value=0, min=0, max=3, interval=900, description="play")
    widgets.jslink((play, "value"), (step, "value"))
    out = widgets.Output()
    state = {"seed": 0}

    def redraw(*_):
        x = _input_for(source.value, state["seed"])
        n_out = keras_pool(x, kind.value, window.value, stride.value, padding.value).size
        top = max(n_out - 1, 0)
        for control in (step, play):
            control.max = top
            if control.value > top:
                control.value = top
        with out:
            out.clear_output(wait=True)
            fig = draw_step(x, kind.value, window.value, stride.value, padding.value, step.value)
            display(fig)
            plt.close(fig)

    def new_numbers(_):
        state["seed"] += 1
        redraw()

    for control in (kind, window, stride, padding, source, step):
        control.observe(redraw, names="value")
    reroll.on_click(new_numbers)
    redraw()
    controls = widgets.VBox([
        widgets.HBox([kind, padding]),
        widgets.HBox([window, stride]),
        widgets.HBox([source, reroll]),
        widgets.HBox([play, step]),
    ])  # fmt: skip
    return widgets.VBox([controls, out])


def explore_pooling():
    """Show the pooling explorer (live in Jupyter/Colab, the static 4x4 figure on the published site)."""
    return show(build_live, draw_static, caption="The lecture's 4x4 example with 2x2 windows and stride 2.")
