"""Lecture 03 (pooling): the lecture's own code reproduces the worked examples and agrees with Keras/TensorFlow,
the backward passes of convolution and pooling agree with tf.GradientTape, and the pooling explorer builds and
draws."""

from __future__ import annotations

import json
import pathlib
import re

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


# ------------------------------------------------------------------------------------ the text of the 4x4 example


def test_max_and_mean_disagree_as_the_text_says(lecture):
    """'the bottom-right window has the larger maximum (7 against 6) but the same mean as the top-left one': the
    numbers in the sentence are the pooled values of those two windows."""
    pool2d, grid = lecture["pool2d"], lecture["SEED_GRID"]
    maxima, means = pool2d(grid, 2, 2, "valid", "max"), pool2d(grid, 2, 2, "valid", "average")
    cells = json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    text = next(c["source"] for c in cells if c.get("id") == "basics-read")
    text = "".join(text) if isinstance(text, list) else text
    larger, smaller = (float(v) for v in re.search(r"\((\d+) against (\d+)\)", text).groups())
    assert (larger, smaller) == (maxima[1, 1], maxima[0, 0]) == (7, 6)
    assert means[1, 1] == means[0, 0] == 3.25


# --------------------------------------------------------------- backpropagation through convolution and pooling


def tape_conv_gradients(x, w, b, upstream, stride=1, padding="VALID"):
    """Reference: tf.GradientTape on tf.nn.conv2d (one channel, one filter) for L = sum(upstream * y).
    Returns (y, dL/dw, dL/dx, dL/db) as float64 NumPy values."""
    x_var = tf.Variable(np.asarray(x, dtype=np.float32)[None, :, :, None])
    w_var = tf.Variable(np.asarray(w, dtype=np.float32)[:, :, None, None])
    b_var = tf.Variable([np.float32(b)])
    with tf.GradientTape() as tape:
        y = tf.nn.conv2d(x_var, w_var, strides=stride, padding=padding) + b_var
        loss = tf.reduce_sum(y[0, :, :, 0] * np.asarray(upstream, dtype=np.float32))
    dx, dw, db = tape.gradient(loss, [x_var, w_var, b_var])
    as64 = lambda t: np.asarray(t, dtype=np.float64)
    return as64(y[0, :, :, 0]), as64(dw[:, :, 0, 0]), as64(dx[0, :, :, 0]), float(db[0])


def tape_pool_gradient(x, upstream, pool_size, stride, kind):
    """Reference: tf.GradientTape on tf.nn.max_pool2d / avg_pool2d (valid padding) for L = sum(upstream * y)."""
    x_var = tf.Variable(np.asarray(x, dtype=np.float32)[None, :, :, None])
    pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(
            pool(x_var, pool_size, stride, "VALID")[0, :, :, 0] * np.asarray(upstream, np.float32)
        )
    return np.asarray(tape.gradient(loss, x_var)[0, :, :, 0], dtype=np.float64)


def random_conv_case(rng, height, width, k_h, k_w):
    x = rng.normal(size=(height, width))
    w = rng.normal(size=(k_h, k_w))  # asymmetric: a missing or extra flip changes the result
    upstream = rng.normal(size=(height - k_h + 1, width - k_w + 1))
    return x, w, float(rng.normal()), upstream


