"""Plots used across the lectures: image grids, training curves, feature maps, filters, confusion matrices.

Every function returns the Matplotlib figure so a notebook can save or adjust it; figures have titles, axis
labels and sizes chosen to read well on the published site. Introduced in lecture 01; each function names the
lecture that first uses it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.autolayout": False,
}


def use_style() -> None:
    """Apply the course's Matplotlib defaults (called by :func:`cnnbook.setup`)."""
    plt.rcParams.update(STYLE)


def _as_image(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image, "gray"
    if image.dtype != np.uint8:  # floats: scale into [0, 1] for imshow
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image, None


def image_grid(images, labels=None, class_names=None, *, predictions=None, ncols: int = 8, title: str = "",
               size: float = 1.4):  # fmt: skip
    """A grid of images with their labels (lecture 01, then 06 and 07).

    ``labels`` and ``predictions`` are integer class ids (any shape that flattens to one per image); with
    ``predictions``, a wrong prediction's caption is red and reads ``pred (true)``.
    """
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    flat_labels = None if labels is None else np.asarray(labels).reshape(n, -1)[:, 0]
    flat_preds = None if predictions is None else np.asarray(predictions).reshape(n, -1)[:, 0]

    def name(k):
        return class_names[int(k)] if class_names is not None else str(int(k))

    # A wrong prediction reads "pred (true)", on two lines when that would not fit over the image (11-point
    # captions: about 11 characters per inch).
    two_lines = (
        flat_preds is not None
        and flat_labels is not None
        and any(len(f"{name(p)} ({name(t)})") > 11 * size for p, t in zip(flat_preds, flat_labels) if p != t)
    )
    caption_height = 0 if flat_labels is None else (0.6 if two_lines else 0.35)
    sep = "\n" if two_lines else " "
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, (size + caption_height) * nrows + (0.5 if title else 0))
    )
    axes = np.atleast_1d(axes).ravel()

    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        image, cmap = _as_image(images[i])
        ax.imshow(image, cmap=cmap, interpolation="nearest")
        if flat_preds is not None and flat_labels is not None:
            wrong = flat_preds[i] != flat_labels[i]
            caption = name(flat_labels[i])
            if wrong:
                caption = f"{name(flat_preds[i])}{sep}({caption})"
            ax.set_title(caption, fontsize=11, color="tab:red" if wrong else "black")
        elif flat_labels is not None:
            ax.set_title(name(flat_labels[i]), fontsize=11)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _histories(histories) -> dict[str, dict[str, list[float]]]:
    if hasattr(histories, "history"):  # one keras.callbacks.History
        return {"": histories.history}
    if isinstance(histories, dict) and histories and all(isinstance(v, list) for v in histories.values()):
        return {"": histories}  # one history dict
    return {label: (h.history if hasattr(h, "history") else h) for label, h in dict(histories).items()}


def training_curves(histories, metrics=("loss", "accuracy"), *, title: str = "", validation: bool = True):
    """Training curves from a Keras ``History`` or ``{label: History}`` for several runs (lecture 05).

    One panel per metric; each run has one colour, training solid and validation dashed.
    """
    runs = _histories(histories)
    metrics = [m for m in metrics if any(m in h for h in runs.values())]
    if not metrics:
        raise ValueError("none of the requested metrics is in the histories")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics):
        for k, (label, history) in enumerate(runs.items()):
            colour = colours[k % len(colours)]
            prefix = f"{label}: " if label else ""
            if metric in history:
                epochs = np.arange(1, len(history[metric]) + 1)
                ax.plot(epochs, history[metric], "-o", ms=3, color=colour, label=f"{prefix}train")
            if validation and f"val_{metric}" in history:
                epochs = np.arange(1, len(history[f"val_{metric}"]) + 1)
                ax.plot(epochs, history[f"val_{metric}"], "--s", ms=3, color=colour, label=f"{prefix}validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def feature_maps(maps, *, titles=None, ncols: int = 8, title: str = "", cmap: str = "viridis",
                 annotate: bool = False, size: float = 1.6):  # fmt: skip
    """Feature maps as heatmaps (lecture 02, then 09).

    ``maps`` is ``(H, W, C)`` (one layer's output for one image) or a list of 2-D arrays. With ``annotate`` the
    value of each cell is written in it (for small maps such as the X/O toy's 7x7 ones).
    """
    if isinstance(maps, np.ndarray) and maps.ndim == 3:
        maps = [maps[..., c] for c in range(maps.shape[-1])]
    maps = [np.asarray(m) for m in maps]
    n = len(maps)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        m = maps[i]
        image = ax.imshow(m, cmap=cmap, interpolation="nearest")
        if annotate:
            mid = (float(m.max()) + float(m.min())) / 2
            for (r, c), v in np.ndenumerate(m):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < mid else "black")  # fmt: skip
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        if annotate:
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def filters(weights, *, ncols: int = 8, title: str = "", size: float = 1.2):
    """Convolution kernels as images (lecture 09).

    ``weights`` is a Keras ``Conv2D`` kernel of shape ``(kh, kw, in_channels, filters)``. With 3 input
    channels each filter is shown in colour, otherwise the input channels are averaged.
    """
    w = np.asarray(weights)
    if w.ndim != 4:
        raise ValueError(f"expected a (kh, kw, in, out) kernel, got shape {w.shape}")
    n = w.shape[-1]
    images = [w[..., k] if w.shape[2] == 3 else w[..., k].mean(axis=-1) for k in range(n)]
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            image, cmap = _as_image(images[i])
            ax.imshow(image, cmap=cmap or "gray", interpolation="nearest")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true, y_pred, class_names=None, *, normalize: bool = True, title: str = "Confusion matrix"):
    """A confusion matrix with counts or row fractions written in the cells (lecture 06)."""
    y_true = np.asarray(y_true).reshape(-1).astype(int)
    y_pred = np.asarray(y_pred).reshape(-1).astype(int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    k = int(max(y_true.max(), y_pred.max()) + 1) if class_names is None else len(class_names)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y_true, y_pred), 1)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    names = class_names if class_names is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(0.55 * k + 2.5, 0.55 * k + 2))
    image = ax.imshow(shown, cmap="Blues", vmin=0)
    for (r, c), v in np.ndenumerate(shown):
        text = f"{v:.2f}" if normalize else str(v)
        ax.text(c, r, text, ha="center", va="center", fontsize=7,
                color="white" if v > shown.max() / 2 else "black")  # fmt: skip
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    ax.spines[:].set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class" if normalize else "count")
    fig.tight_layout()
    return fig
