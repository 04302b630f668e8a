"""Lecture 03 (pooling): the lecture's own code reproduces the worked examples and agrees with Keras/TensorFlow;
the pooling explorer builds and draws."""

from __future__ import annotations

import pathlib

import ipywidgets
import keras
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf

from tests.support.nbcode import load_namespace, run_isolated

NOTEBOOK = "notebooks/03_pooling.ipynb"
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lecture():
    return load_namespace(NOTEBOOK)


def keras_pool(x, pool_size, stride, padding, mode):
    """Reference: the Keras layer on an (H, W, C) array."""
    layer_class = keras.layers.MaxPooling2D if mode == "max" else keras.layers.AveragePooling2D
    layer = layer_class(pool_size=pool_size, strides=stride, padding=padding)
    return layer(np.asarray(x, dtype=np.float32)[None]).numpy()[0]


def test_seed_4x4_example(lecture):
    grid = np.array([[1, 1, 2, 4], [5, 6, 3, 8], [3, 2, 0, 1], [1, 2, 7, 5]], dtype=np.float32)
    np.testing.assert_array_equal(lecture["SEED_GRID"], grid)
    pool2d = lecture["pool2d"]
    np.testing.assert_array_equal(pool2d(grid, 2, 2, "valid", "max"), [[6, 8], [3, 7]])
    np.testing.assert_allclose(pool2d(grid, 2, 2, "valid", "average"), [[3.25, 4.25], [2.0, 3.25]])
    np.testing.assert_array_equal(pool2d(grid, 2), [[6, 8], [3, 7]])  # stride defaults to the window


def test_seed_3x3_windows_without_overlap(lecture):
    pool2d = lecture["pool2d"]
    windows = lecture["SEED_3X3_WINDOWS"]
    assert [float(pool2d(w, 3, 3)[0, 0]) for w in windows] == [9.0, 12.0] == lecture["SEED_3X3_MAXIMA"]
    np.testing.assert_array_equal(pool2d(np.hstack(windows), 3, 3), [[9, 12]])


def test_overlapping_windows_of_the_exercise(lecture):
    grid = lecture["SEED_GRID"]
    np.testing.assert_array_equal(lecture["pool2d"](grid, 3, 2, "valid"), [[6]])
    np.testing.assert_array_equal(lecture["pool2d"](grid, 3, 2, "same"), [[6, 8], [7, 7]])
    np.testing.assert_array_equal(keras_pool(grid[..., None], 3, 2, "same", "max")[..., 0], [[6, 8], [7, 7]])


def test_xo_pooled_maps_against_keras(lecture):
    from cnnbook.data import X_IMAGE

    maps = lecture["xo_pooled_maps"]()
    image = tf.constant(X_IMAGE[None, :, :, None])
    for name, kernel in lecture["XO_FILTERS"].items():
        # independent recomputation: TF's convolution (a correlation) with the filter / 9, ReLU, Keras pooling
        scores = tf.nn.conv2d(image, tf.constant(kernel[:, :, None, None] / 9.0), strides=1, padding="VALID")
        rectified = tf.nn.relu(scores)
        pooled = keras.layers.MaxPooling2D(2, strides=2, padding="same")(rectified)
        twice = keras.layers.MaxPooling2D(2, strides=2, padding="same")(pooled)
        ours_rectified, ours_pooled, ours_twice = maps[name]
        assert ours_rectified.shape == (7, 7) and ours_pooled.shape == (4, 4) and ours_twice.shape == (2, 2)
        np.testing.assert_allclose(ours_rectified, rectified.numpy()[0, :, :, 0], atol=1e-6)
        np.testing.assert_allclose(ours_pooled, pooled.numpy()[0, :, :, 0], atol=1e-6)
        np.testing.assert_allclose(ours_twice, twice.numpy()[0, :, :, 0], atol=1e-6)
        # the lecture prints values cut to two decimals
        cut = lecture["cut_to_two_decimals"]
        reference = pooled.numpy()[0, :, :, 0].astype(np.float64)
        np.testing.assert_allclose(cut(reference), lecture["SEED_XO_POOLED"][name], atol=1e-9)
        reference = twice.numpy()[0, :, :, 0].astype(np.float64)
        np.testing.assert_allclose(cut(reference), lecture["SEED_XO_POOLED_TWICE"][name], atol=1e-9)


