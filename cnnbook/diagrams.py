"""Conceptual figures drawn with Matplotlib: the sliding window, layer diagrams of Keras models, branched modules.

Introduced in lecture 02 (the sliding window) and lecture 04 (layer diagrams, the Inception module, the residual
block); each function names its lecture. The figures are sized for the published site: at most about 6 inches
wide and no text under 9 points, so they stay legible on a phone. Nothing here computes a convolution: the
values a figure shows are passed in by the notebook.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

FONT = 9  # the smallest text in these figures, in points
WINDOW_COLOUR = "tab:orange"
DONE_COLOUR = "#dbe9f6"


def _grid(ax, values, x0, y0, *, highlight=None, filled=None, colour=WINDOW_COLOUR, fmt="{:g}"):
    """Draw ``values`` as a grid of unit cells whose top-left corner is at (x0, y0) (y grows downwards).

    ``highlight`` is (row, col, height, width) of a block to outline; ``filled`` a boolean mask of the cells whose
    number is shown (all by default); the others are left blank.
    """
    values = np.asarray(values)
    rows, cols = values.shape
    for (r, c), v in np.ndenumerate(values):
        shown = filled is None or bool(filled[r, c])
        face = DONE_COLOUR if filled is not None and shown else "white"
        if highlight is not None:
            hr, hc, hh, hw = highlight
            if hr <= r < hr + hh and hc <= c < hc + hw:
                face = "#fde3c8"
        ax.add_patch(Rectangle((x0 + c, y0 + r), 1, 1, facecolor=face, edgecolor="0.6", lw=0.8))
        if shown:
            ax.text(x0 + c + 0.5, y0 + r + 0.5, fmt.format(v), ha="center", va="center", fontsize=FONT)
    if highlight is not None:
        hr, hc, hh, hw = highlight
        ax.add_patch(Rectangle((x0 + hc, y0 + hr), hw, hh, fill=False, edgecolor=colour, lw=2.4))
    return rows, cols


def sliding_window(image, kernel, output, steps, *, stride: int = 1, ncols: int = 2, panel_width: float = 3.0,
                   title: str = ""):  # fmt: skip
    """Small multiples of a kernel sliding over an input (lecture 02).

    ``image`` is the (padded) 2-D input, ``kernel`` the 2-D filter and ``output`` the output map the notebook
    computed; ``steps`` are 1-based positions in reading order (1 = top-left window). The first panel shows the
    filter; each further panel shows the input with the window of that step outlined, and the output map filled
    up to that step, the current value outlined. Returns the figure.
    """
    image, kernel, output = np.asarray(image), np.asarray(kernel), np.asarray(output)
    k_rows, k_cols = kernel.shape
    out_rows, out_cols = output.shape
    if (image.shape[0] - k_rows) // stride + 1 != out_rows or (image.shape[1] - k_cols) // stride + 1 != out_cols:
        raise ValueError(
            f"a {kernel.shape} kernel with stride {stride} on {image.shape} cannot give {output.shape}"
        )
    n_steps = out_rows * out_cols
    bad = [s for s in steps if not 1 <= s <= n_steps]
    if bad:
        raise ValueError(f"steps must lie in 1..{n_steps}, got {bad}")
    panels = 1 + len(steps)
    ncols = min(ncols, panels)
    nrows = math.ceil(panels / ncols)
    gap = 1.6  # cells between input and output
    span_x = image.shape[1] + gap + out_cols
    span_y = max(image.shape[0], out_rows)
    cell = panel_width / (span_x + 0.4)
    height = cell * (span_y + 0.4) + 0.45
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_width * ncols, height * nrows + (0.35 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.set_xlim(-0.2, span_x + 0.2)
        ax.set_ylim(span_y + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
    # Panel 0: the filter, centred.
    ax = axes[0]
    x0 = (span_x - k_cols) / 2
    _grid(ax, kernel, x0, (span_y - k_rows) / 2, highlight=(0, 0, k_rows, k_cols))
    ax.set_title(f"the {k_rows}×{k_cols} filter", fontsize=FONT + 1)
    for ax, step in zip(axes[1:], steps):
        i, j = divmod(step - 1, out_cols)
        _grid(ax, image, 0, 0, highlight=(i * stride, j * stride, k_rows, k_cols))
        done = np.zeros(output.shape, dtype=bool)
        done.ravel()[:step] = True
        x_out = image.shape[1] + gap
        y_out = (span_y - out_rows) / 2
        _grid(ax, output, x_out, y_out, highlight=(i, j, 1, 1), filled=done)
        ax.add_patch(
            FancyArrowPatch(
                (j * stride + k_cols, i * stride + k_rows / 2),
                (x_out + j, y_out + i + 0.5),
                arrowstyle="-|>",
                mutation_scale=12,
                color=WINDOW_COLOUR,
                lw=1.4,
                connectionstyle="arc3,rad=-0.15",
            )
        )
        ax.set_title(f"step {step}: output ({i}, {j}) = {output[i, j]:g}", fontsize=FONT + 1)
    for ax in axes[panels:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=FONT + 2)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ layer diagrams


def _shape_text(shape) -> str:
    return "×".join(str(d) for d in shape[1:]) if shape else "?"


def _auto_named(layer) -> bool:
    """Whether Keras made up the layer's name from its class (``conv2d_413``), as ``keras.utils`` does."""
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", layer.name) is not None


