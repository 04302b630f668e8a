"""Lecture 02 (convolution): the lecture's own code reproduces the source lecture's numbers and agrees with Keras.

The reference tables below are transcribed from the source lecture independently of the notebook, so a change
to the notebook's copies cannot make a wrong value pass.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from tests.support.nbcode import load_namespace, run_isolated

NOTEBOOK = "notebooks/02_convolution.ipynb"
ROOT = pathlib.Path(__file__).resolve().parents[2]

# The X/O example's 7x7 feature maps of the X, as printed in the source lecture (values cut to two decimals).
SEED_MAPS = [
    """0.77 -0.11 0.11 0.33 0.55 -0.11 0.33
       -0.11 1.00 -0.11 0.33 -0.11 0.11 -0.11
       0.11 -0.11 1.00 -0.33 0.11 -0.11 0.55
       0.33 0.33 -0.33 0.55 -0.33 0.33 0.33
       0.55 -0.11 0.11 -0.33 1.00 -0.11 0.11
       -0.11 0.11 -0.11 0.33 -0.11 1.00 -0.11
       0.33 -0.11 0.55 0.33 0.11 -0.11 0.77""",
    """0.39 -0.55 0.11 -0.11 0.11 -0.55 0.33
       -0.55 0.55 -0.55 0.33 -0.55 0.55 -0.55
       0.11 -0.55 0.55 -0.77 0.55 -0.55 0.11
       -0.11 0.33 -0.77 1.00 -0.77 0.33 -0.11
       0.11 -0.55 0.55 -0.77 0.55 -0.55 0.11
       -0.55 0.55 -0.55 0.33 -0.55 0.55 -0.55
       0.39 -0.55 0.11 -0.11 0.33 -0.55 0.33""",
    """0.33 -0.11 0.55 0.33 0.11 -0.11 0.77
       -0.11 0.11 -0.11 0.33 -0.11 1.00 -0.11
       0.55 -0.11 0.11 -0.33 1.00 -0.11 0.11
       0.33 0.33 -0.33 0.55 -0.33 0.33 0.33
       0.11 -0.11 1.00 -0.33 0.11 -0.11 0.55
       -0.11 1.00 -0.11 0.33 -0.11 0.11 -0.11
       0.77 -0.11 0.11 0.33 0.55 -0.11 0.33""",
]
SEED_POOLED = [
    "1.00 0.33 0.55 0.33  0.33 1.00 0.33 0.55  0.55 0.33 1.00 0.11  0.33 0.55 0.11 0.77",
    "0.55 0.33 0.55 0.33  0.33 1.00 0.55 0.11  0.55 0.55 0.55 0.11  0.33 0.11 0.11 0.33",
    "0.33 0.55 1.00 0.77  0.55 0.55 1.00 0.33  1.00 1.00 0.11 0.55  0.77 0.33 0.55 0.33",
]
SEED_VOTES = "1.00 0.55 0.55 1.00 1.00 0.55 0.55 0.55 0.55 1.00 1.00 0.55"
# Cells of the second table that the source lecture misprints (the notebook explains why): (row, col) -> correct.
MISPRINTS = {(0, 0): 3 / 9, (6, 0): 3 / 9, (6, 4): 1 / 9}


def _table(text: str, size: int) -> np.ndarray:
    return np.array(text.split(), dtype=float).reshape(size, size)


def _cut(values) -> np.ndarray:
    return np.trunc(np.round(np.asarray(values, dtype=float) * 100, 6)) / 100


@pytest.fixture(scope="module")
def ns():
    return load_namespace(NOTEBOOK)


def test_seed_examples_32_and_36(ns):
    assert ns["window_dot"](ns["SEED_WINDOW_1"], ns["SEED_FILTER"]) == 32
    assert ns["window_dot"](ns["SEED_WINDOW_2"], ns["SEED_FILTER"]) == 36
    full = ns["conv2d_loops"](ns["SEED_INPUT"], ns["SEED_FILTER"])
    np.testing.assert_array_equal(full, [[32, 36]])
    np.testing.assert_array_equal(ns["conv2d_numpy"](ns["SEED_INPUT"], ns["SEED_FILTER"])[..., 0], [[32, 36]])
    # Both windows are really in the input, one column apart.
    np.testing.assert_array_equal(ns["SEED_INPUT"][:, :3], ns["SEED_WINDOW_1"])
    np.testing.assert_array_equal(ns["SEED_INPUT"][:, 1:], ns["SEED_WINDOW_2"])


def test_padded_seed_example_and_true_convolution(ns):
    from scipy import signal

    padded = ns["conv2d_numpy"](ns["SEED_INPUT"], ns["SEED_FILTER"], padding=1)[..., 0]
    assert padded.shape == (3, 4) and padded[0, 0] == 10 and list(padded[1, 1:3]) == [32, 36]
    np.testing.assert_array_equal(signal.convolve2d(ns["SEED_INPUT"], ns["SEED_FILTER"], mode="valid"), [[18, 16]])
    np.testing.assert_array_equal(
        signal.correlate2d(ns["SEED_INPUT"], ns["SEED_FILTER"], mode="valid"),
        ns["conv2d_numpy"](ns["SEED_INPUT"], ns["SEED_FILTER"])[..., 0],
    )


def test_xo_feature_maps_match_seed_tables(ns):
    from cnnbook.data import X_IMAGE

    maps = ns["xo_feature_maps"](X_IMAGE)
    assert maps.shape == (7, 7, 3)
    for f, text in enumerate(SEED_MAPS):
        seed = _table(text, 7)
        np.testing.assert_array_equal(seed, ns["SEED_FEATURE_MAPS"][f])  # the notebook keeps the tables as printed
        ours = _cut(maps[..., f])
        differ = {tuple(int(v) for v in rc) for rc in np.argwhere(~np.isclose(ours, seed))}
        if f == 1:
            assert differ == set(MISPRINTS)
            for (r, c), value in MISPRINTS.items():
                assert maps[r, c, f] == pytest.approx(value)
        else:
            assert differ == set()
        # Every value is an odd number of ninths: the lecture's 0.39 cannot occur.
        counts = maps[..., f] * 9
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
        assert np.all(np.round(counts) % 2 == 1)


def test_xo_relu_pool_stack_and_vote(ns):
    from cnnbook.data import O_IMAGE, X_IMAGE

    relu_maps = ns["relu"](ns["xo_feature_maps"](X_IMAGE))
    pooled = ns["max_pool_2x2"](relu_maps)
    assert pooled.shape == (4, 4, 3)
    for f, text in enumerate(SEED_POOLED):
        np.testing.assert_array_equal(_cut(pooled[..., f]), _table(text, 4))
    np.testing.assert_array_equal(_cut(ns["xo_votes"](X_IMAGE)), np.array(SEED_VOTES.split(), dtype=float))

    import keras

    keras_pooled = np.asarray(keras.layers.MaxPooling2D(2, padding="same")(relu_maps[None].astype("float32")))[0]
    np.testing.assert_allclose(keras_pooled, pooled, atol=1e-6)
    # The lecture's vote: the X must win for the X, the O for the O.
    x_scores, o_scores = ns["xo_votes"](X_IMAGE), ns["xo_votes"](O_IMAGE)
    weights = np.stack([x_scores / np.linalg.norm(x_scores), o_scores / np.linalg.norm(o_scores)], axis=1)
    assert (x_scores @ weights).argmax() == 0 and (o_scores @ weights).argmax() == 1


def _keras_conv(x, kernels, biases, stride, padding):
    import keras

    inputs = x[None].astype("float32")
    if isinstance(padding, int):
        inputs = keras.layers.ZeroPadding2D(padding)(inputs)
        padding = "valid"
    layer = keras.layers.Conv2D(kernels.shape[-1], kernels.shape[:2], strides=stride, padding=padding)
    layer.build(inputs.shape)
    layer.set_weights([kernels.astype("float32"), biases.astype("float32")])
    return np.asarray(layer(inputs))[0]


def _tf_conv(x, kernels, biases, stride, padding):
    import tensorflow as tf

    pad = [[0, 0], [padding, padding], [padding, padding], [0, 0]] if isinstance(padding, int) else padding.upper()
    out = tf.nn.conv2d(x[None].astype("float32"), kernels.astype("float32"), strides=stride, padding=pad)
    return out.numpy()[0] + biases


def test_numpy_convolution_matches_keras_and_tf(ns):
    rng = np.random.default_rng(1234)
    conv2d_numpy = ns["conv2d_numpy"]
    seen = set()
    for trial in range(240):
        k, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        channels, filters = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        padding = ("valid", "same", 1, 2)[trial % 4]
        size = int(rng.integers(k, 12))
        x = rng.normal(size=(size, size + int(rng.integers(0, 3)), channels))
        kernels, biases = rng.normal(size=(k, k, channels, filters)), rng.normal(size=filters)
        ours = conv2d_numpy(x, kernels, biases, stride, padding)
        for reference in (_keras_conv, _tf_conv):
            expected = reference(x, kernels, biases, stride, padding)
            assert ours.shape == expected.shape, (reference.__name__, k, stride, padding, x.shape)
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
        seen.add((stride, padding, channels, filters, k))
    assert {s[0] for s in seen} == {1, 2, 3} and {s[4] for s in seen} == {1, 2, 3, 4, 5}
    assert {s[2] for s in seen} == {1, 2, 3, 4} and {s[3] for s in seen} == {1, 2, 3, 4, 5}


def test_loop_convolution_matches_vectorised(ns):
    rng = np.random.default_rng(7)
    for _ in range(20):
        k, stride = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        image, kernel = rng.normal(size=(int(rng.integers(k, 10)), 9)), rng.normal(size=(k, k))
        np.testing.assert_allclose(
            ns["conv2d_loops"](image, kernel, stride), ns["conv2d_numpy"](image, kernel, stride=stride)[..., 0]
        )


def test_explorer_builds_and_draws(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnbook import conv_explorer as ce

    live = ce.build_live()
    assert live.children  # sliders, summary, step-through and canvas
    fig = ce.draw_static()
    assert len(fig.axes) >= 5
    narrow = ce.draw_static(narrow=True)  # for a phone: the same panels, stacked two by two
    assert narrow.get_figwidth() <= 4 < fig.get_figwidth() and len(narrow.axes) == len(fig.axes)
    plt.close(fig)
    plt.close(narrow)

    # The static setting of the source lecture's puzzle: 7x7 input, 3x3 kernel, stride 2, padding 1.
    result = ce.compute(ce.STATIC_SETTING)
    assert result.output_shape == (1, 4, 4, 1) and result.params == 10 and result.multiplications == 144
    # Shapes and parameters come from Keras, for every padding kind, and the drawn windows are the right ones.
    for setting in (
        ce.ConvSetting(6, 3, 4, 2, "same", 3),
        ce.ConvSetting(8, 2, 3, 3, "valid", 5),
        ce.ConvSetting(5, 1, 2, 1, "2", 2),
    ):
        result = ce.compute(setting)
        _, h, w, f = result.output_shape
        assert f == setting.filters and result.params == (setting.kernel_size**2 * setting.channels + 1) * f
        for position in range(h * w):
            i, j, r0, c0 = ce.window_at(result, position)
            patch = result.padded[r0 : r0 + setting.kernel_size, c0 : c0 + setting.kernel_size]
            expected = np.einsum("uvc,uvcf->f", patch, result.kernel)
            np.testing.assert_allclose(result.outputs[i, j], expected, atol=1e-4)
        plt.close(ce.draw_step(result, h * w - 1))
    # Kernels that do not fit (empty outputs) are tested in a subprocess: test_explorer_empty_output_in_subprocess.
    assert os.environ["MPLBACKEND"] == "Agg"


def test_explorer_output_size_agrees_with_keras():
    """The explorer's size formula (it only spots empty outputs) gives Keras' sizes, and 0 where nothing fits."""
    import keras

    from cnnbook import conv_explorer as ce

    for n in range(1, 10):
        for k in range(1, 6):
            for s in range(1, 4):
                for padding in ("valid", "same"):
                    size = ce.output_size(n, k, s, padding)
                    if padding == "valid" and k > n:
                        assert size == 0, (n, k, s)
                        continue
                    conv = keras.layers.Conv2D(1, k, strides=s, padding=padding)
                    assert size == conv.compute_output_shape((1, n, n, 1))[1], (n, k, s, padding)


# Run in a child process: TensorFlow's oneDNN kernels can kill the process (SIGFPE, exit status -8) on an empty
# output, which in-process would end the whole pytest run instead of failing one test.
EMPTY_CONVOLUTION = """
import contextlib
import io
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cnnbook import conv_explorer as ce

