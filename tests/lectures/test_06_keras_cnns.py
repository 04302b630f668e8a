"""Lecture 06 (CNNs in Keras): the lecture's model builders give the source lectures' shapes and parameter counts,
layer by layer, against arithmetic written out here; its helpers (mistakes, tf.data pipeline) behave. Nothing is
trained."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.support.nbcode import load_namespace, notebook_text

NOTEBOOK = "notebooks/06_keras_cnns.ipynb"


@pytest.fixture(scope="module")
def lecture():
    return load_namespace(NOTEBOOK)


def conv(k, c_in, filters):
    """Conv2D parameters: a k x k x c_in window per filter plus one bias."""
    return (k * k * c_in + 1) * filters


def dense(n_in, units):
    return (n_in + 1) * units


def per_layer(model):
    """[(layer class name, output shape without batch, parameters)] as Keras reports them."""
    return [(type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers]


# ------------------------------------------------------------------------------------------------ S1's MNIST CNN


def s1_expected(filters, first="valid"):
    side1 = 28 - 2 if first == "valid" else 28  # 3x3 without padding loses 2 pixels
    side2 = side1 // 2
    side3 = side2 - 2
    side4 = side3 // 2
    flat = side4 * side4 * filters
    return [
        ("Conv2D", (side1, side1, 25), conv(3, 1, 25)),
        ("MaxPooling2D", (side2, side2, 25), 0),
        ("Conv2D", (side3, side3, filters), conv(3, 25, filters)),
        ("MaxPooling2D", (side4, side4, filters), 0),
        ("Flatten", (flat,), 0),
        ("Dense", (100,), dense(flat, 100)),
        ("Dense", (10,), dense(100, 10)),
    ]


def test_s1_as_printed(lecture):
    assert lecture["S1_FILTERS_PRINTED"] == 1250
    model = lecture["build_s1_cnn"](lecture["S1_FILTERS_PRINTED"])
    expected = s1_expected(1250)
    assert per_layer(model) == expected
    # the numbers written on S1's slides
    assert [(26, 26, 25), (13, 13, 25), (11, 11, 1250), (5, 5, 1250)] == [row[1] for row in expected[:4]]
    assert lecture["S1_SHAPES_PRINTED"] == [(28, 28, 1), (26, 26, 25), (13, 13, 25), (11, 11, 1250), (5, 5, 1250)]
    assert conv(3, 1, 25) == 250 and conv(3, 25, 1250) == 282_500
    assert model.count_params() == 250 + 282_500 + 31_250 * 100 + 100 + 1_010 == 3_408_860
    weights = {layer.name: int(np.prod(layer.kernel.shape[:3])) for layer in model.layers if "conv" in layer.name}
    assert weights == lecture["S1_WEIGHTS_PER_FILTER_PRINTED"] == {"conv1": 3 * 3 * 1, "conv2": 3 * 3 * 25}


def test_s1_classic_reading(lecture):
    """With 50 filters the flattened vector has 5 * 5 * 50 = 1250 values: the number the slide prints."""
    assert lecture["S1_FILTERS_CLASSIC"] == 50
    model = lecture["build_s1_cnn"]()
    assert per_layer(model) == s1_expected(50)
    assert model.get_layer("flatten").output.shape[1] == 5 * 5 * 50 == 1250
    assert model.get_layer("conv2").count_params() == 11_300
    assert model.count_params() == 250 + 11_300 + 125_100 + 1_010 == 137_660


def test_s1_same_padding_variant(lecture):
    model = lecture["build_s1_cnn"](50, first_padding="same")
    assert per_layer(model) == s1_expected(50, first="same")
    assert per_layer(model)[0][1] == (28, 28, 25)
    assert model.count_params() == 192_660


def test_output_dtype_for_mixed_precision(lecture):
    model = lecture["build_s1_cnn"](output_dtype="float32")
    assert model.layers[-1].dtype_policy.name == "float32"
    fashion = lecture["build_fashion_cnn"](output_dtype="float32")
    assert fashion.layers[-1].dtype_policy.name == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"


# ---------------------------------------------------------------------------------------- S5's Fashion-MNIST CNN


def test_fashion_cnn_layer_by_layer(lecture):
    model = lecture["build_fashion_cnn"]()
    expected = [
        ("Conv2D", (28, 28, 64), conv(7, 1, 64)),
        ("MaxPooling2D", (14, 14, 64), 0),
        ("Conv2D", (14, 14, 128), conv(3, 64, 128)),
        ("Conv2D", (14, 14, 128), conv(3, 128, 128)),
        ("MaxPooling2D", (7, 7, 128), 0),
        ("Conv2D", (7, 7, 256), conv(3, 128, 256)),
        ("Conv2D", (7, 7, 256), conv(3, 256, 256)),
        ("MaxPooling2D", (3, 3, 256), 0),
        ("Flatten", (3 * 3 * 256,), 0),
        ("Dense", (128,), dense(2304, 128)),
        ("Dropout", (128,), 0),
        ("Dense", (64,), dense(128, 64)),
        ("Dropout", (64,), 0),
        ("Dense", (10,), dense(64, 10)),
    ]
    assert per_layer(model) == expected
    weighted = [row[2] for row in expected if row[2]]
    assert weighted == [3_200, 73_856, 147_584, 295_168, 590_080, 295_040, 8_256, 650]
    assert model.count_params() == 1_413_834
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(layer.padding == "same" and layer.activation.__name__ == "relu" for layer in convs)
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert model.layers[-1].activation.__name__ == "softmax"


# ------------------------------------------------------------------------------------------- Lab 4B and the MLP


@pytest.mark.parametrize("num_conv_layers", [2, 4])
def test_lab4b_cnn_shapes(lecture, num_conv_layers):
    model = lecture["build_lab4b_cnn"](num_conv_layers)
    rows = per_layer(model)
    assert rows[0][1] == (32, 32, 32)
    conv_rows = [row for row in rows if row[0] == "Conv2D"]
    assert len(conv_rows) == num_conv_layers
    if num_conv_layers == 2:
        assert [row[1] for row in conv_rows] == [(32, 32, 32), (16, 16, 64)]
        conv_params = conv(3, 3, 32) + conv(3, 32, 64)
    else:
        assert [row[1] for row in conv_rows] == [(32, 32, 32), (32, 32, 32), (16, 16, 64), (16, 16, 64)]
        conv_params = conv(3, 3, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64)
    assert [row[1] for row in rows if row[0] == "MaxPooling2D"] == [(16, 16, 32), (8, 8, 64)]
    assert [row for row in rows if row[0] == "Flatten"] == [("Flatten", (4096,), 0)]
    assert rows[-1] == ("Dense", (10,), dense(512, 10))
    head = dense(8 * 8 * 64, 512) + dense(512, 10)
    assert model.count_params() == conv_params + head
    assert lecture["lab4b_param_count"](num_conv_layers) == (conv_params, head)
    assert model.count_params() == {2: 2_122_186, 4: 2_168_362}[num_conv_layers]


def test_lab4b_global_average_head_and_bad_arguments(lecture):
    model = lecture["build_lab4b_cnn"](2, head="global_average")
    assert model.count_params() == conv(3, 3, 32) + conv(3, 32, 64) + dense(64, 512) + dense(512, 10)
    with pytest.raises(ValueError):
        lecture["build_lab4b_cnn"](3)
    with pytest.raises(ValueError):
        lecture["build_lab4b_cnn"](2, head="gap")


def test_mlp_counts(lecture):
    expected = dense(32 * 32 * 3, 512) + dense(512, 512) + dense(512, 10)
    assert expected == 1_841_162
    assert lecture["mlp_param_count"](32 * 32 * 3) == expected
    assert lecture["build_mlp"]((32, 32, 3)).count_params() == expected
    assert lecture["mlp_param_count"](784, (100,)) == dense(784, 100) + dense(100, 10)


def test_model_arithmetic_matches_keras(lecture):
    builders = [
        (lecture["build_s1_cnn"](1250), (28, 28, 1)),
        (lecture["build_s1_cnn"](50, first_padding="same"), (28, 28, 1)),
        (lecture["build_fashion_cnn"](), (28, 28, 1)),
        (lecture["build_lab4b_cnn"](4), (32, 32, 3)),
        (lecture["build_lab4b_cnn"](2, head="global_average"), (32, 32, 3)),
        (lecture["build_mlp"]((32, 32, 3)), (32, 32, 3)),
    ]
    for model, input_shape in builders:
        rows = lecture["model_arithmetic"](model, input_shape)
        assert [(shape, params) for _, shape, params, _ in rows] == [row[1:] for row in per_layer(model)]


# ------------------------------------------------------------------------------------------------------ helpers


def test_most_confident_mistakes(lecture):
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([[0], [0], [1], [1], [0]])  # rows 1, 2 and 4 are wrong, with confidence 0.8, 0.6, 0.55
    np.testing.assert_array_equal(lecture["most_confident_mistakes"](probabilities, labels), [1, 2, 4])
    np.testing.assert_array_equal(lecture["most_confident_mistakes"](probabilities, labels, k=1), [1])
    assert len(lecture["most_confident_mistakes"](probabilities, np.array([0, 1, 0, 1, 1]))) == 0


def test_scale_images(lecture):
    grey = lecture["scale_images"](np.full((2, 28, 28), 255, np.uint8))
    assert grey.shape == (2, 28, 28, 1) and grey.dtype == np.float32 and grey.max() == 1.0
    assert lecture["scale_images"](np.zeros((3, 32, 32, 3), np.uint8)).shape == (3, 32, 32, 3)


@pytest.mark.parametrize("options", [{}, {"prefetch": True, "parallel": True, "cache": True}])
def test_pipeline_decodes_normalizes_and_shuffles(lecture, options):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = np.arange(50, dtype=np.int64)
    png = lecture["encode_png"](images)
    dataset = lecture["make_dataset"](png, labels, batch_size=16, decode_shape=(28, 28, 1), **options)
    epochs = []
    for _ in range(2):
        batches = list(dataset)
        assert [len(b[1]) for b in batches] == [16, 16, 16, 2]
        x = np.concatenate([b[0].numpy() for b in batches])
        y = np.concatenate([b[1].numpy() for b in batches])
        assert x.shape == (50, 28, 28, 1) and x.dtype == np.float32
        np.testing.assert_allclose(x, images[y][..., None] / 255.0, atol=1e-7)  # PNG is lossless
        assert sorted(y) == list(range(50))
        epochs.append(y)
    assert list(epochs[0]) != list(epochs[1])  # reshuffled each epoch, also after the cache


# ------------------------------------------------------------------------------------------- mixed precision text


def test_float16_softmax_is_stable_but_rounds():
    """What the lecture now says about a float16 output layer, checked with Keras: its softmax does not overflow
    (it subtracts the largest logit), but the probabilities round to exactly 1 and 0 where float32 keeps them."""
    logits = np.array([[12.0, 2.0, -6.0]])
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(np.float16(12)))  # a naive softmax would overflow
    half = keras.ops.convert_to_numpy(keras.activations.softmax(keras.ops.convert_to_tensor(logits, "float16")))
    single = keras.ops.convert_to_numpy(keras.activations.softmax(keras.ops.convert_to_tensor(logits, "float32")))
    assert half.dtype == np.float16 and np.all(np.isfinite(half))
    assert half[0, 0] == 1.0 and half[0, 2] == 0.0
    assert 0.0 < single[0, 2] < 2e-8 and single[0, 0] < 1.0
    assert -np.log(float(single[0, 2])) == pytest.approx(18.0, abs=0.01)


def test_mixed_precision_text_does_not_blame_softmax_overflow():
    """The slip fixed: the lecture said a float16 softmax overflows for logits above about 11."""
    text = notebook_text(NOTEBOOK)
    assert "already overflows a softmax" not in text
    assert "softmax in `float16` overflows" not in text
    assert "Overflow is not the problem" in text and "The problem is precision" in text