def test_xo_diagonal_map_literal(lecture):
    """The diagonal filter's pooled map, exactly: values are multiples of 1/9."""
    expected = np.array([[9, 3, 5, 3], [3, 9, 3, 5], [5, 3, 9, 1], [3, 5, 1, 7]]) / 9
    np.testing.assert_allclose(lecture["xo_pooled_maps"]()["diagonal"][1], expected, atol=1e-6)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_size_matches_keras(lecture, padding):
    size = lecture["pool_output_size"]
    for n in range(1, 13):
        for k in range(1, 5):
            for s in range(1, 5):
                if padding == "valid" and k > n:
                    continue
                layer = keras.layers.MaxPooling2D(pool_size=k, strides=s, padding=padding)
                assert size(n, k, s, padding) == layer.compute_output_shape((1, n, n, 1))[1], (n, k, s)


@pytest.mark.parametrize("seed", range(4))
def test_numpy_pooling_matches_keras_and_tf(lecture, seed):
    pool2d = lecture["pool2d"]
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 60:
        height, width = (int(v) for v in rng.integers(1, 11, 2))
        channels = int(rng.integers(1, 4))
        pool_size, stride = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        padding, mode = str(rng.choice(["valid", "same"])), str(rng.choice(["max", "average"]))
        if padding == "valid" and (pool_size > height or pool_size > width):
            continue
        x = rng.normal(size=(height, width, channels)).astype(np.float32)
        ours = pool2d(x, pool_size, stride, padding, mode)
        tf_pool = tf.nn.max_pool2d if mode == "max" else tf.nn.avg_pool2d
        references = [
            keras_pool(x, pool_size, stride, padding, mode),
            tf_pool(x[None], pool_size, stride, padding.upper()).numpy()[0],
        ]
        for reference in references:
            assert ours.shape == reference.shape, (x.shape, pool_size, stride, padding, mode)
            case = str((x.shape, pool_size, stride, padding, mode))
            np.testing.assert_allclose(ours, reference, atol=1e-5, err_msg=case)
        if channels == 1:  # 2-D input gives a 2-D output
            np.testing.assert_allclose(pool2d(x[..., 0], pool_size, stride, padding, mode), ours[..., 0])
        checked += 1


