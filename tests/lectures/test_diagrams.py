"""cnnbook.diagrams (lectures 02 and 04): the figures show what they are given and what the Keras model says."""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
import pytest
from keras import layers

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from cnnbook import diagrams  # noqa: E402


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _small_fontsizes(fig):
    return [t.get_fontsize() for ax in fig.axes for t in ax.texts if t.get_fontsize() < diagrams.FONT]


def test_sliding_window_outlines_each_step():
    image = np.arange(25).reshape(5, 5)
    kernel = np.ones((3, 3), dtype=int)
    output = np.array([[image[i : i + 3, j : j + 3].sum() for j in range(3)] for i in range(3)])
    fig = diagrams.sliding_window(image, kernel, output, steps=[1, 5, 9])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4
    for ax, step in zip(visible[1:], [1, 5, 9]):
        i, j = divmod(step - 1, 3)
        outlines = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        window = [p for p in outlines if p.get_width() == 3]
        assert [(p.get_x(), p.get_y()) for p in window] == [(j, i)]
        assert f"= {output[i, j]}" in ax.get_title()
        shown = [t.get_text() for t in ax.texts]
        assert shown.count(str(output[i, j])) >= 1 and len(shown) == 25 + step  # output filled up to this step
    assert not _small_fontsizes(fig)
    assert fig.get_size_inches()[0] <= 6.5
    plt.close(fig)


def test_sliding_window_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="cannot give"):
        diagrams.sliding_window(np.zeros((5, 5)), np.ones((3, 3)), np.zeros((2, 2)), steps=[1])
    with pytest.raises(ValueError, match="steps"):
        diagrams.sliding_window(np.zeros((5, 5)), np.ones((3, 3)), np.zeros((3, 3)), steps=[10])


def _small_cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 5, strides=2, padding="same", name="block1_conv1"),
            layers.Conv2D(8, 3, padding="same", name="block1_conv2"),
            layers.MaxPooling2D(2, name="block1_pool"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="small",
    )


def test_model_diagram_reads_shapes_and_parameters_from_the_model():
    model = _small_cnn()
    boxes = diagrams.layer_groups(model)
    assert len(boxes) == 5
    assert [b["output_shape"][1:] for b in boxes] == [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert [b["params"] for b in boxes] == [layer.count_params() for layer in model.layers]
    assert boxes[0]["label"] == "Conv2D 5×5, 8, stride 2" and boxes[2]["label"] == "MaxPooling2D 2×2"
    assert boxes[3]["name"] == "Flatten" and boxes[3]["label"] == ""  # an auto-generated name is not shown
    fig = diagrams.model_diagram(model)
    texts = _texts(fig)
    for layer in model.layers:
        assert "×".join(str(d) for d in layer.output.shape[1:]) in texts
    assert f"{model.count_params():,}" in fig.axes[0].get_title()
    assert not _small_fontsizes(fig)
    plt.close(fig)

    grouped = diagrams.layer_groups(model, group=lambda layer: layer.name.split("_")[0])
    assert grouped[0]["name"] == "block1" and grouped[0]["label"] == "2 conv (5×5, 3×3), max pool"
    assert grouped[0]["params"] == sum(layer.count_params() for layer in model.layers[:3])
    assert grouped[0]["output_shape"] == (None, 7, 7, 8)


def _residual_model():
    inputs = keras.Input((8, 8, 4))
    x = inputs
    for b in range(1, 4):
        y = layers.Conv2D(4, 3, padding="same", name=f"res_block{b}_conv")(x)
        x = layers.Add(name=f"res_block{b}_add")([x, y])
    outputs = layers.Dense(2, name="head")(layers.GlobalAveragePooling2D(name="pool")(x))
    return keras.Model(inputs, outputs)


def test_model_diagram_collapses_repeated_blocks_and_marks_shortcuts():
    model = _residual_model()

    def key(layer):
        return "_".join(layer.name.split("_")[:2])

    boxes = diagrams.layer_groups(model, key)
    assert [b["name"] for b in boxes] == ["res_block1", "res_block2", "res_block3", "pool", "head"]
    assert [b["shortcut"] for b in boxes] == [True, True, True, False, False]
    collapsed = diagrams.layer_groups(model, key, collapse_repeats=True)
    assert [b["repeat"] for b in collapsed] == [3, 1, 1]
    assert collapsed[0]["name"] == "res_block1–3  (×3)"
    assert collapsed[0]["params"] == 3 * (9 * 4 * 4 + 4)
    fig = diagrams.model_diagram(model, key, collapse_repeats=True)
    red = matplotlib.colors.to_rgba("tab:red")
    arcs = [p for p in fig.axes[0].patches if np.allclose(p.get_edgecolor(), red)]
    assert len(arcs) == 1  # one shortcut arrow, for the one box with an Add
    plt.close(fig)


def test_branch_diagram_draws_every_box():
    branches = [["1×1 conv, 64"], ["1×1 conv, 96", "3×3 conv, 128"], []]
    fig = diagrams.branch_diagram("input", branches, "concatenate", branch_outputs=["64", "128", "x"])
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 2 + 3
    texts = _texts(fig)
    for label in ("input", "concatenate", "1×1 conv, 64", "3×3 conv, 128", "identity", "128"):
        assert label in texts
    assert not _small_fontsizes(fig)
    plt.close(fig)
    with pytest.raises(ValueError):
        diagrams.branch_diagram("input", [], "out")
