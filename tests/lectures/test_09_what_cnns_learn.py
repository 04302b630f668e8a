"""Lecture 09 (what CNNs learn): the intermediate-layer model, saliency, Grad-CAM and occlusion functions of the
lecture give maps of the right shape and sign, and the right answer on hand-built models where it is known."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.support.nbcode import load_namespace

NOTEBOOK = "notebooks/09_what_cnns_learn.ipynb"


@pytest.fixture(scope="module")
def lecture():
    return load_namespace(NOTEBOOK)


@pytest.fixture(scope="module")
def untrained(lecture):
    keras.utils.set_random_seed(0)
    return lecture["build_cnn"]((32, 32, 3), 10)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).uniform(0, 1, (32, 32, 3)).astype(np.float32)


def region_model():
    """16x16 grey input; class 0's score is the sum of the pixels in rows 2-5, columns 9-12; class 1 the rest."""
    inputs = keras.Input((16, 16, 1))
    scores = keras.layers.Dense(2, use_bias=False, name="logits")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, scores)
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[2:6, 9:13] = 1.0
    model.get_layer("logits").set_weights([np.stack([mask.ravel(), 1.0 - mask.ravel()], axis=1)])
    return model, mask


def channel_model():
    """Two channels copied by a 1x1 convolution; class k's score is the mean of channel k."""
    inputs = keras.Input((12, 12, 2))
    copied = keras.layers.Conv2D(2, 1, use_bias=False, name="copy")(inputs)
    scores = keras.layers.Dense(2, use_bias=False, name="logits")(keras.layers.GlobalAveragePooling2D()(copied))
    model = keras.Model(inputs, scores)
    model.get_layer("copy").set_weights([np.eye(2, dtype=np.float32)[None, None]])
    model.get_layer("logits").set_weights([np.eye(2, dtype=np.float32)])
    return model


def test_feature_maps_shrink_while_filters_grow(lecture, untrained, image):
    maps = lecture["intermediate_model"](untrained)(image[None], training=False)
    shapes = {name: tuple(np.asarray(m).shape[1:]) for name, m in zip(lecture["LAYER_NAMES"], maps)}
    assert shapes == {"conv1": (32, 32, 16), "pool1": (16, 16, 16), "conv2": (16, 16, 32), "pool2": (8, 8, 32),
                      "conv3": (8, 8, 64)}  # fmt: skip
    scores = lecture["score_model"](untrained)(image[None], training=False)
    probabilities = untrained.predict(image[None], verbose=0)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(scores)), probabilities, rtol=1e-5, atol=1e-6)


def test_saliency_is_concentrated_where_the_score_depends_on_the_input(lecture):
    model, mask = region_model()
    image = np.random.default_rng(1).uniform(0, 1, (16, 16, 1)).astype(np.float32)
    saliency = lecture["saliency_map"](model, image, class_index=0)
    assert saliency.shape == (16, 16) and saliency.min() >= 0
    np.testing.assert_allclose(saliency, mask, atol=1e-6)
    other = lecture["saliency_map"](model, image, class_index=1)
    np.testing.assert_allclose(other, 1.0 - mask, atol=1e-6)


def test_saliency_on_a_cnn_has_the_input_shape(lecture, untrained, image):
    saliency = lecture["saliency_map"](lecture["score_model"](untrained), image)
    assert saliency.shape == (32, 32) and np.all(saliency >= 0) and saliency.max() > 0


def test_grad_cam_finds_the_channel_that_carries_the_class(lecture):
    blobs = np.zeros((12, 12, 2), dtype=np.float32)
    blobs[1:4, 1:4, 0] = 1.0
    blobs[8:11, 8:11, 1] = 1.0
    model = channel_model()
    cam0 = lecture["grad_cam"](model, blobs, "copy", class_index=0)
    cam1 = lecture["grad_cam"](model, blobs, "copy", class_index=1)
    for cam in (cam0, cam1):
        assert cam.shape == (12, 12) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert cam0[:6, :6].sum() / cam0.sum() == pytest.approx(1.0)
    assert cam1[6:, 6:].sum() / cam1.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(cam0, blobs[..., 0], atol=1e-6)  # same resolution: no resizing blur