def test_worked_example_matches_gradient_tape_and_the_hand_values(lecture):
    """The worked example's gradients are TensorFlow's, including the three values the text works by hand."""
    x, w = lecture["BACKPROP_INPUT"], lecture["BACKPROP_KERNEL"]
    b, upstream = lecture["BACKPROP_BIAS"], lecture["BACKPROP_UPSTREAM"]
    np.testing.assert_array_equal(x, lecture["SEED_GRID"])
    assert not np.array_equal(w, np.rot90(w, 2)), "the example's kernel must show a flip"
    y, dw, dx, db = tape_conv_gradients(x, w, b, upstream)
    np.testing.assert_allclose(lecture["conv2d_single"](x, w, b), y, atol=1e-5)
    np.testing.assert_allclose(lecture["conv2d_backward_weights"](x, upstream), dw, atol=1e-5)
    np.testing.assert_allclose(lecture["conv2d_backward_input"](upstream, w), dx, atol=1e-5)
    assert lecture["conv2d_backward_bias"](upstream) == pytest.approx(db)
    assert (dw[0, 0], dx[1, 1], dx[0, 0], db) == (15, 3, 1, 2)  # the values checked by hand in the text
    by_chain_rule = lecture["conv2d_gradients_by_chain_rule"](x, w, upstream)
    for ours, theirs in zip(by_chain_rule, (dw, dx, db)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    ("height", "width", "k_h", "k_w"),
    [(4, 4, 2, 2), (5, 7, 3, 3), (6, 5, 2, 3), (8, 8, 5, 5), (3, 3, 3, 3), (7, 4, 1, 2)],
)
def test_conv_gradients_match_gradient_tape(lecture, height, width, k_h, k_w):
    """dL/dw, dL/dx and dL/db of the lecture's functions (one operation each, and the chain-rule loops) against
    tf.GradientTape, on random inputs, kernels and upstream gradients of several sizes."""
    rng = np.random.default_rng(height * 100 + width * 10 + k_h + k_w)
    for _ in range(3):
        x, w, b, upstream = random_conv_case(rng, height, width, k_h, k_w)
        y, dw, dx, db = tape_conv_gradients(x, w, b, upstream)
        np.testing.assert_allclose(lecture["conv2d_single"](x, w, b), y, atol=1e-4)
        dw_ours = lecture["conv2d_backward_weights"](x, upstream)
        dx_ours = lecture["conv2d_backward_input"](upstream, w)
        assert dw_ours.shape == w.shape and dx_ours.shape == x.shape
        np.testing.assert_allclose(dw_ours, dw, atol=1e-4)
        np.testing.assert_allclose(dx_ours, dx, atol=1e-4)
        assert lecture["conv2d_backward_bias"](upstream) == pytest.approx(db, abs=1e-4)
        for ours, theirs in zip(lecture["conv2d_gradients_by_chain_rule"](x, w, upstream), (dw, dx, db)):
            np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_input_gradient_is_the_full_convolution_with_the_flipped_kernel(lecture):
    """The identity the lecture derives: scattering each upstream value times the kernel over its window (the chain
    rule) = the full convolution of the upstream gradient with the kernel (SciPy's, which flips) = the padded
    cross-correlation with the kernel rotated by 180 degrees = TensorFlow's transposed convolution. Without the
    rotation it is wrong."""
    from scipy import signal

    rng = np.random.default_rng(7)
    for height, width, k_h, k_w in [(4, 4, 2, 2), (6, 5, 3, 2), (9, 7, 4, 3)]:
        x, w, _, upstream = random_conv_case(rng, height, width, k_h, k_w)
        dx = lecture["conv2d_backward_input"](upstream, w)
        np.testing.assert_allclose(dx, lecture["conv2d_gradients_by_chain_rule"](x, w, upstream)[1], atol=1e-12)
        np.testing.assert_allclose(dx, signal.convolve2d(upstream, w, mode="full"), atol=1e-12)
        padded = np.pad(upstream, ((k_h - 1, k_h - 1), (k_w - 1, k_w - 1)))
        np.testing.assert_allclose(dx, lecture["correlate_valid"](padded, np.rot90(w, 2)), atol=1e-12)
        assert not np.allclose(dx, lecture["correlate_valid"](padded, w), atol=1e-3), "the flip must matter"
        # the text's aside: this is the transposed convolution (what Conv2DTranspose computes)
        transposed = tf.nn.conv2d_transpose(
            upstream[None, :, :, None].astype(np.float32),
            w[:, :, None, None].astype(np.float32),
            output_shape=(1, height, width, 1),
            strides=1,
            padding="VALID",
        )
        np.testing.assert_allclose(dx, transposed[0, :, :, 0], atol=1e-4)