settings = [
    ce.ConvSetting(3, 1, 5, 1, "valid", 1),
    ce.ConvSetting(3, 2, 4, 2, "valid", 3),  # kernel one larger than the input
    ce.ConvSetting(3, 1, 6, 1, "1", 2),  # explicit padding: 5x5 padded input
    ce.ConvSetting(2, 1, 5, 2, 0, 1),
]
for setting in settings:
    r = ce.compute(setting)
    fig = ce.draw_step(r, 0)
    said = "does not fit" in r.error and "does not fit" in fig.axes[1].get_title() and r.error in ce.describe(r)
    plt.close(fig)
    print(r.output_shape, r.outputs.shape, r.padded.shape, r.positions, r.params, r.multiplications, said)
fig = ce.draw_static(settings[0])
plt.close(fig)
with contextlib.redirect_stdout(io.StringIO()):  # outside Jupyter, the live explorer prints its figure
    live = ce.build_live(settings[0])
print("static axes", len(fig.axes), "live", type(live).__name__)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_explorer_empty_output_in_subprocess():
    """A kernel larger than the padded input: an empty output from NumPy, figures that say so, no TensorFlow."""
    lines = run_isolated(EMPTY_CONVOLUTION)
    assert lines == [
        "(1, 0, 0, 1) (0, 0, 1) (3, 3, 1) 0 0 0 True",
        "(1, 0, 0, 3) (0, 0, 3) (3, 3, 2) 0 0 0 True",
        "(1, 0, 0, 2) (0, 0, 2) (5, 5, 1) 0 0 0 True",
        "(1, 0, 0, 1) (0, 0, 1) (2, 2, 1) 0 0 0 True",
        "static axes 4 live VBox",
        "tensorflow imported: False",
    ], lines


