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
        "ELU (alpha = 1)": tf.nn.elu,
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


def test_elu_against_keras_for_another_alpha_and_the_facts_the_lecture_states(ns):
    import keras
    import tensorflow as tf

    z = np.linspace(-8, 8, 161)
    z = z[np.abs(z) > 1e-9]
    z_var = tf.Variable(z)
    with tf.GradientTape() as tape:
        out = keras.activations.elu(z_var, alpha=0.5)
    np.testing.assert_allclose(ns["elu"](z, alpha=0.5), out.numpy(), atol=1e-12)
    np.testing.assert_allclose(ns["elu_grad"](z, alpha=0.5), tape.gradient(out, z_var).numpy(), atol=1e-12)
    assert ns["elu"](-30.0) == pytest.approx(-1.0)  # saturates at -alpha
    assert ns["elu_grad"](-1e-9) == pytest.approx(1.0) and ns["elu_grad"](1e-9) == 1.0  # continuous at 0
    assert ns["elu_grad"](-1e-9, alpha=0.5) == pytest.approx(0.5)  # a jump for another alpha
    # mean output for standard-normal inputs, against the closed forms:
    # E[ELU] = phi(0) + e^(1/2) Phi(-1) - 1/2 and E[ReLU] = phi(0)
    phi0 = 1 / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(-1 / math.sqrt(2)))
    grid = np.linspace(-12, 12, 240_001)
    density = np.exp(-(grid**2) / 2) * phi0
    assert np.trapezoid(ns["elu"](grid) * density, grid) == pytest.approx(phi0 + math.exp(0.5) * big_phi - 0.5)
    assert np.trapezoid(ns["relu"](grid) * density, grid) == pytest.approx(phi0)


def test_maxout_special_cases_backward_and_keras_layer(ns):
    import tensorflow as tf

    rng = np.random.default_rng(11)
    x = rng.normal(size=(300, 5))
    w, b = rng.normal(size=(5, 6)), rng.normal(size=6)
    forward = ns["maxout_forward"]
    z = x @ w + b
    relu_out, _ = forward(x, np.stack([w, 0 * w]), np.stack([b, 0 * b]))
    np.testing.assert_allclose(relu_out, np.maximum(z, 0), atol=1e-12)
    leaky_out, _ = forward(x, np.stack([w, 0.2 * w]), np.stack([b, 0.2 * b]))
    np.testing.assert_allclose(leaky_out, np.where(z > 0, z, 0.2 * z), atol=1e-12)
    abs_out, _ = forward(x, np.stack([w, -w]), np.stack([b, -b]))
    np.testing.assert_allclose(abs_out, np.abs(z), atol=1e-12)

    kernel, bias = rng.normal(size=(4, 5, 6)), rng.normal(size=(4, 6))
    upstream = rng.normal(size=(300, 6))
    x_var, k_var, b_var = tf.Variable(x), tf.Variable(kernel), tf.Variable(bias)
    with tf.GradientTape() as tape:  # an independent maxout: the max of the pieces, by TensorFlow
        pieces = tf.einsum("bi,kiu->bku", x_var, k_var) + b_var
        loss = tf.reduce_sum(tf.reduce_max(pieces, axis=1) * upstream)
    out, winner = forward(x, kernel, bias)
    np.testing.assert_allclose(out, tf.reduce_max(pieces, axis=1).numpy(), atol=1e-12)
    grads = ns["maxout_backward"](x, kernel, winner, upstream)
    for mine, theirs in zip(grads, tape.gradient(loss, [x_var, k_var, b_var])):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-10)

    layer = ns["Maxout"](6, pieces=4)
    layer.build((None, 5))
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(layer(x.astype("float32")).numpy(), out, atol=1e-4)
    assert layer.count_params() == 4 * (5 * 6 + 6)
    assert ns["Maxout"].from_config(layer.get_config()).pieces == 4


def test_losses_against_keras_and_their_gradients(ns):
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(12)
    q, y = rng.dirichlet(np.ones(6), size=50), np.eye(6)[rng.integers(0, 6, size=50)]
    keras_ce = keras.losses.CategoricalCrossentropy(reduction=None)(y, q).numpy()
    np.testing.assert_allclose(ns["cross_entropy"](q, y), keras_ce, rtol=1e-5)
    np.testing.assert_allclose(ns["cross_entropy"](q, y), -np.log(q[y == 1]), rtol=1e-12)
    pred, target = rng.normal(scale=3.0, size=(50, 4)), rng.normal(size=(50, 4))
    mse = keras.losses.MeanSquaredError(reduction=None)(target, pred).numpy()
    np.testing.assert_allclose(ns["squared_error"](pred, target), mse * 4 / 2, rtol=1e-5)
    huber = keras.losses.Huber(delta=1.0, reduction=None)(target, pred).numpy()
    np.testing.assert_allclose(ns["smooth_l1"](pred, target), huber * 4, rtol=1e-5)

    # the lecture's gradients: q - y for the squared error, q - y clipped to [-1, 1] for smoothed L1 (away from
    # the kinks at |q - y| = 1), measured on the lecture's own losses with its own central differences
    away = np.abs(np.abs(pred - target) - 1) > 1e-3
    clipped = np.clip(pred - target, -1, 1)
    for loss, slope in ((ns["squared_error"], pred - target), (ns["smooth_l1"], clipped)):
        numeric = ns["numerical_gradient"](lambda q, loss=loss: loss(q, target).sum(), pred)
        np.testing.assert_allclose(numeric[away], slope[away], atol=1e-6)
    pred_var = tf.Variable(pred)
    with tf.GradientTape() as tape:
        huber = keras.losses.Huber(delta=1.0, reduction="sum")(target, pred_var) * 4
    np.testing.assert_allclose(tape.gradient(huber, pred_var).numpy()[away], clipped[away], atol=1e-5)


def test_squared_emd_grows_with_the_distance_of_the_mistake_where_cross_entropy_cannot(ns):
    emd, ce = ns["squared_emd"], ns["cross_entropy"]
    eye = np.eye(7)
    for true in range(7):
        for guess in range(7):
            assert emd(eye[guess], eye[true]) == pytest.approx(abs(guess - true))
    rng = np.random.default_rng(13)
    p, r = rng.dirichlet(np.ones(7), size=2)
    by_hand = sum((sum(p[: k + 1]) - sum(r[: k + 1])) ** 2 for k in range(7))
    assert emd(p, r) == pytest.approx(by_hand) and emd(p, r) == pytest.approx(emd(r, p))
    true, near, far = ns["ORDERED_TRUE"], ns["NEAR_MISS"], ns["FAR_MISS"]
    assert near[np.argmax(true)] == far[np.argmax(true)]  # the same probability for the true class
    assert ce(near, true) == pytest.approx(ce(far, true))
    assert emd(near, true) == pytest.approx(0.505) and emd(far, true) == pytest.approx(0.925)