@pytest.mark.parametrize("stride", [2, 3])
def test_stride_recipe_dilates_the_upstream_gradient(lecture, stride):
    """The text's recipe for a stride s: dilate the upstream gradient (s - 1 zeros between values), then dL/dw is
    the input cross-correlated with it (first k x k values) and dL/dx the full convolution with the flipped kernel
    (0 for cells no window reached). Checked against tf.GradientTape, including sizes that leave cells unread."""
    rng = np.random.default_rng(stride)
    for height, width, k in [(4, 4, 2), (7, 6, 3), (8, 5, 2), (9, 9, 3)]:
        x, w = rng.normal(size=(height, width)), rng.normal(size=(k, k))
        out_h, out_w = (height - k) // stride + 1, (width - k) // stride + 1
        upstream = rng.normal(size=(out_h, out_w))
        _, dw, dx, db = tape_conv_gradients(x, w, 0.0, upstream, stride=stride)
        dilated = np.zeros(((out_h - 1) * stride + 1, (out_w - 1) * stride + 1))
        dilated[::stride, ::stride] = upstream
        dw_recipe = lecture["conv2d_backward_weights"](x, dilated)[:k, :k]
        full = lecture["conv2d_backward_input"](dilated, w)
        dx_recipe = np.zeros_like(x)
        dx_recipe[: full.shape[0], : full.shape[1]] = full
        np.testing.assert_allclose(dw_recipe, dw, atol=1e-4)
        np.testing.assert_allclose(dx_recipe, dx, atol=1e-4)
        assert lecture["conv2d_backward_bias"](upstream) == pytest.approx(db, abs=1e-4)


def test_padding_recipe_crops_the_padding(lecture):
    """The text's recipe for padding: work on the padded input, then crop the padding off dL/dx. 'same' padding
    with odd kernels and stride 1 is one zero ring of (k - 1) / 2 on every side."""
    rng = np.random.default_rng(11)
    for height, width, k in [(4, 4, 3), (6, 5, 3), (7, 7, 5)]:
        x, w, upstream = (
            rng.normal(size=(height, width)),
            rng.normal(size=(k, k)),
            rng.normal(size=(height, width)),
        )
        _, dw, dx, _ = tape_conv_gradients(x, w, 0.0, upstream, padding="SAME")
        p = (k - 1) // 2
        np.testing.assert_allclose(lecture["conv2d_backward_weights"](np.pad(x, p), upstream), dw, atol=1e-4)
        full = lecture["conv2d_backward_input"](upstream, w)
        np.testing.assert_allclose(full[p : p + height, p : p + width], dx, atol=1e-4)


def test_exercise_5_stride_2_solution(lecture):
    """Exercise 5's numbers (stride 2 on the 4x4 grid) are TensorFlow's, and the dilation recipe gives them."""
    x, w = lecture["SEED_GRID"], lecture["BACKPROP_KERNEL"]
    upstream = np.array([[1.0, 2.0], [3.0, 4.0]])
    _, dw, dx, db = tape_conv_gradients(x, w, 0.0, upstream, stride=2)
    np.testing.assert_array_equal(dw, [[14, 19], [42, 48]])
    np.testing.assert_array_equal(dx, [[1, 2, 2, 4], [-1, 0, -2, 0], [3, 6, 4, 8], [-3, 0, -4, 0]])
    assert db == 10
    dilated = np.zeros((3, 3))
    dilated[::2, ::2] = upstream
    np.testing.assert_array_equal(lecture["conv2d_backward_weights"](x, dilated), dw)
    np.testing.assert_array_equal(lecture["conv2d_backward_input"](dilated, w), dx)