def test_max_pooling_gradient_routes_to_maxima(lecture):
    """The routing the lecture draws: gradient only at the maxima 6, 8, 3, 7."""
    x = tf.Variable(lecture["SEED_GRID"][None, :, :, None])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(keras.layers.MaxPooling2D(2)(x)[0, :, :, 0] * tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    grad = tape.gradient(loss, x).numpy()[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[2, 0], expected[3, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(grad, expected)


# ------------------------------------------------------------------------------------------------ the explorer


def test_explorer_builds_and_draws(lecture):
    import ipywidgets
    from matplotlib.figure import Figure

    from cnnbook import pool_explorer

    live = pool_explorer.build_live()
    assert isinstance(live, ipywidgets.VBox)
    figure = pool_explorer.draw_static()
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    narrow = pool_explorer.draw_static(narrow=True)  # for a phone: the input above the two outputs
    assert narrow.get_figwidth() <= 4 < figure.get_figwidth() and len(narrow.axes) == 3
    plt.close(figure)
    plt.close(narrow)
    rng = np.random.default_rng(1)
    for kind in pool_explorer.KINDS:
        for padding in pool_explorer.PADDINGS:
            for window, stride in [(1, 1), (2, 2), (3, 2), (4, 1), (2, 3)]:
                x = rng.integers(0, 10, (7, 5)).astype(np.float32)
                out = pool_explorer.keras_pool(x, kind, window, stride, padding)
                expected = lecture["pool2d"](x, window, stride, padding, kind)
                np.testing.assert_allclose(out, expected, atol=1e-5)
                for step in (0, out.size - 1):
                    plt.close(pool_explorer.draw_step(x, kind, window, stride, padding, step))
    # Windows that do not fit (empty outputs) are tested in a subprocess: test_explorer_empty_output_in_subprocess.


def test_explorer_output_size_agrees_with_keras():
    """The explorer's size formula (it only spots empty outputs) gives Keras' sizes, and 0 where nothing fits."""
    from cnnbook import pool_explorer

    for n in range(1, 9):
        for window in range(1, 6):
            for stride in range(1, 5):
                for padding in pool_explorer.PADDINGS:
                    rows, cols = pool_explorer.pooled_shape((n, n + 1), window, stride, padding)
                    if padding == "valid" and window > n:
                        assert rows == 0, (n, window, stride)
                        continue
                    layer = keras.layers.MaxPooling2D(pool_size=window, strides=stride, padding=padding)
                    expected = layer.compute_output_shape((1, n, n + 1, 1))  # shape arithmetic only
                    assert (rows, cols) == tuple(expected[1:3]), (n, window, stride, padding)


# Run in a child process: on CPUs where TensorFlow uses oneDNN, pooling to an empty output killed the process
# with SIGFPE (exit status -8), which in-process would end the whole pytest run instead of failing one test.
EMPTY_POOLING = """
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cnnbook import pool_explorer as pe

for kind in pe.KINDS:
    for shape, window, stride in [((2, 2), 3, 1), ((2, 5), 3, 1), ((5, 2), 4, 2), ((3, 3), 4, 3)]:
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        out = pe.keras_pool(x, kind, window, stride, "valid")
        corners = pe.window_corners(shape, window, stride, "valid")
        fig = pe.draw_step(x, kind, window, stride, "valid", 0)
        fits = "does not fit" not in fig.axes[1].get_title()
        plt.close(fig)
        print(kind, shape, out.shape, out.dtype, corners.shape, fits)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_explorer_empty_output_in_subprocess():
    """A window larger than the input: empty outputs from NumPy, a figure that says so, TensorFlow not called."""
    lines = run_isolated(EMPTY_POOLING)
    expected = [
        f"{kind} {shape} {out} float32 {out + (2,)} False"
        for kind in ("max", "average")
        for shape, out in [((2, 2), (0, 0)), ((2, 5), (0, 3)), ((5, 2), (1, 0)), ((3, 3), (0, 0))]
    ]
    assert lines == [*expected, "tensorflow imported: False"], lines


def test_explorer_windows_are_tensorflows(lecture):
    """The highlighted windows are those TensorFlow pools: their maxima are the pooled values."""
    from cnnbook import pool_explorer

    x = np.random.default_rng(2).normal(size=(7, 6)).astype(np.float32)
    for window, stride, padding in [(2, 2, "same"), (3, 2, "same"), (3, 1, "valid"), (2, 3, "same")]:
        corners = pool_explorer.window_corners(x.shape, window, stride, padding)
        out = pool_explorer.keras_pool(x, "max", window, stride, padding)
        assert corners.shape[:2] == out.shape
        for (i, j), value in np.ndenumerate(out):
            top, left = corners[i, j]
            assert value == x[max(top, 0) : top + window, max(left, 0) : left + window].max()


@pytest.mark.parametrize("static", ["1", ""])
def test_explore_pooling_shows(monkeypatch, static):
    from cnnbook import pool_explorer

    monkeypatch.setenv("CNNBOOK_STATIC_WIDGETS", static)
    shown = pool_explorer.explore_pooling()
    if static:
        assert isinstance(shown, matplotlib.figure.Figure) and shown.axes, "static mode shows the figure"
    else:
        assert isinstance(shown, ipywidgets.Widget), "a kernel gets the live widget"
    plt.close("all")