def layer_label(layer) -> str:
    """A short description of one Keras layer: its type and the settings that decide its output (lecture 04)."""
    kind = type(layer).__name__
    if hasattr(layer, "kernel_size") and hasattr(layer, "filters") and layer.filters:
        kh, kw = layer.kernel_size
        strides = getattr(layer, "strides", (1, 1))
        text = f"{kind} {kh}×{kw}, {layer.filters}"
        return text + (f", stride {strides[0]}" if strides[0] != 1 else "")
    if hasattr(layer, "pool_size"):
        p = layer.pool_size
        s = layer.strides
        return f"{kind} {p[0]}×{p[1]}" + (f", stride {s[0]}" if s and s[0] != p[0] else "")
    if hasattr(layer, "units"):
        return f"{kind} {layer.units}"
    if hasattr(layer, "rate") and kind == "Dropout":
        return f"Dropout {layer.rate:g}"
    return kind


SHORT_NAMES = {
    "Conv2D": "conv",
    "BatchNormalization": "BN",
    "MaxPooling2D": "max pool",
    "AveragePooling2D": "avg pool",
    "Add": "add",
    "ZeroPadding2D": "pad",
    "Dense": "dense",
}


def _group_label(layers) -> str:
    """'2 conv 3×3, max pool' for a group of layers; activations are left out (they change no shape)."""
    counts = Counter(type(layer).__name__ for layer in layers)
    parts = []
    for kind, n in counts.items():
        if kind in ("Activation", "ReLU", "Dropout"):
            continue
        name = SHORT_NAMES.get(kind, kind)
        if kind == "Conv2D":
            sizes = [
                f"{layer.kernel_size[0]}×{layer.kernel_size[1]}"
                for layer in layers
                if type(layer).__name__ == kind
            ]
            name += " " + (sizes[0] if len(set(sizes)) == 1 else "(" + ", ".join(dict.fromkeys(sizes)) + ")")
        parts.append(name if n == 1 else f"{n} {name}")
    return ", ".join(parts)


def layer_groups(model, group=None, *, collapse_repeats: bool = False) -> list[dict]:
    """The boxes of :func:`model_diagram`: consecutive layers with the same ``group(layer)`` key form one box.

    Each box is a dict with ``name``, ``label``, ``output_shape``, ``params``, ``layers`` (the Keras layers),
    ``repeat`` (how many identical consecutive groups it stands for) and ``shortcut`` (whether it contains an
    ``Add``, i.e. a residual connection). Input layers are left out. With ``collapse_repeats``, consecutive groups
    with the same label and output shape are merged into one box marked ``×N``.
    """
    key = group or (lambda layer: layer.name)
    boxes: list[dict] = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        k = key(layer)
        if boxes and boxes[-1]["key"] == k:
            boxes[-1]["layers"].append(layer)
        else:
            boxes.append(dict(key=k, layers=[layer]))
    out = []
    for box in boxes:
        layers = box["layers"]
        label = layer_label(layers[0]) if len(layers) == 1 else _group_label(layers)
        single_auto = group is None and len(layers) == 1 and _auto_named(layers[0])
        entry = dict(
            name=label if single_auto else str(box["key"]),
            label="" if single_auto else label,
            output_shape=tuple(layers[-1].output.shape),
            params=sum(layer.count_params() for layer in layers),
            layers=layers,
            repeat=1,
            shortcut=any(type(layer).__name__ == "Add" for layer in layers),
        )
        previous = out[-1] if out else None
        if (
            collapse_repeats
            and previous is not None
            and previous["label"] == entry["label"]
            and previous["output_shape"] == entry["output_shape"]
            and previous["params"] // previous["repeat"] == entry["params"]
        ):
            previous["repeat"] += 1
            previous["params"] += entry["params"]
            previous["layers"] += layers
            previous["last_name"] = entry["name"]
            continue
        out.append(entry)
    for entry in out:
        if entry["repeat"] > 1:
            last = entry.pop("last_name")
            common = os.path.commonprefix([entry["name"], last])
            entry["name"] = f"{entry['name']}–{last[len(common) :]}  (×{entry['repeat']})"
    return out


