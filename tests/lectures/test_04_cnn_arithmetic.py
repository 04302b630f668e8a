"""Lecture 04 (CNN arithmetic): the lecture's own formulas against Keras, and the source lectures' figures.

The functions come from the notebook's cells tagged ``lecture-code``; every expected value is either a figure
stated in the source lectures or read from a real Keras layer or model built here.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import layers

from tests.support.nbcode import load_namespace

NOTEBOOK = "notebooks/04_cnn_arithmetic.ipynb"


@pytest.fixture(scope="module")
def ns():
    return load_namespace(NOTEBOOK)


def _zeros(h, w, c=1):
    return np.zeros((1, h, w, c), "float32")


def _keras_layers(model):
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def _check_table_against(ns, input_shape, spec, model):
    rows = ns["layer_table"](input_shape, spec)
    keras_layers = _keras_layers(model)
    assert len(rows) == len(keras_layers)
    for row, layer in zip(rows, keras_layers):
        assert tuple(layer.output.shape[1:]) == row["shape"], row["name"]
        assert layer.count_params() == row["params"], row["name"]
    assert ns["table_totals"](rows)["params"] == model.count_params()
    return rows


# ---------------------------------------------------------------- output sizes


def test_output_size_matches_keras_on_random_grid(ns):
    conv_output_size = ns["conv_output_size"]
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 150:
        h, w = int(rng.integers(3, 20)), int(rng.integers(3, 20))
        k, s = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        pad = ["valid", "same", 0, 1, 2, 3][int(rng.integers(0, 6))]
        p = 0 if isinstance(pad, str) else pad
        if pad != "same" and k > min(h, w) + 2 * p:
            continue
        c_in, filters = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        x = _zeros(h, w, c_in)
        if isinstance(pad, int):
            x = layers.ZeroPadding2D(pad)(x)
            y = layers.Conv2D(filters, k, strides=s)(x)
        else:
            y = layers.Conv2D(filters, k, strides=s, padding=pad)(x)
        expected = (conv_output_size(h, k, s, pad), conv_output_size(w, k, s, pad), filters)
        assert tuple(y.shape[1:]) == expected, (h, w, k, s, pad)
        checked += 1


def test_pooling_and_dilation_match_keras(ns):
    conv_output_size, pool_output_size = ns["conv_output_size"], ns["pool_output_size"]
    rng = np.random.default_rng(1)
    for _ in range(60):
        h, w = int(rng.integers(4, 20)), int(rng.integers(4, 20))
        pool = int(rng.integers(1, 5))
        s = [None, 1, 2, 3][int(rng.integers(0, 4))]
        pad = ["valid", "same"][int(rng.integers(0, 2))]
        y = layers.MaxPooling2D(pool, strides=s, padding=pad)(_zeros(h, w))
        assert tuple(y.shape[1:3]) == (pool_output_size(h, pool, s, pad), pool_output_size(w, pool, s, pad))
    for _ in range(40):
        h, w = int(rng.integers(8, 20)), int(rng.integers(8, 20))
        k, d = int(rng.integers(2, 4)), int(rng.integers(2, 4))
        pad = ["valid", "same"][int(rng.integers(0, 2))]
        y = layers.Conv2D(1, k, dilation_rate=d, padding=pad)(_zeros(h, w))
        assert tuple(y.shape[1:3]) == (conv_output_size(h, k, 1, pad, d), conv_output_size(w, k, 1, pad, d))


def test_same_padding_places_extra_zero_after(ns):
    same_padding = ns["same_padding"]
    assert same_padding(224, 11, 4) == (3, 4)
    assert same_padding(64, 3, 2) == (0, 1)
    assert same_padding(10, 3, 1) == (1, 1)
    # Explicit asymmetric padding with the zeros same_padding reports reproduces Keras 'same' exactly.
    rng = np.random.default_rng(2)
    for _ in range(20):
        n, k, s = int(rng.integers(5, 16)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
        x = rng.normal(size=(1, n, n, 1)).astype("float32")
        conv = layers.Conv2D(1, k, strides=s, padding="same")
        same = conv(x)
        before, after = same_padding(n, k, s)
        padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
        valid = layers.Conv2D(1, k, strides=s)
        valid.build(padded.shape)
        valid.set_weights(conv.get_weights())
        np.testing.assert_allclose(valid(padded).numpy(), same.numpy(), rtol=1e-5, atol=1e-5)


def test_invalid_configuration_is_refused(ns):
    with pytest.raises(ValueError):
        ns["conv_output_size"](3, 5)


# ---------------------------------------------------------------- parameters


def test_param_formulas_match_count_params(ns):
    rng = np.random.default_rng(3)
    for _ in range(40):
        k, c_in, filters = int(rng.integers(1, 8)), int(rng.integers(1, 40)), int(rng.integers(1, 70))
        use_bias = bool(rng.integers(0, 2))
        dm = int(rng.integers(1, 4))
        shape = (None, 10, 10, c_in)
        groups = 2 if c_in % 2 == 0 and filters % 2 == 0 else 1

        conv = layers.Conv2D(filters, k, use_bias=use_bias, groups=groups)
        conv.build(shape)
        assert conv.count_params() == ns["conv_params"](k, c_in, filters, use_bias, groups)

        dense = layers.Dense(filters, use_bias=use_bias)
        dense.build((None, c_in))
        assert dense.count_params() == ns["dense_params"](c_in, filters, use_bias)

        bn = layers.BatchNormalization()
        bn.build(shape)
        trainable = sum(int(np.prod(v.shape)) for v in bn.trainable_weights)
        assert (bn.count_params(), trainable) == ns["batchnorm_params"](c_in)

        depthwise = layers.DepthwiseConv2D(k, depth_multiplier=dm, use_bias=use_bias)
        depthwise.build(shape)
        assert depthwise.count_params() == ns["depthwise_params"](k, c_in, dm, use_bias)

        separable = layers.SeparableConv2D(filters, k, depth_multiplier=dm, use_bias=use_bias)
        separable.build(shape)
        assert separable.count_params() == ns["separable_params"](k, c_in, filters, dm, use_bias)


def test_rectangular_kernels(ns):
    conv = layers.Conv2D(7, (3, 5))
    conv.build((None, 9, 9, 4))
    assert conv.count_params() == ns["conv_params"]((3, 5), 4, 7)
    separable = layers.SeparableConv2D(7, (1, 7))
    separable.build((None, 9, 9, 4))
    assert separable.count_params() == ns["separable_params"]((1, 7), 4, 7)


# ---------------------------------------------------------------- multiplications and memory


def test_memory_example_of_s5(ns):
    result = ns["memory_example"](**ns["MEMORY_EXAMPLE"])
    claimed = ns["MEMORY_EXAMPLE_CLAIMED"]
    assert result["output_shape"] == (150, 100, 200)
    assert result["mults"] == claimed["mults"] == 225_000_000
    assert result["bits"] == claimed["bits"] == 96_000_000
    assert result["bytes_per_instance"] == 12_000_000
    # The slide's "11.4 MB" is mebibytes; in decimal megabytes it is 12.0.
    assert round(result["bytes_per_instance"] / ns["MiB"], 1) == claimed["mb_per_instance"]
    assert result["bytes_per_instance"] / ns["MB"] == 12.0
    assert result["bytes_per_batch"] == 1_200_000_000
    assert round(result["bytes_per_batch"] / ns["GiB"], 2) == 1.12
    assert round(result["bytes_per_batch"] / ns["GB"]) == claimed["gb_per_batch"]
    # The output tensor of the real layer has exactly that many bytes per instance.
    y = layers.Conv2D(200, 5, padding="same")(_zeros(150, 100, 3))
    assert y.numpy().nbytes == result["bytes_per_instance"]
    assert ns["activation_bytes"](tuple(y.shape[1:]), batch=100) == result["bytes_per_batch"]


def _keras_mults(layer):
    """Multiplications of a built Conv2D/SeparableConv2D/Dense layer, read from its weights and output."""
    out = layer.output.shape
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw, c_in, dm = layer.depthwise_kernel.shape
        return out[1] * out[2] * (kh * kw * c_in * dm + c_in * dm * out[3])
    if isinstance(layer, layers.Conv2D):
        kh, kw, c_per_group, filters = layer.kernel.shape
        return out[1] * out[2] * filters * kh * kw * c_per_group
    return int(np.prod(layer.kernel.shape))


def test_mults_match_layer_shapes_on_random_grid(ns):
    rng = np.random.default_rng(5)
    for _ in range(30):
        n, k, s = int(rng.integers(6, 20)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
        c_in, filters = int(rng.integers(1, 17)), int(rng.integers(1, 33))
        pad = ["valid", "same"][int(rng.integers(0, 2))]
        if pad == "valid" and k > n:
            continue
        inputs = keras.Input((n, n, c_in))
        conv = layers.Conv2D(filters, k, strides=s, padding=pad)
        sep = layers.SeparableConv2D(filters, k, strides=s, padding=pad)
        keras.Model(inputs, [conv(inputs), sep(inputs)])
        out = ns["conv_output_size"](n, k, s, pad)
        assert ns["conv_mults"](out, out, k, c_in, filters) == _keras_mults(conv)
        assert ns["separable_mults"](out, out, k, c_in, filters) == _keras_mults(sep)
        ratio = ns["separable_mults"](out, out, k, c_in, filters) / ns["conv_mults"](out, out, k, c_in, filters)
        assert math.isclose(ratio, ns["separable_ratio"](k, filters))


# ---------------------------------------------------------------- the source lectures' Keras models


def test_fashion_cnn_of_s5(ns):
    model = keras.Sequential(
        [
            keras.Input(shape=[28, 28, 1]),
            layers.Conv2D(64, 7, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu", padding="same"),
            layers.Conv2D(128, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(256, 3, activation="relu", padding="same"),
            layers.Conv2D(256, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    rows = _check_table_against(ns, ns["FASHION_CNN_INPUT"], ns["FASHION_CNN_SPEC"], model)
    assert model.count_params() == 1_413_834
    assert rows[8]["shape"] == (2304,)
    mults = sum(_keras_mults(layer) for layer in model.layers if isinstance(layer, (layers.Conv2D, layers.Dense)))
    assert ns["table_totals"](rows)["mults"] == mults


def test_s1_models(ns):
    same = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(filters=25, kernel_size=(3, 3), padding="same", activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
        ]
    )
    _check_table_against(ns, ns["S1_INPUT"], ns["S1_SAME_SPEC"], same)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(filters=25, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(filters=1250, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
        ]
    )
    rows = _check_table_against(ns, ns["S1_INPUT"], ns["S1_SPEC"], model)
    by_name = {r["name"]: r for r in rows}
    for name, shape in ns["S1_CLAIMED_SHAPES"].items():
        assert by_name[name]["shape"] == shape
    for name, weights in ns["S1_CLAIMED_WEIGHTS_PER_FILTER"].items():
        filters = by_name[name]["shape"][-1]
        assert by_name[name]["params"] == (weights + 1) * filters


def test_lenet5(ns):
    model = keras.Sequential(
        [
            keras.Input(shape=(32, 32, 1)),
            layers.Conv2D(6, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(16, 5, activation="tanh"),
            layers.AveragePooling2D(2),
            layers.Conv2D(120, 5, activation="tanh"),
            layers.Flatten(),
            layers.Dense(84, activation="tanh"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    rows = _check_table_against(ns, ns["LENET5_INPUT"], ns["LENET5_SPEC"], model)
    assert model.count_params() == 61_706
    by_name = {r["name"]: r for r in rows}
    for name, shape in ns["LENET5_CLAIMED_SIZES"].items():
        assert by_name[name]["shape"] == shape
    connections = ns["LENET5_C3_CONNECTIONS"]
    assert len(connections) == 16 and sorted(len(c) for c in connections) == [3] * 6 + [4] * 9 + [6]
    assert all(len(set(c)) == len(c) and set(c) <= set(range(6)) for c in connections)
    assert ns["lenet5_c3_params"]() == 1_516
    assert by_name["C3"]["params"] == 2_416
    assert sum(ns["lenet5_paper_params"]().values()) == 60_000


def _alexnet(input_size, c1_padding, final_pool, groups):
    stack = [
        keras.Input(shape=(input_size, input_size, 3)),
        layers.Conv2D(96, 11, strides=4, padding=c1_padding, activation="relu"),
        layers.MaxPooling2D(3, strides=2),
        layers.Conv2D(256, 5, padding="same", activation="relu", groups=groups),
        layers.MaxPooling2D(3, strides=2),
        layers.Conv2D(384, 3, padding="same", activation="relu"),
        layers.Conv2D(384, 3, padding="same", activation="relu", groups=groups),
        layers.Conv2D(256, 3, padding="same", activation="relu", groups=groups),
    ]
    if final_pool:
        stack.append(layers.MaxPooling2D(3, strides=2))
    stack += [
        layers.Flatten(),
        layers.Dense(4096, activation="relu"),
        layers.Dense(4096, activation="relu"),
        layers.Dense(1000, activation="softmax"),
    ]
    return keras.Sequential(stack)


def test_alexnet_variants(ns):
    claimed = ns["ALEXNET_CLAIMED_SIZES"]
    expected_params = {(True, 1): 62_378_344, (True, 2): 60_965_224, (False, 1): 201_838_952}
    for (final_pool, groups), params in expected_params.items():
        model = _alexnet(227, "valid", final_pool, groups)
        spec = ns["alexnet_spec"]("valid", final_pool, groups)
        rows = _check_table_against(ns, (227, 227, 3), spec, model)
        assert model.count_params() == params
        by_name = {r["name"]: r for r in rows}
        for name, shape in claimed.items():
            assert by_name[name]["shape"] == shape
        keras.backend.clear_session()
    # S5's literal reading (224 input, 'same' in C1) cannot give 55 x 55 maps.
    rows = ns["layer_table"]((224, 224, 3), ns["alexnet_spec"]("same"))
    c1 = layers.Conv2D(96, 11, strides=4, padding="same")(_zeros(224, 224, 3))
    assert rows[0]["shape"] == tuple(c1.shape[1:]) == (56, 56, 96)
    assert ns["conv_output_size"](224, 11, 4, "valid") == 54


def test_vgg19_spec_matches_keras_applications(ns):
    model = keras.applications.VGG19(weights=None)
    _check_table_against(ns, (224, 224, 3), ns["vgg_spec"](), model)
    del model
    keras.backend.clear_session()


# ---------------------------------------------------------------- Inception, ResNet, Xception


def _inception(x, f1, f3, f5, r3=None, r5=None, pool_proj=None):
    b1 = layers.Conv2D(f1, 1, padding="same")(x)
    b3 = layers.Conv2D(f3, 3, padding="same")(layers.Conv2D(r3, 1)(x) if r3 else x)
    b5 = layers.Conv2D(f5, 5, padding="same")(layers.Conv2D(r5, 1)(x) if r5 else x)
    bp = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    if pool_proj:
        bp = layers.Conv2D(pool_proj, 1)(bp)
    return layers.Concatenate()([b1, b3, b5, bp])


def _conv_mults(model):
    return sum(_keras_mults(layer) for layer in model.layers if isinstance(layer, layers.Conv2D))


def test_inception_modules(ns):
    naive_args, reduced_args = ns["INCEPTION_NAIVE_EXAMPLE"], ns["INCEPTION_REDUCED_EXAMPLE"]
    naive, reduced = ns["inception_naive"](**naive_args), ns["inception_reduced"](**reduced_args)
    inputs = keras.Input((28, 28, 256))
    naive_model = keras.Model(inputs, _inception(inputs, 128, 192, 96))
    reduced_model = keras.Model(inputs, _inception(inputs, 128, 192, 96, 64, 64, 64))
    assert naive_model.output.shape[-1] == naive["out_channels"] == 672
    assert reduced_model.output.shape[-1] == reduced["out_channels"] == 480
    assert naive_model.count_params() == naive["params"]
    assert reduced_model.count_params() == reduced["params"]
    assert _conv_mults(naive_model) == naive["mults"] == 854_196_224
    assert _conv_mults(reduced_model) == reduced["mults"] == 271_351_808
    # S5's 854M is right; its 358M is the listed terms plus the 3x3 term a second time.
    claimed = ns["INCEPTION_CLAIMED"]
    assert round(naive["mults"] / 1e6) == claimed["naive"] / 1e6
    assert round((reduced["mults"] + reduced["terms"]["3x3"]) / 1e6) == claimed["reduced"] / 1e6


def test_bottleneck_example(ns):
    result = ns["bottleneck_example"](**ns["BOTTLENECK_EXAMPLE"])
    inputs = keras.Input((28, 28, 192))
    direct = keras.Model(inputs, layers.Conv2D(32, 5, padding="same")(inputs))
    reduced = keras.Model(inputs, layers.Conv2D(32, 5, padding="same")(layers.Conv2D(16, 1)(inputs)))
    assert result["direct"] == _conv_mults(direct) == 120_422_400
    assert result["with_bottleneck"] == _conv_mults(reduced) == 12_443_648


def _residual_block(x, filters, strides):
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    y = layers.Activation("relu")(layers.BatchNormalization()(y))
    y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.BatchNormalization()(layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x))
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


@pytest.mark.parametrize(
    "size,c_in,filters,strides", [(56, 64, 64, 1), (56, 64, 128, 2), (28, 128, 256, 2), (8, 16, 32, 1)]
)
def test_residual_block(ns, size, c_in, filters, strides):
    inputs = keras.Input((size, size, c_in))
    block = keras.Model(inputs, _residual_block(inputs, filters, strides))
    total, trainable, projection = ns["residual_block_params"](c_in, filters, strides)
    assert block.count_params() == total
    assert sum(int(np.prod(v.shape)) for v in block.trainable_weights) == trainable
    assert projection == (strides != 1 or c_in != filters)
    out = ns["conv_output_size"](size, 3, strides, "same")
    assert tuple(block.output.shape[1:]) == (out, out, filters)


def test_bottleneck_block_params(ns):
    inputs = keras.Input((14, 14, 256))
    x = layers.Conv2D(64, 1, use_bias=False)(inputs)
    x = layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    x = layers.Conv2D(256, 1, use_bias=False)(x)
    assert keras.Model(inputs, x).count_params() == ns["bottleneck_block_params"](256, 64) == 69_632


# ---------------------------------------------------------------- the notebook itself


def test_notebook_is_clean_and_framed():
    import json

    from tests.support.nbcode import ROOT

    nb = json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))
    assert nb["metadata"] == {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for cell in nb["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags"}
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for key in (
        "lecun1998",
        "krizhevsky2012",
        "szegedy2015",
        "he2016",
        "chollet2017",
        "dumoulin2016",
        "simonyan2015",
        "russakovsky2015",
        "araujo2019",
        "luo2016",
    ):
        assert f"{{cite}}`{key}`" in text
    assert text.count("```{exercise}") >= 7


# ---------------------------------------------------------------- receptive fields


def _gradient_receptive_field(specs, size):
    """Brute force, independent of the notebook: the extent of the input pixels with a non-zero gradient of one
    output unit of a stack of all-ones 'valid' convolutions with the given (kernel, stride, dilation)."""
    import tensorflow as tf

    model = keras.Sequential(
        [keras.Input((size, size, 1))]
        + [
            layers.Conv2D(1, k, strides=s, dilation_rate=d, use_bias=False, kernel_initializer="ones")
            for k, s, d in specs
        ]
    )
    x = tf.Variable(tf.ones((1, size, size, 1)))
    with tf.GradientTape() as tape:
        y = model(x)
        unit = y[0, y.shape[1] // 2, y.shape[2] // 2, 0]
    gradient = tape.gradient(unit, x).numpy()[0, :, :, 0]
    rows = np.flatnonzero(gradient.any(axis=1))
    return int(rows.max() - rows.min() + 1)


def test_receptive_field_formula_matches_gradients(ns):
    receptive_field = ns["receptive_field"]
    rng = np.random.default_rng(11)
    for _ in range(12):
        specs = []
        for _ in range(int(rng.integers(1, 5))):
            k, s = int(rng.integers(1, 6)), int(rng.integers(1, 4))
            d = int(rng.integers(1, 3)) if s == 1 and k > 1 else 1  # Keras: no dilation with strides
            specs.append((k, s, d))
        r, jump = receptive_field(specs)[-1]
        assert jump == math.prod(s for _, s, _ in specs)
        size = r + 2 * jump + 4
        assert _gradient_receptive_field(specs, size) == r, specs


def test_receptive_field_worked_examples(ns):
    receptive_field = ns["receptive_field"]
    small = [(k, s) for _, k, s in ns["RF_SMALL_CNN"]]
    assert [r for r, _ in receptive_field(small)] == [5, 6, 10, 12, 20]
    assert _gradient_receptive_field([(k, s, 1) for k, s in small], 40) == 20
    alexnet = [(k, s) for _, k, s in ns["RF_ALEXNET"]]
    assert receptive_field(alexnet)[-1] == (195, 32)
    assert _gradient_receptive_field([(k, s, 1) for k, s in alexnet], 227) == 195
    # The AlexNet stack is the one of the notebook's AlexNet (kernels and strides of its convolutions and pools).
    convs_and_pools = [
        (o["kernel_size"] if kind == "conv" else o["pool_size"], o.get("strides") or o["pool_size"])
        for _, kind, o in ns["alexnet_spec"]()
        if kind in ("conv", "maxpool")
    ]
    assert convs_and_pools == alexnet
    # Exercise 5: the Fashion-MNIST CNN's last pooling sees 38 pixels.
    fashion = [(7, 1), (2, 2), (3, 1), (3, 1), (2, 2), (3, 1), (3, 1), (2, 2)]
    assert receptive_field(fashion)[-1] == (38, 8)


# ---------------------------------------------------------------- ImageNet


def test_top_k_error_matches_keras(ns):
    rng = np.random.default_rng(12)
    scores = rng.random((200, 20)).astype("float32")  # continuous: no ties
    labels = rng.integers(0, 20, 200)
    for k in (1, 3, 5):
        metric = keras.metrics.SparseTopKCategoricalAccuracy(k=k)
        metric.update_state(labels, scores)
        assert ns["top_k_error"](scores, labels, k) == pytest.approx(1 - float(metric.result()), abs=1e-6)
    assert ns["top_k_error"](scores, labels, 20) == 0.0


def test_ilsvrc_timeline(ns):
    results = ns["ILSVRC_RESULTS"]
    years = [r["year"] for r in results]
    assert years == sorted(years) and years[0] == 2010 and years[-1] == 2015
    best = {}
    for r in results:
        best[r["year"]] = min(best.get(r["year"], 100.0), r["top5"])
    assert list(best.values()) == sorted(best.values(), reverse=True)
    by_model = {r["model"]: r for r in results if "layers" in r}
    assert [
        (by_model[m]["year"], by_model[m]["top5"]) for m in ("AlexNet", "ZFNet", "VGG", "GoogLeNet", "ResNet")
    ] == [
        (2012, 15.3),
        (2013, 11.7),
        (2014, 7.3),
        (2014, 6.67),
        (2015, 3.57),
    ]
    seed = ns["SEED_TOP5"]
    assert seed == {"AlexNet": 17.0, "GoogLeNet": "below 7", "ResNet": 3.6}  # as S5 writes them
    assert round(by_model["ResNet"]["top5"], 1) == seed["ResNet"]
    assert by_model["GoogLeNet"]["top5"] < 7
    assert by_model["AlexNet"]["top5"] != seed["AlexNet"]  # the notebook explains the 2010 test set
    assert by_model["ResNet"]["top5"] < ns["HUMAN_TOP5"] < by_model["GoogLeNet"]["top5"]
    assert all(r["source"] for r in results)


# ---------------------------------------------------------------- VGG


@pytest.mark.parametrize("channels", [16, 64, 512])
@pytest.mark.parametrize("n_layers", [2, 3])
def test_stacked_3x3_against_keras(ns, channels, n_layers):
    ours = ns["stacked_3x3"](channels, n_layers)
    k = ours["receptive_field"]
    assert k == 2 * n_layers + 1
    assert _gradient_receptive_field([(3, 1, 1)] * n_layers, k + 4) == k
    inputs = keras.Input((k + 2, k + 2, channels))
    x = inputs
    for _ in range(n_layers):
        x = layers.Conv2D(channels, 3)(x)
    assert keras.Model(inputs, x).count_params() == ours["stack_params"]
    assert keras.Model(inputs, layers.Conv2D(channels, k)(inputs)).count_params() == ours["single_params"]
    unbiased = ns["stacked_3x3"](channels, n_layers, use_bias=False)
    expected = {2: 18 / 25, 3: 27 / 49}[n_layers]
    assert unbiased["stack_params"] / unbiased["single_params"] == pytest.approx(expected)
    assert (ours["stack_relus"], ours["single_relus"]) == (n_layers, 1)


def test_vgg16_parameters_and_memory(ns):
    model = keras.applications.VGG16(weights=None)
    rows = _check_table_against(ns, (224, 224, 3), ns["vgg_spec"](ns["VGG16_BLOCKS"]), model)
    total = model.count_params()
    assert total == 138_357_544
    fc1 = model.get_layer("fc1").count_params()
    convs = sum(layer.count_params() for layer in model.layers if isinstance(layer, layers.Conv2D))
    assert fc1 == 102_764_544 and round(fc1 / total, 3) == 0.743
    assert convs == 14_714_688 and round(convs / total, 3) == 0.106
    values = [int(np.prod(layer.output.shape[1:])) for layer in model.layers[1:]
              if not isinstance(layer, (layers.Flatten, layers.Dropout))]  # fmt: skip
    assert sum(values) == 15_087_080 and round(sum(values) * 4 / 2**20, 1) == 57.6
    early = sum(
        int(np.prod(layer.output.shape[1:]))
        for layer in model.layers
        if layer.name.startswith(("block1", "block2"))
    )
    assert round(early / sum(values), 2) == 0.72
    mults = sum(_keras_mults(layer) for layer in model.layers if isinstance(layer, (layers.Conv2D, layers.Dense)))
    conv_mults = sum(_keras_mults(layer) for layer in model.layers if isinstance(layer, layers.Conv2D))
    assert ns["table_totals"](rows)["mults"] == mults and round(mults / 1e9, 2) == 15.47
    assert round(conv_mults / mults, 3) == 0.992
    del model
    keras.backend.clear_session()


def test_inception_bottleneck_parameter_savings():
    inputs = keras.Input((28, 28, 256))
    naive = keras.Model(inputs, _inception(inputs, 128, 192, 96)).count_params()
    reduced = keras.Model(inputs, _inception(inputs, 128, 192, 96, 64, 64, 64)).count_params()
    assert (naive, reduced) == (1_089_952, 346_720)
    assert round(1 - reduced / naive, 2) == 0.68
    assert round(1 - 271_351_808 / 854_196_224, 2) == 0.68


# ---------------------------------------------------------------- ResNet on CIFAR-10 and its recipe


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_cifar_resnets_have_the_papers_sizes_and_free_shortcuts(ns):
    for depth, millions in ((20, 0.27), (56, 0.85)):
        resnet, plain = ns["cifar_resnet"](depth), ns["cifar_resnet"](depth, shortcuts=False)
        assert round(_trainable(resnet) / 1e6, 2) == millions
        assert resnet.count_params() == plain.count_params() and _trainable(resnet) == _trainable(plain)
        n = (depth - 2) // 6
        assert sum(isinstance(layer, layers.Add) for layer in resnet.layers) == 3 * n
        assert sum(isinstance(layer, layers.Add) for layer in plain.layers) == 0
        weight_layers = [layer for layer in resnet.layers if isinstance(layer, (layers.Conv2D, layers.Dense))]
        assert len(weight_layers) == depth
        assert resnet.output.shape == (None, 10)
        keras.backend.clear_session()
    with pytest.raises(ValueError, match="6n"):
        ns["cifar_resnet"](21)


def test_resnet_recipe(ns):
    import tensorflow as tf

    recipe = ns["RESNET_RECIPE"]
    assert (recipe["momentum"], recipe["learning_rate"], recipe["lr_drop_factor"]) == (0.9, 0.1, 0.1)
    assert (recipe["batch_size"], recipe["weight_decay"], recipe["dropout"]) == (256, 1e-4, None)
    model = ns["cifar_resnet"](20)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    for conv in convs:  # batch normalization right after every convolution, He initialization, weight decay
        bn = model.get_layer(conv.name.replace("_conv", "_bn"))
        assert isinstance(bn, layers.BatchNormalization) and bn.input is conv.output
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal)
        with tf.GradientTape() as tape:
            penalty = conv.kernel_regularizer(conv.kernel)
        np.testing.assert_allclose(tape.gradient(penalty, conv.kernel), 1e-4 * conv.kernel.numpy(), rtol=1e-5)
    assert not any(isinstance(layer, layers.Dropout) for layer in model.layers)
    plateau = ns["compile_with_recipe"](model)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.momentum == pytest.approx(0.9)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau) and plateau.factor == pytest.approx(0.1)