def test_visual_cortex_toy_cells(ns):
    """The simple cell fires for a vertical bar at one place only; the complex cell anywhere nearby; neither for a
    horizontal bar (the notebook's printed table and its text say so)."""
    simple, complex_, bar = ns["simple_cell"], ns["complex_cell"], ns["bar_image"]
    simple_responses = {c: simple(bar(column=c)) for c in range(9)}
    complex_responses = {c: complex_(bar(column=c)) for c in range(9)}
    assert {c for c, v in simple_responses.items() if v > 0} == {4} and simple_responses[4] == 6
    assert {c for c, v in complex_responses.items() if v > 0} == {2, 3, 4, 5, 6}
    assert set(complex_responses[c] for c in range(2, 7)) == {6}
    assert simple(bar(row=4)) == 0 and complex_(bar(row=4)) == 0
    # The complex cell is a max pooling of the simple cells' map (ReLU of the filter's correlation).
    image = bar(column=3)
    relu_map = np.maximum(ns["conv2d_loops"](image, ns["VERTICAL_BAR"]), 0)
    assert complex_(image) == relu_map[0:7, 1:6].max()
    # Exercise 6: the horizontal version.
    horizontal = ns["VERTICAL_BAR"].T
    responses = [complex_(bar(row=r), horizontal, rows=range(1, 6), cols=range(0, 7)) for r in range(1, 8)]
    assert responses == [0, 6, 6, 6, 6, 6, 0]
    assert complex_(bar(column=4), horizontal, rows=range(1, 6), cols=range(0, 7)) == 0


def test_sliding_window_example(ns):
    sliding = ns["SLIDING_INPUT"]
    np.testing.assert_array_equal(sliding[:3, :4], ns["SEED_INPUT"])
    out = ns["conv2d_loops"](sliding, ns["SEED_FILTER"])
    assert out.shape == (3, 3)
    assert list(out[0, :2]) == [32, 36]  # the lecture's two sums are steps 1 and 2
    assert out[1, 1] == 21  # exercise 5
    np.testing.assert_array_equal(out, ns["conv2d_numpy"](sliding, ns["SEED_FILTER"])[..., 0])


def test_notebook_cites_the_visual_cortex_sources():
    import json

    nb = json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for key in ("hubel1959", "hubel1962", "fukushima1980", "lecun1998"):
        assert key in text
    bib = (ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    for key in ("hubel1959", "hubel1962", "fukushima1980"):
        assert f"{{{key}," in bib
