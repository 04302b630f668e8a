"""The augmentation explorer (introduced in lecture 07).

It shows what Keras' random image layers do to a picture: sliders set each layer's factor and the random seed,
and a grid shows augmented copies of the chosen image next to the original. The copies come from Keras' own
layers (``RandomFlip``, ``RandomRotation``, ``RandomTranslation``, ``RandomZoom``, ``RandomBrightness`` and
``RandomContrast``), applied one after the other in training mode, so the explorer shows what the library does.

``explore_augmentation(images)`` displays it through :func:`cnnbook.widgets.show`: live ipywidgets in Jupyter or
Colab, and on the published site a static figure with one row per layer at a representative factor.

Images are ``(H, W, 3)`` arrays, uint8 in ``[0, 255]`` or floats in ``[0, 1]``; they are converted to float32 in
``[0, 1]`` and the brightness and contrast layers are told so (``value_range=(0.0, 1.0)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .widgets import show

FLIP_MODES = ("none", "horizontal", "vertical", "horizontal_and_vertical")
LAYER_NAMES = ("flip", "rotation", "translation", "zoom", "brightness", "contrast")


@dataclass(frozen=True)
class AugmentSetting:
    """One setting of the six random layers; a factor of 0 (or flip ``"none"``) leaves that layer out.

    ``contrast`` is passed to ``RandomContrast`` as ``(contrast, contrast)`` so the contrast factor is drawn
    from ``[1 - contrast, 1 + contrast]`` (lower and raise contrast; lecture 07 explains why the pair is used).
    """

    flip: str = "horizontal"
    rotation: float = 0.05  # fraction of a full turn: 0.05 -> up to +/- 18 degrees
    translation: float = 0.1  # fraction of the height and of the width
    zoom: float = 0.0  # fraction of the size; positive zooms out, negative zooms in
    brightness: float = 0.1  # fraction of the value range added or subtracted
    contrast: float = 0.1  # contrast factor drawn from [1 - contrast, 1 + contrast]
    seed: int = 0
    copies: int = 7


NARROW_COPIES = 2  # copies per row in the static figure for a phone
STATIC_SETTING = AugmentSetting(flip="horizontal", rotation=0.1, translation=0.15, zoom=0.25, brightness=0.25,
                                contrast=0.5, seed=3, copies=5)  # fmt: skip
"""The representative factors of the static figure (larger than the lecture's, so each effect is visible)."""


def as_float_images(images) -> list[np.ndarray]:
    """A list of ``(H, W, 3)`` float32 images in ``[0, 1]`` (uint8 is divided by 255, grey gets 3 channels)."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    result = []
    for image in images:
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(f"expected (H, W, C) images, got shape {image.shape}")
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        scaled = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
        if scaled.min() < 0 or scaled.max() > 1.0 + 1e-6:
            raise ValueError("float images must be in [0, 1]; pass uint8 images for [0, 255]")
        result.append(scaled)
    if not result:
        raise ValueError("explore_augmentation needs at least one image")
    return result


def describe_layer(name: str, setting: AugmentSetting, size: tuple[int, int] | None = None) -> str:
    """The Keras call for one layer of ``setting`` and what its factor means (in degrees, pixels, ...)."""
    value = getattr(setting, name)
    if name == "flip":
        return "no flip" if value == "none" else f'RandomFlip("{value}")'
    if value == 0:
        return f"no {name}"
    if name == "rotation":
        return f"RandomRotation({value:g}): +/-{360 * value:.0f} degrees"
    if name == "translation":
        pixels = f" = +/-{value * size[0]:.1f} x {value * size[1]:.1f} px" if size else ""
        return f"RandomTranslation({value:g}, {value:g}): +/-{100 * value:.0f}%{pixels}"
    if name == "zoom":
        return f"RandomZoom({value:g}): size x{1 - value:.2f} to x{1 + value:.2f}"
    if name == "brightness":
        return f"RandomBrightness({value:g}): +/-{value:g} added"
    return f"RandomContrast(({value:g}, {value:g})): x{1 - value:.2f} to x{1 + value:.2f}"


def _random_layers(setting: AugmentSetting, only: str | None = None) -> list:
    """Keras random layers for ``setting`` (all of them, or ``only`` the one named), seeded from the setting."""
    import keras

    L = keras.layers
    s = setting.seed
    names = LAYER_NAMES if only is None else (only,)
    made = []
    for k, name in enumerate(names):
        value = getattr(setting, name)
        if (name == "flip" and value == "none") or (name != "flip" and value == 0):
            continue
        seed = s * 10 + k
        if name == "flip":
            made.append(L.RandomFlip(value, seed=seed))
        elif name == "rotation":
            made.append(L.RandomRotation(value, seed=seed))
        elif name == "translation":
            made.append(L.RandomTranslation(value, value, seed=seed))
        elif name == "zoom":
            made.append(L.RandomZoom(value, seed=seed))
        elif name == "brightness":
            made.append(L.RandomBrightness(value, value_range=(0.0, 1.0), seed=seed))
        else:
            made.append(L.RandomContrast((value, value), value_range=(0.0, 1.0), seed=seed))
    return made


def augmented_copies(image: np.ndarray, setting: AugmentSetting, only: str | None = None) -> np.ndarray:
    """``setting.copies`` augmented copies of one float image, each with its own random draw."""
    batch = np.repeat(np.asarray(image, dtype=np.float32)[None], setting.copies, axis=0)
    for layer in _random_layers(setting, only):
        batch = layer(batch, training=True)
    return np.clip(np.asarray(batch), 0.0, 1.0)


def _show(ax, image, title: str = "", colour: str = "black") -> None:
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("0.8")
    if title:
        ax.set_title(title, fontsize=8, color=colour)


def draw_grid(image: np.ndarray, setting: AugmentSetting, ncols: int = 4):
    """The live view: the original and ``setting.copies`` augmented copies of one image in a grid."""
    import matplotlib.pyplot as plt

    copies = augmented_copies(image, setting)
    n = len(copies) + 1
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.2 * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i == 0:
            _show(ax, image, "original", "tab:blue")
        elif i < n:
            _show(ax, copies[i - 1], f"copy {i}")
        else:
            ax.axis("off")
    fig.suptitle(f"{setting.copies} augmented copies (seed {setting.seed})", fontsize=10)
    fig.tight_layout()
    return fig


def draw_static(images, setting: AugmentSetting = STATIC_SETTING, image_index: int = 0,
                together: AugmentSetting = AugmentSetting(), *, narrow: bool = False):  # fmt: skip
    """The static figure: one row per layer alone at ``setting``'s factor, then ``together`` (all layers at the
    lecture's factors by default).

    ``narrow=True`` draws it for a phone's screen (see :mod:`cnnbook.widgets`): the original and the first
    ``NARROW_COPIES`` copies of each row, with the row's label above it instead of at its left.
    """
    import matplotlib.pyplot as plt

    image = as_float_images(images)[image_index]
    rows = [name for name in LAYER_NAMES if describe_layer(name, setting) not in ("no flip", f"no {name}")]
    rows.append("all")
    ncols = (min(setting.copies, NARROW_COPIES) if narrow else setting.copies) + 1
    label_width = 0.0 if narrow else 2.4  # inches left of the grid for the row labels
    cell, label_height, title_height = (1.15, 0.5, 0.75) if narrow else (1.3, 0.0, 0.5)
    height = (cell + label_height) * len(rows) + title_height
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell * ncols + label_width + 0.1, height),
                             squeeze=False)  # fmt: skip
    for r, name in enumerate(rows):
        if name == "all":
            copies = augmented_copies(image, replace(together, seed=setting.seed, copies=setting.copies))
            label = "the lecture's five\nlayers together"
        else:
            copies = augmented_copies(image, setting, only=name)
            label = describe_layer(name, setting, image.shape[:2]).replace(": ", ":\n")
        _show(axes[r, 0], image, "original" if r == 0 and not narrow else "", "tab:blue")
        if narrow:
            axes[r, 0].set_title(label.replace("\n", " ", 1) if name == "all" else label, loc="left", fontsize=8)
        else:
            axes[r, 0].set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
        for c in range(1, ncols):
            _show(axes[r, c], copies[c - 1], f"copy {c}" if r == 0 and not narrow else "")
    if narrow:
        title = f"Each random layer alone, then the lecture's\npipeline: the original (blue), {ncols - 1} copies"
    else:
        title = "Each random layer alone at a representative factor, then the lecture's pipeline"
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=max(label_width, 0.05) / fig.get_figwidth(), right=0.99, bottom=0.01,
                        top=1 - title_height / height, wspace=0.06,
                        hspace=0.1 + label_height / cell)  # fmt: skip
    if narrow:
        for ax in axes[:, 0]:
            for spine in ax.spines.values():
                spine.set_color("tab:blue")
    return fig


def build_live(images, initial: AugmentSetting = AugmentSetting()):
    """The live explorer: a slider per layer factor, a flip mode, a seed, an image choice, and the grid."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    pictures = as_float_images(images)
    style = {"description_width": "120px"}
    layout = w.Layout(width="380px")

    def slider(value, low, high, step, description):
        return w.FloatSlider(value, min=low, max=high, step=step, description=description, style=style,
                             layout=layout, readout_format=".2f", continuous_update=False)  # fmt: skip

    flip = w.Dropdown(options=FLIP_MODES, value=initial.flip, description="flip", style=style, layout=layout)
    rotation = slider(initial.rotation, 0.0, 0.5, 0.01, "rotation (turns)")
    translation = slider(initial.translation, 0.0, 0.5, 0.01, "translation")
    zoom = slider(initial.zoom, 0.0, 0.8, 0.05, "zoom")
    brightness = slider(initial.brightness, 0.0, 0.8, 0.05, "brightness")
    contrast = slider(initial.contrast, 0.0, 0.9, 0.05, "contrast")
    seed = w.IntSlider(initial.seed, 0, 50, description="seed", style=style, layout=layout,
                       continuous_update=False)  # fmt: skip
    which = w.IntSlider(0, 0, len(pictures) - 1, description="image", style=style, layout=layout)
    info = w.HTML()
    canvas = w.Output()

    def setting() -> AugmentSetting:
        return replace(initial, flip=flip.value, rotation=rotation.value, translation=translation.value,
                       zoom=zoom.value, brightness=brightness.value, contrast=contrast.value,
                       seed=seed.value)  # fmt: skip

    def redraw(*_):
        current = setting()
        image = pictures[which.value]
        lines = [describe_layer(name, current, image.shape[:2]) for name in LAYER_NAMES]
        info.value = "<pre>" + "\n".join(lines) + "</pre>"
        canvas.clear_output(wait=True)
        with canvas:
            fig = draw_grid(image, current)
            display(fig)
            plt.close(fig)

    for control in (flip, rotation, translation, zoom, brightness, contrast, seed, which):
        control.observe(redraw, names="value")
    redraw()
    controls = w.HBox([w.VBox([flip, rotation, translation, zoom]), w.VBox([brightness, contrast, seed, which])])
    return w.VBox([controls, info, canvas])


def explore_augmentation(images, *, image_index: int = 0):
    """Show the augmentation explorer for ``images``: live widgets with a kernel, a static figure in a build."""
    caption = "Augmentation explorer: each random layer alone, then the lecture's five layers together."
    return show(lambda: build_live(images),
                lambda narrow=False: draw_static(images, image_index=image_index, narrow=narrow),
                caption=caption)  # fmt: skip