def test_maxpool_backward_routes_to_the_first_maximum_as_tensorflow_does(lecture):
    """Max pooling's backward pass against tf.GradientTape: the lecture's examples (the routing figure's upstream
    gradient, the tie grid, overlapping windows), explicit ties (the first maximum in row-major order gets all of
    it, not a share), and random inputs full of ties with overlapping and skipping windows."""
    backward = lecture["maxpool_backward"]
    grid, ties = lecture["SEED_GRID"], lecture["TIE_GRID"]
    upstream = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[2, 0], expected[3, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(backward(grid, upstream), expected)
    np.testing.assert_array_equal(backward(grid, upstream), tape_pool_gradient(grid, upstream, 2, 2, "max"))
    # ties: TensorFlow gives the whole upstream value to the first maximum in row-major order
    tie_expected = np.zeros((4, 4))
    tie_expected[0, 0] = tie_expected[0, 3] = tie_expected[3, 0] = tie_expected[2, 2] = 1
    np.testing.assert_array_equal(tape_pool_gradient(ties, np.ones((2, 2)), 2, 2, "max"), tie_expected)
    np.testing.assert_array_equal(backward(ties, np.ones((2, 2))), tie_expected)
    for window, first in [([[1, 1], [0, 0]], (0, 0)), ([[0, 1], [1, 0]], (0, 1)), ([[0, 0], [1, 1]], (1, 0))]:
        want = np.zeros((2, 2))
        want[first] = 1.0
        np.testing.assert_array_equal(tape_pool_gradient(window, [[1.0]], 2, 2, "max"), want)
        np.testing.assert_array_equal(backward(np.array(window, dtype=float), np.ones((1, 1))), want)
    # overlapping windows add up: the 6 is the maximum of four 2x2 windows with stride 1
    overlapping = backward(grid, np.ones((3, 3)), 2, 1)
    assert overlapping[1, 1] == 4
    np.testing.assert_array_equal(overlapping, tape_pool_gradient(grid, np.ones((3, 3)), 2, 1, "max"))
    rng = np.random.default_rng(3)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(2, 9, 2))
        pool_size, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if pool_size > min(height, width):
            continue
        x = rng.integers(0, 3, (height, width)).astype(np.float64)  # values 0, 1, 2: many ties
        out = ((height - pool_size) // stride + 1, (width - pool_size) // stride + 1)
        upstream = rng.normal(size=out)
        case = str((x.shape, pool_size, stride))
        reference = tape_pool_gradient(x, upstream, pool_size, stride, "max")
        np.testing.assert_allclose(backward(x, upstream, pool_size, stride), reference, atol=1e-5, err_msg=case)


def test_avgpool_backward_spreads_equally(lecture):
    """Average pooling's backward pass against tf.GradientTape: each cell gets 1 / k^2 of each window it is in."""
    backward = lecture["avgpool_backward"]
    upstream = np.array([[1.0, 2.0], [3.0, 4.0]])
    grad = backward((4, 4), upstream)
    np.testing.assert_allclose(grad, np.kron(upstream, np.ones((2, 2))) / 4)
    np.testing.assert_allclose(
        grad, tape_pool_gradient(lecture["SEED_GRID"], upstream, 2, 2, "average"), atol=1e-6
    )
    rng = np.random.default_rng(5)
    for _ in range(30):
        height, width = (int(v) for v in rng.integers(2, 9, 2))
        pool_size, stride = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if pool_size > min(height, width):
            continue
        x = rng.normal(size=(height, width))
        upstream = rng.normal(size=((height - pool_size) // stride + 1, (width - pool_size) // stride + 1))
        reference = tape_pool_gradient(x, upstream, pool_size, stride, "average")
        np.testing.assert_allclose(backward(x.shape, upstream, pool_size, stride), reference, atol=1e-5)


def test_pool_backward_rejects_an_upstream_gradient_of_the_wrong_shape(lecture):
    with pytest.raises(ValueError, match="upstream gradient has shape"):
        lecture["maxpool_backward"](lecture["SEED_GRID"], np.ones((3, 3)))
    with pytest.raises(ValueError, match="upstream gradient has shape"):
        lecture["avgpool_backward"]((4, 4), np.ones((2, 2)), 2, 1)


def lecture_stage_gradients(lecture, x, w, b, upstream, pool_size, stride, kind):
    """The source lecture's product for one stage (conv, ReLU, pooling) from the lecture's functions: V_pool,
    times ReLU's derivative, then the two convolutions. Returns (V_pool, dJ/dF, dJ/db, V^(N))."""
    filter_output = lecture["conv2d_single"](x, w, b)
    activations = lecture["relu"](filter_output)
    if kind == "max":
        v_pool = lecture["maxpool_backward"](activations, upstream, pool_size, stride)
    else:
        v_pool = lecture["avgpool_backward"](activations.shape, upstream, pool_size, stride)
    delta = np.where(filter_output > 0, v_pool, 0.0)
    dw = lecture["conv2d_backward_weights"](x, delta)
    return v_pool, dw, lecture["conv2d_backward_bias"](delta), lecture["conv2d_backward_input"](delta, w)


def tape_stage_gradients(x, w, b, upstream, pool_size, stride, kind):
    x_var = tf.Variable(np.asarray(x, dtype=np.float32)[None, :, :, None])
    w_var = tf.Variable(np.asarray(w, dtype=np.float32)[:, :, None, None])
    b_var = tf.Variable([np.float32(b)])
    pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    with tf.GradientTape() as tape:
        out = pool(tf.nn.relu(tf.nn.conv2d(x_var, w_var, 1, "VALID") + b_var), pool_size, stride, "VALID")
        objective = tf.reduce_sum(out[0, :, :, 0] * np.asarray(upstream, dtype=np.float32))
    dx, dw, db = tape.gradient(objective, [x_var, w_var, b_var])
    return np.asarray(dw[:, :, 0, 0], np.float64), float(db[0]), np.asarray(dx[0, :, :, 0], np.float64)


@pytest.mark.parametrize("kind", ["max", "average"])
def test_stage_sensitivity_matches_gradient_tape(lecture, kind):
    """The source lecture's sensitivity V^(N) = dO/dX . dL/dO . V_pool^(N+1) and filter gradient, composed from the
    lecture's functions, against tf.GradientTape on a whole stage: the worked example (with the values the text
    quotes) and random stages."""
    x, w, b = lecture["BACKPROP_INPUT"], lecture["BACKPROP_KERNEL"], lecture["BACKPROP_BIAS"]
    upstream = lecture["STAGE_UPSTREAM"]
    v_pool, dw, db, sensitivity = lecture_stage_gradients(lecture, x, w, b, upstream, 2, 1, kind)
    for ours, theirs in zip((dw, db, sensitivity), tape_stage_gradients(x, w, b, upstream, 2, 1, kind)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    if kind == "max":  # the overlapping windows sharing the 14.5 and the 19.5 add up: 1 + 0.5 and -2 + 1
        assert (v_pool[1, 0], v_pool[1, 2], np.count_nonzero(v_pool)) == (1.5, -1.0, 2)
    else:  # ReLU's derivative removes the sensitivity from the three cells where the filter output is negative
        assert np.count_nonzero(lecture["conv2d_single"](x, w, b) < 0) == 3
    rng = np.random.default_rng(13 if kind == "max" else 17)
    for height, width, k, pool_size, stride in [(6, 6, 3, 2, 2), (7, 5, 2, 2, 1), (9, 8, 3, 3, 2)]:
        x, w, b = rng.normal(size=(height, width)), rng.normal(size=(k, k)), float(rng.normal())
        conv_h, conv_w = height - k + 1, width - k + 1
        upstream = rng.normal(size=((conv_h - pool_size) // stride + 1, (conv_w - pool_size) // stride + 1))
        _, dw, db, sensitivity = lecture_stage_gradients(lecture, x, w, b, upstream, pool_size, stride, kind)
        reference = tape_stage_gradients(x, w, b, upstream, pool_size, stride, kind)
        for ours, theirs in zip((dw, db, sensitivity), reference):
            np.testing.assert_allclose(ours, theirs, atol=1e-4)