def test_grad_cam_on_a_cnn_equals_cam_and_is_non_negative(lecture, untrained, image):
    scores = lecture["score_model"](untrained)
    predicted = int(np.argmax(scores(image[None], training=False)[0]))
    cam = lecture["grad_cam"](scores, image, "conv3", predicted, normalize=False)
    assert cam.shape == (32, 32) and cam.min() >= 0
    activations = np.asarray(keras.Model(untrained.input, untrained.get_layer("conv3").output)(image[None]))[0]
    weights = untrained.get_layer("logits").kernel.numpy()[:, predicted]
    coarse = np.maximum(activations @ weights / 64.0, 0.0)
    resized = keras.ops.image.resize(coarse[None, ..., None], (32, 32), interpolation="bilinear")
    expected = np.asarray(resized)[0, ..., 0]
    np.testing.assert_allclose(cam, expected, atol=1e-5 * max(1.0, expected.max()))
    normalized = lecture["grad_cam"](scores, image, "conv3", predicted)
    assert normalized.max() <= 1.0 + 1e-6


def test_occlusion_marks_the_region_the_score_depends_on(lecture):
    model, mask = region_model()
    probabilities = keras.Sequential([model, keras.layers.Activation("softmax")])
    image = np.zeros((16, 16, 1), dtype=np.float32)
    image[2:6, 9:13] = 0.2  # evidence for class 0 only in its region (p0 = 0.96: not saturated)
    occlusion = lecture["occlusion_map"](probabilities, image, 0, patch=4, stride=2)
    assert occlusion.shape == (16, 16)
    assert occlusion[mask == 1].mean() > 0.05 > abs(occlusion[:, :6].mean())


def test_applications_section_is_there_and_cited():
    import json
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    nb = json.loads((root / NOTEBOOK).read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "## Beyond classification" in text
    for task in ("detection", "segmentation", "style transfer", "retrieval"):
        assert task in text.lower()
    bib = (root / "book" / "references.bib").read_text(encoding="utf-8")
    cited = set(re.findall(r"\{cite\}`([^`]+)`", text))
    keys = {key.strip() for group in cited for key in group.split(",")}
    assert {"ren2015", "farabet2013", "long2015", "gatys2016", "johnson2016"} <= keys
    for key in keys:
        assert f"{{{key}," in bib, key


def test_gram_matrix_is_the_channels_products_averaged_over_positions(lecture):
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(6, 5, 4))
    gram = lecture["gram_matrix"](maps)
    expected = np.einsum("hwc,hwd->cd", maps, maps) / 30
    np.testing.assert_allclose(gram, expected, atol=1e-12)
    np.testing.assert_allclose(gram, gram.T, atol=1e-12)
    assert np.linalg.eigvalsh(gram).min() > -1e-12  # positive semi-definite
    shuffled = rng.permutation(maps.reshape(30, 4)).reshape(6, 5, 4)  # the same values at other positions
    np.testing.assert_allclose(lecture["gram_matrix"](shuffled), gram, atol=1e-12)


def test_a_shift_changes_the_maps_much_more_than_their_gram_matrices(lecture, untrained):
    """The lecture's claim, on an untrained model and the course's image data: rolling the image by 5 pixels
    changes every conv layer's maps by far more (relatively) than their Gram matrices."""
    import cnnbook

    (x_train, _), _ = cnnbook.data.load("cifar10")
    probe, gram = lecture["intermediate_model"](untrained), lecture["gram_matrix"]
    for index in range(4):
        image = x_train[index].astype("float32") / 255.0
        shifted = np.roll(image, (5, 5), axis=(0, 1))
        for name, a, b in zip(lecture["LAYER_NAMES"], probe(image[None]), probe(shifted[None])):
            if not name.startswith("conv"):
                continue
            a, b = np.asarray(a[0]), np.asarray(b[0])
            maps_change = np.linalg.norm(b - a) / np.linalg.norm(a)
            gram_change = np.linalg.norm(gram(b) - gram(a)) / np.linalg.norm(gram(a))
            assert maps_change > 0.1 and gram_change < 0.6 * maps_change, (index, name, maps_change, gram_change)
