"""Lecture 05 (training deep networks): the lecture's own code agrees with hand arithmetic and with Keras:
parameter counts of the lab's grid, iterations per epoch, initializer scales, batch norm, dropout, weight
penalties, optimizer update rules and learning-rate schedules. No long training."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.support.nbcode import load_namespace, notebook_text

NOTEBOOK = "notebooks/05_training_deep_nets.ipynb"


@pytest.fixture(scope="module")
def lecture():
    return load_namespace(NOTEBOOK)


def dense(n_in, n_out):
    return n_in * n_out + n_out


# Parameter counts from independent arithmetic, per (hidden_layers, units).
EXPECTED_PARAMETERS = {
    (0, 100): 784 * 10 + 10,  # the linear model: 7,850
    (2, 100): dense(784, 100) + dense(100, 100) + dense(100, 10),  # 89,610
    (4, 100): dense(784, 100) + 3 * dense(100, 100) + dense(100, 10),  # 109,810
    (2, 200): dense(784, 200) + dense(200, 200) + dense(200, 10),  # 199,210
}


def test_expected_counts_are_the_numbers_in_the_text():
    assert EXPECTED_PARAMETERS == {(0, 100): 7_850, (2, 100): 89_610, (4, 100): 109_810, (2, 200): 199_210}


def test_lab_4a_grid_has_four_exercises_of_two_runs(lecture):
    grid = lecture["LAB_4A_GRID"]
    assert len(grid) == 4
    assert all(len(runs) == 2 for runs in grid.values())
    ex1, ex2, ex3, ex4 = (list(runs.values()) for runs in grid.values())
    assert [c["hidden_layers"] for c in ex1] == [2, 0]
    assert [c["hidden_layers"] for c in ex2] == [2, 4] and {c["units"] for c in ex2} == {100}
    assert [c["units"] for c in ex3] == [100, 200]
    assert [c["optimizer"][1] for c in ex4] == [0.002, 0.02]
    for runs in (ex1, ex2, ex3, ex4):  # both runs of an exercise are trained the same way
        assert runs[0]["optimizer"][0] == runs[1]["optimizer"][0]
    for runs in (ex1, ex2, ex3):
        assert runs[0]["optimizer"] == runs[1]["optimizer"]


def test_grid_models_have_the_expected_parameter_counts(lecture):
    for runs in lecture["LAB_4A_GRID"].values():
        for config in runs.values():
            key = (config["hidden_layers"], config["units"]) if config["hidden_layers"] else (0, 100)
            model = lecture["build_mlp"](config["hidden_layers"], config["units"])
            assert model.count_params() == EXPECTED_PARAMETERS[key]
            assert lecture["mlp_parameters"](config["hidden_layers"], config["units"]) == EXPECTED_PARAMETERS[key]
            assert model.output_shape == (None, 10)


def test_iterations_per_epoch_by_hand(lecture):
    f = lecture["iterations_per_epoch"]
    assert f(60_000, 100) == 600
    assert f(60_000, 128) == 469  # 468.75 by the slide's formula; the last batch has 96 images
    assert f(60_000, 64) == 938
    assert f(54_000, 100) == 540
    assert f(1, 128) == 1
    with pytest.raises(ValueError):
        f(0, 32)


@pytest.mark.parametrize("n, batch_size", [(250, 32), (300, 100), (97, 10)])
def test_iterations_per_epoch_match_the_steps_keras_runs(lecture, n, batch_size):
    rng = np.random.default_rng(0)
    x = rng.random((n, lecture["N_INPUTS"])).astype("float32")
    y = rng.integers(0, 10, size=n)
    model = lecture["compile_classifier"](lecture["build_mlp"](0), lecture["make_optimizer"]("sgd", 0.01))
    counter = lecture["BatchCounter"]()
    model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0, callbacks=[counter])
    assert counter.batches_per_epoch == [lecture["iterations_per_epoch"](n, batch_size)] * 2


def test_flatten_and_scale(lecture):
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = lecture["flatten_and_scale"](images)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_allclose(out, [[0.0, 1.0, 0.2, 0.4]], atol=1e-7)


def test_initializer_formulas_match_keras_samples(lecture):
    fan_in, fan_out = 400, 300
    assert lecture["glorot_uniform_limit"](fan_in, fan_out) == pytest.approx(math.sqrt(6 / 700))
    assert lecture["he_normal_std"](fan_in) == pytest.approx(math.sqrt(2 / 400))
    glorot = keras.ops.convert_to_numpy(keras.initializers.GlorotUniform(seed=1)((fan_in, fan_out)))
    assert np.abs(glorot).max() <= lecture["glorot_uniform_limit"](fan_in, fan_out)
    assert glorot.std() == pytest.approx(math.sqrt(2 / 700), rel=0.02)
    he = keras.ops.convert_to_numpy(keras.initializers.HeNormal(seed=1)((fan_in, fan_out)))
    assert he.std() == pytest.approx(lecture["he_normal_std"](fan_in), rel=0.02)


def test_slide_uniform_is_positive_with_the_slide_limit(lecture):
    w = keras.ops.convert_to_numpy(lecture["make_initializer"]("U(0, 1/sqrt(fan_in+fan_out))")((300, 100)))
    limit = 1 / math.sqrt(400)
    assert w.min() >= 0 and w.max() <= limit
    assert w.mean() == pytest.approx(limit / 2, rel=0.02)


def test_activation_stats_small_init_vanishes_and_he_keeps_relu_scale(lecture):
    x = np.random.default_rng(0).random((128, lecture["N_INPUTS"])).astype("float32")
    stats = {}
    for name in ("small N(0, 0.01)", "He normal"):
        model = lecture["build_deep_mlp"](depth=6, units=128, activation="relu", initializer=name)
        means, stds = lecture["activation_stats"](model, x)
        assert len(means) == len(stds) == 6
        stds_by_hand = []
        h = x
        for layer in model.layers[:-1]:
            h = keras.ops.convert_to_numpy(layer(h))
            if isinstance(layer, keras.layers.Activation):
                stds_by_hand.append(h.std())
        np.testing.assert_allclose(stds, stds_by_hand, rtol=1e-5)
        stats[name] = stds
    assert stats["small N(0, 0.01)"][-1] < 1e-5 * stats["small N(0, 0.01)"][0]
    assert 0.3 < stats["He normal"][-1] / stats["He normal"][0] < 3


def test_gradient_rms_has_one_value_per_dense_layer(lecture):
    x = np.random.default_rng(0).random((32, lecture["N_INPUTS"])).astype("float32")
    model = lecture["build_deep_mlp"](depth=3, units=16, activation="tanh")
    grads = lecture["kernel_gradient_rms"](model, x, np.zeros(32, dtype=int))
    assert grads.shape == (4,) and np.all(grads > 0)


def test_batchnorm_formula_matches_keras_training_mode(lecture):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(16, 5)) * [1, 5, 0.1, 2, 30] + [0, -3, 1, 8, 100]).astype("float32")
    gamma = rng.normal(size=5).astype("float32")
    beta = rng.normal(size=5).astype("float32")
    layer = keras.layers.BatchNormalization()
    layer.build((None, 5))
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    expected = keras.ops.convert_to_numpy(layer(x, training=True))
    ours = lecture["batchnorm_train_forward"](x, gamma, beta, epsilon=layer.epsilon)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
    # by hand, for one feature
    col = x[:, 1].astype(np.float64)
    by_hand = (col - col.mean()) / np.sqrt(((col - col.mean()) ** 2).mean() + 1e-3) * gamma[1] + beta[1]
    np.testing.assert_allclose(ours[:, 1], by_hand, rtol=1e-10)


def test_batchnorm_parameter_counts(lecture):
    layer = keras.layers.BatchNormalization()
    layer.build((None, 64))
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    assert lecture["batchnorm_parameters"](64) == (layer.count_params(), trainable) == (256, 128)


def test_dropout_scaling_agrees_with_keras(lecture):
    rate = 0.3
    x = np.random.default_rng(0).random((400, 50)).astype("float32") + 0.1
    layer = keras.layers.Dropout(rate, seed=1)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)
    assert abs((1 - kept.mean()) - rate) < 0.02
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    ours = lecture["inverted_dropout"](x, rate, np.random.default_rng(12345))  # independent of x
    ours_kept = ours != 0
    np.testing.assert_allclose(ours[ours_kept], x[ours_kept] / (1 - rate), rtol=1e-6)
    assert ours.mean() == pytest.approx(x.mean(), rel=0.02)  # the expected value is preserved


def test_weight_penalty_matches_keras_regularizers(lecture):
    w = np.random.default_rng(1).normal(size=(30, 20)).astype("float32")
    for l1, l2 in ((0.01, 0.0), (0.0, 0.01), (1e-3, 1e-2)):
        expected = float(keras.regularizers.L1L2(l1=l1, l2=l2)(w))
        assert lecture["weight_penalty"](w, l1, l2) == pytest.approx(expected, rel=1e-5)
    assert lecture["near_zero_fraction"](np.array([0.0, 1e-4, 0.5, -2.0])) == 0.5


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "rmsprop", "adam"])
def test_optimizer_formulas_trace_the_keras_path(lecture, name):
    lr, beta = 0.1, 0.9
    keras_optimizers = {
        "sgd": keras.optimizers.SGD(lr),
        "momentum": keras.optimizers.SGD(lr * (1 - beta), momentum=beta),  # the lecture's form, rescaled
        "nesterov": keras.optimizers.SGD(lr, momentum=beta, nesterov=True),
        "rmsprop": keras.optimizers.RMSprop(lr),
        "adam": keras.optimizers.Adam(lr),
    }
    w0, steps = [-3.0, 1.0], 25
    ours = lecture["run_optimizer"](name, lecture["toy_gradient"], w0, lr, steps, beta=beta,
                                    lookahead=(name == "nesterov"))  # fmt: skip
    theirs = lecture["keras_trajectory"](keras_optimizers[name], lecture["toy_gradient"], w0, steps)
    assert ours.shape == theirs.shape == (steps + 1, 2)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_momentum_by_hand(lecture):
    path = lecture["run_optimizer"]("momentum", lambda w: np.ones_like(w), [0.0], 0.1, 3, beta=0.9)
    np.testing.assert_allclose(path[:, 0], [0.0, -0.01, -0.029, -0.0561])


def test_schedules_match_keras(lecture):
    assert lecture["step_decay"](0, 0.1, 0.5, 5) == 0.1
    assert lecture["step_decay"](12, 0.1, 0.5, 5) == pytest.approx(0.025)
    exponential = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=math.exp(-0.1))
    cosine = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=900, warmup_target=0.1, warmup_steps=100)
    for step in (0, 1, 7, 50, 99, 100, 101, 500, 999):
        assert lecture["exponential_decay"](step) == pytest.approx(float(exponential(step)), rel=1e-5)
        got = lecture["warmup_then_cosine"](step, peak=0.1, warmup_steps=100, total_steps=1000)
        assert got == pytest.approx(float(cosine(step)), rel=1e-4, abs=1e-7)


# ---------------------------------------------------------------------------------- new-bob and ReduceLROnPlateau


def test_new_bob_rule_halves_after_a_single_poor_epoch(lecture):
    """The lecture's rule: no patience, compared with the epoch before; threshold 0 halves when the loss rises."""
    rates = lecture["new_bob_rates"]
    assert rates([1.0, 0.8, 0.85, 0.7, 0.695, 0.6], 0.1, threshold=0.01) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    )
    assert rates([1.0, 0.9, 0.95, 0.94, 0.5], 0.2) == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.1])