def model_diagram(model, group=None, *, collapse_repeats: bool = False, title: str | None = None,
                  width: float = 4.6, ax=None):  # fmt: skip
    """Draw a Keras model as a column of boxes, one per layer or group of layers (lecture 04).

    Each box names the layer (or group), says what it is, and gives its output shape and parameter count, all
    read from the model. Boxes that contain an ``Add`` get a curved arrow on their right: the shortcut of a
    residual block. ``group`` maps a layer to a key (consecutive layers with the same key share a box), e.g.
    ``lambda layer: layer.name.split("_")[0]`` for VGG's ``block1_conv1``. Returns the figure.
    """
    boxes = layer_groups(model, group, collapse_repeats=collapse_repeats)
    box_h, gap = 0.52, 0.22
    n = len(boxes) + 1  # + the input
    height = n * box_h + (n - 1) * gap
    if ax is None:
        fig, ax = plt.subplots(figsize=(width, height + (0.5 if title is not False else 0.1)))
    else:
        fig = ax.figure
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    left, box_w = 0.05, width - 0.45
    input_shape = tuple(boxes[0]["layers"][0].input.shape)
    entries = [dict(name="input", label="", output_shape=input_shape, params=0, shortcut=False)]
    for i, box in enumerate(entries + boxes):
        top = i * (box_h + gap)
        colour = "#eeeeee" if i == 0 else ("#fde3c8" if box["shortcut"] else DONE_COLOUR)
        ax.add_patch(
            FancyBboxPatch((left, top), box_w, box_h, boxstyle="round,pad=0,rounding_size=0.06",
                           facecolor=colour, edgecolor="0.4", lw=0.8)
        )  # fmt: skip
        right = left + box_w - 0.08
        upper, lower = top + box_h * 0.3, top + box_h * 0.7
        ax.text(left + 0.08, upper, box["name"], fontsize=FONT, va="center", ha="left", fontweight="bold")
        ax.text(right, upper, _shape_text(box["output_shape"]), fontsize=FONT, va="center", ha="right")
        ax.text(left + 0.08, lower, box["label"], fontsize=FONT, va="center", ha="left")
        if box["params"]:
            ax.text(right, lower, f"{box['params']:,} params", fontsize=FONT, va="center", ha="right", color="0.3")
        if i > 0:
            ax.add_patch(
                FancyArrowPatch((left + box_w / 2, top - gap), (left + box_w / 2, top), arrowstyle="-|>",
                                mutation_scale=9, color="0.3", lw=1)
            )  # fmt: skip
        if box["shortcut"]:
            ax.add_patch(
                FancyArrowPatch((left + box_w, top - gap / 2), (left + box_w, top + box_h), arrowstyle="-|>",
                                mutation_scale=9, color="tab:red", lw=1.3, connectionstyle="arc3,rad=-0.6")
            )  # fmt: skip
    if title is None:
        title = f"{model.name}: {model.count_params():,} parameters"
    if title:
        ax.set_title(title, fontsize=FONT + 2)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ branched modules


def branch_diagram(input_label: str, branches, output_label: str, *, branch_outputs=None, title: str = "",
                   width: float = 5.8, box_h: float = 0.42, identity_label: str = "identity"):  # fmt: skip
    """Parallel branches between one input and one merge, e.g. the Inception module or a residual block
    (lecture 04).

    ``branches`` is a list of lists of box labels, top to bottom; an empty list is a branch without layers (the
    shortcut of a residual block), drawn as a plain arrow labelled ``identity_label``. ``branch_outputs``
    optionally labels the tensor each branch hands to the merge. Returns the figure.
    """
    if not branches:
        raise ValueError("branch_diagram needs at least one branch")
    depth = max(len(b) for b in branches)
    gap = 0.28
    column = width / len(branches)
    box_w = column - 0.18
    rows = depth + 2  # input, the branches, the merge
    extra = 0.22 if branch_outputs else 0.0
    height = rows * box_h + (rows - 1) * gap + extra
    fig, ax = plt.subplots(figsize=(width, height + (0.45 if title else 0.1)))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")

    def box(x_centre, top, w, text, colour):
        ax.add_patch(
            FancyBboxPatch((x_centre - w / 2, top), w, box_h, boxstyle="round,pad=0,rounding_size=0.05",
                           facecolor=colour, edgecolor="0.4", lw=0.8)
        )  # fmt: skip
        ax.text(x_centre, top + box_h / 2, text, ha="center", va="center", fontsize=FONT)

    def arrow(start, end, colour="0.3"):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=colour, lw=1))

    centre = width / 2
    box(centre, 0, min(width - 0.2, 3.2), input_label, "#eeeeee")
    merge_top = (depth + 1) * (box_h + gap) + extra
    box(centre, merge_top, width - 0.2, output_label, "#fde3c8")
    for b, labels in enumerate(branches):
        x = column * (b + 0.5)
        previous_bottom = box_h
        start_x = centre + (x - centre) * 0.5
        if not labels:
            arrow((x, previous_bottom), (x, merge_top), "tab:red")
            ax.text(x + 0.06, (box_h + merge_top) / 2, identity_label, fontsize=FONT, color="tab:red",
                    ha="left", va="center")  # fmt: skip
        for r, text in enumerate(labels):
            top = (r + 1) * (box_h + gap)
            arrow((start_x if r == 0 else x, previous_bottom), (x, top))
            box(x, top, box_w, text, DONE_COLOUR)
            previous_bottom = top + box_h
        if labels:
            arrow((x, previous_bottom), (x, merge_top))
        if branch_outputs:
            ax.text(x + 0.05, merge_top - extra / 2 - 0.06, branch_outputs[b], fontsize=FONT, ha="left",
                    va="center", color="0.25")  # fmt: skip
    if title:
        ax.set_title(title, fontsize=FONT + 2)
    fig.tight_layout()
    return fig
