"""Lecture 01 (backpropagation): the lecture's own code reproduces the source lecture's worked example.

The example is f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) with w = [0, -3, -3] and x = [-1, -2]. Every
expected value here is computed independently of the notebook: from the closed form of the sigmoid and its
derivative s (1 - s), and from TensorFlow's automatic differentiation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.nbcode import load_namespace

NOTEBOOK = "notebooks/01_backprop.ipynb"

# The order of the source lecture's slides: forward values, then the backward steps in reverse order.
FORWARD_ORDER = ["t0", "t1", "t01", "t012", "n_t", "e", "denom", "f"]
BACKWARD_ORDER = ["ddenom", "de", "dn_t", "dt012", "dw2", "dt01", "dt0", "dt1", "dw1", "dx1", "dw0", "dx0"]


@pytest.fixture(scope="module")
def ns():
    return load_namespace(NOTEBOOK)


def expected_values(w, x):
    """Every forward value and every gradient of the example, from closed forms (not from the notebook)."""
    z = w[0] * x[0] + w[1] * x[1] + w[2]
    s = 1 / (1 + math.exp(-z))
    slope = s * (1 - s)  # sigma'(z)
    forward = {"t0": w[0] * x[0], "t1": w[1] * x[1], "t01": w[0] * x[0] + w[1] * x[1], "t012": z, "n_t": -z,
               "e": math.exp(-z), "denom": 1 + math.exp(-z), "f": s}  # fmt: skip
    backward = {
        "ddenom": -(s**2),  # d(1/u)/du = -1/u^2 = -s^2
        "de": -(s**2),
        "dn_t": -slope,  # e^{-z} * (-s^2) = -s (1 - s)
        "dt012": slope,
        "dw2": slope,
        "dt01": slope,
        "dt0": slope,
        "dt1": slope,
        "dw1": x[1] * slope,
        "dx1": w[1] * slope,
        "dw0": x[0] * slope,
        "dx0": w[0] * slope,
    }
    return forward, backward


def tape_gradients(w, x):
    """df/dw and df/dx from tf.GradientTape, in float64."""
    import tensorflow as tf

    w_var, x_var = tf.Variable(np.asarray(w, dtype=np.float64)), tf.Variable(np.asarray(x, dtype=np.float64))
    with tf.GradientTape() as tape:
        f = tf.sigmoid(tf.reduce_sum(w_var[:2] * x_var) + w_var[2])
    dw, dx = tape.gradient(f, [w_var, x_var])
    return float(f), dw.numpy(), dx.numpy()


def test_worked_example_data_is_the_source_lectures(ns):
    np.testing.assert_array_equal(ns["w"], [0.0, -3.0, -3.0])
    np.testing.assert_array_equal(ns["x"], [-1.0, -2.0])


def test_forward_values(ns):
    forward = ns["neuron_forward"](ns["w"], ns["x"])
    assert list(forward) == FORWARD_ORDER
    expected, _ = expected_values([0.0, -3.0, -3.0], [-1.0, -2.0])
    for name in FORWARD_ORDER:
        assert forward[name] == pytest.approx(expected[name], abs=1e-12), name
    # the numbers the lecture prints
    assert (forward["t0"], forward["t1"], forward["t01"], forward["t012"], forward["n_t"]) == (0, 6, 6, 3, -3)
    assert forward["f"] == pytest.approx(1 / (1 + math.exp(-3)), abs=1e-12)
    assert round(forward["f"], 5) == 0.95257


def test_backward_steps_in_the_source_order_match_the_analytic_gradient(ns):
    w, x = ns["w"], ns["x"]
    gradients = ns["neuron_backward"](w, x, ns["neuron_forward"](w, x))
    assert list(gradients) == BACKWARD_ORDER
    _, expected = expected_values(list(w), list(x))
    for name in BACKWARD_ORDER:
        assert gradients[name] == pytest.approx(expected[name], abs=1e-12), name
    assert round(gradients["dt012"], 6) == 0.045177
    assert round(gradients["dx1"], 6) == -0.135530
    assert gradients["dx0"] == 0  # w0 = 0 multiplies x0


def test_backward_matches_gradient_tape(ns):
    w, x = ns["w"], ns["x"]
    gradients = ns["neuron_backward"](w, x, ns["neuron_forward"](w, x))
    f, dw, dx = tape_gradients(w, x)
    assert ns["neuron_forward"](w, x)["f"] == pytest.approx(f, abs=1e-12)
    np.testing.assert_allclose([gradients["dw0"], gradients["dw1"], gradients["dw2"]], dw, atol=1e-12)
    np.testing.assert_allclose([gradients["dx0"], gradients["dx1"]], dx, atol=1e-12)


@pytest.mark.parametrize(
    "w, x",
    [([2.0, -3.0, -3.0], [-1.0, -2.0]), ([0.7, 1.3, -0.4], [2.5, -1.1]), ([-1.5, 0.2, 4.0], [0.3, 3.0])],
)
def test_backward_is_right_for_other_inputs(ns, w, x):
    """The lecture's functions are general, not tuned to the example (the first case is exercise 1)."""
    w, x = np.array(w), np.array(x)
    gradients = ns["neuron_backward"](w, x, ns["neuron_forward"](w, x))
    f, dw, dx = tape_gradients(w, x)
    assert ns["neuron_forward"](w, x)["f"] == pytest.approx(f, abs=1e-12)
    np.testing.assert_allclose([gradients["dw0"], gradients["dw1"], gradients["dw2"]], dw, atol=1e-12)
    np.testing.assert_allclose([gradients["dx0"], gradients["dx1"]], dx, atol=1e-12)
    shortcut = ns["neuron_backward_sigmoid_gate"](w, x)
    for name, value in shortcut.items():
        assert value == pytest.approx(gradients[name], abs=1e-12), name