def test_new_bob_callback_is_reduce_lr_on_plateau_without_patience(lecture):
    """Keras' ReduceLROnPlateau is new-bob only with factor 0.5, a patience of one epoch and min_delta as the
    threshold (its defaults, factor 0.1 and patience 10, are a different schedule)."""
    callback = lecture["new_bob_callback"](0.01)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert callback.monitor == "val_loss" and callback.factor == 0.5
    assert callback.patience <= 1 and callback.cooldown == 0
    assert abs(callback.min_delta) == pytest.approx(0.01)
    default = keras.callbacks.ReduceLROnPlateau(factor=0.5)
    assert default.patience == 10  # what the lecture must not present as new-bob


def test_new_bob_callback_agrees_with_the_rule_when_each_epoch_is_the_best(lecture):
    """Driven through real Keras callback calls: on a curve that never rises, the best epoch is the previous one,
    and the callback halves exactly where the rule does."""
    curve = [1.0, 0.9, 0.895, 0.8, 0.78, 0.779]
    expected = lecture["new_bob_rates"](curve, 0.1, threshold=0.01)
    assert expected == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    got = lecture["plateau_rates"](lecture["new_bob_callback"](0.01), curve, 0.1)
    assert got == pytest.approx(expected, rel=1e-6)


def test_new_bob_comparison_says_what_the_callbacks_do(lecture):
    """The text's reading of the comparison: the callback decides as the rule does except at epochs 5 and 11, and
    ReduceLROnPlateau with its default patience never lowers the rate on this curve."""
    curve, threshold = lecture["NEW_BOB_CURVE"], lecture["NEW_BOB_THRESHOLD"]
    rule = lecture["new_bob_rates"](curve, 0.1, threshold=threshold)
    close = lecture["plateau_rates"](lecture["new_bob_callback"](threshold), curve, 0.1)
    defaults = lecture["plateau_rates"](keras.callbacks.ReduceLROnPlateau(factor=0.5), curve, 0.1)

    def halved(rates):
        return [e > 0 and rates[e] < 0.99 * rates[e - 1] for e in range(len(rates))]

    assert [e for e, (a, b) in enumerate(zip(halved(rule), halved(close))) if a != b] == [5, 11]
    assert halved(rule)[5] is False and halved(close)[5] is True  # recovers on the epoch before, not on the best
    assert halved(rule)[11] is True and halved(close)[11] is False  # the other way round
    assert curve[4:6] == [0.7, 0.665] and curve[3] == 0.66 and curve[10:12] == [0.592, 0.585] and curve[8] == 0.6
    assert defaults == pytest.approx([0.1] * len(curve))


def test_text_no_longer_calls_reduce_lr_on_plateau_new_bob():
    """The slip fixed: `ReduceLROnPlateau(factor=0.5)` (patience 10 by default) was said to be new-bob."""
    text = notebook_text(NOTEBOOK)
    assert "`ReduceLROnPlateau(factor=0.5)`\n  callback does this" not in text
    assert "callback does this" not in text
    assert "patience=1" in text and "min_delta" in text