def test_numerical_gradient_agrees_with_backprop(ns):
    w, x = ns["w"], ns["x"]
    gradients = ns["neuron_backward"](w, x, ns["neuron_forward"](w, x))
    numeric_w = ns["numerical_gradient"](lambda p: ns["neuron_output"](p, x), w)
    numeric_x = ns["numerical_gradient"](lambda p: ns["neuron_output"](w, p), x)
    np.testing.assert_allclose(numeric_w, [gradients["dw0"], gradients["dw1"], gradients["dw2"]], atol=1e-8)
    np.testing.assert_allclose(numeric_x, [gradients["dx0"], gradients["dx1"]], atol=1e-8)


def test_numerical_gradient_on_known_functions(ns):
    numerical_gradient = ns["numerical_gradient"]
    point = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(numerical_gradient(lambda p: float(np.sum(p**3)), point), 3 * point**2, rtol=1e-7)
    assert numerical_gradient(lambda p: float(np.sum(p**3)), point).shape == point.shape
    np.testing.assert_allclose(
        numerical_gradient(lambda p: math.sin(p[0]) * p[1], [0.3, 2.0]), [2.0 * math.cos(0.3), math.sin(0.3)],
        atol=1e-9,
    )  # fmt: skip


def test_activation_derivatives_match_tensorflow(ns):
    import tensorflow as tf

    z = np.linspace(-6, 6, 121)
    z = z[np.abs(z) > 1e-9]  # ReLU has no derivative at 0
    references = {
        "sigmoid": tf.sigmoid,
        "tanh": tf.tanh,
        "ReLU": tf.nn.relu,
        "leaky ReLU (alpha = 0.1)": lambda t: tf.nn.leaky_relu(t, alpha=0.1),
        "swish (beta = 1)": tf.nn.silu,
    }
    assert set(ns["ACTIVATIONS"]) == set(references)
    for name, (fn, grad_fn) in ns["ACTIVATIONS"].items():
        z_var = tf.Variable(z)
        with tf.GradientTape() as tape:
            out = references[name](z_var)
        np.testing.assert_allclose(fn(z), out.numpy(), atol=1e-7, err_msg=name)
        np.testing.assert_allclose(grad_fn(z), tape.gradient(out, z_var).numpy(), atol=1e-7, err_msg=name)
    # swish with another beta, against the product rule done by TensorFlow
    z_var = tf.Variable(z)
    with tf.GradientTape() as tape:
        out = z_var * tf.sigmoid(2.5 * z_var)
    np.testing.assert_allclose(ns["swish_grad"](z, 2.5), tape.gradient(out, z_var).numpy(), atol=1e-12)


def test_activation_facts_the_lecture_states(ns):
    z = np.linspace(-10, 10, 200_001)
    assert ns["sigmoid_grad"](z).max() == pytest.approx(0.25)
    assert ns["tanh_grad"](z).max() == pytest.approx(1.0)
    swish = ns["swish"](z)
    assert swish.min() == pytest.approx(-0.2785, abs=1e-4)
    assert z[np.argmin(swish)] == pytest.approx(-1.2785, abs=1e-3)
    assert np.all(swish[z < 0] < 0)  # the slide's "nonnegative everywhere" is wrong
