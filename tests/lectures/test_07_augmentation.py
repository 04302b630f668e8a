"""Lecture 07 (augmentation): the lecture's augmentation layers, factor conversions and pipeline behave as the
lecture says; the colour remapping written for the shapes stand-in recolours and nothing else; under the cpu
profile's budget the lecture's experiment shows that augmentation helps; the augmentation explorer builds and
draws."""

from __future__ import annotations

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf

import cnnbook
from cnnbook import profiles
from tests.support.nbcode import load_namespace

NOTEBOOK = "notebooks/07_augmentation.ipynb"


@pytest.fixture(scope="module")
def lecture():
    return load_namespace(NOTEBOOK)


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).uniform(0.0, 1.0, (6, 32, 32, 3)).astype(np.float32)


def test_seed_layers_and_factors(lecture):
    augmentation = lecture["seed_augmentation"]()
    kinds = [type(layer).__name__ for layer in augmentation.layers]
    assert kinds == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomBrightness", "RandomContrast"]
    flip, rotation, translation, brightness, _ = augmentation.layers
    assert flip.mode == "horizontal"
    assert tuple(brightness.value_range) == (0.0, 1.0)
    assert lecture["SEED_ROTATION_FACTOR"] == 0.05 and lecture["SEED_TRANSLATION_FACTOR"] == 0.1


def test_rotation_factor_to_degrees(lecture):
    to_degrees, to_factor = lecture["rotation_factor_to_degrees"], lecture["degrees_to_rotation_factor"]
    assert to_degrees(0.05) == pytest.approx(18.0)
    assert to_degrees(0.25) == pytest.approx(90.0)
    assert to_factor(10) == pytest.approx(10 / 360)
    assert lecture["translation_factor_to_pixels"](0.1, 32) == pytest.approx(3.2)


def test_fixed_rotation_is_measured_at_18_degrees(lecture):
    bar = lecture["bar_image"]()
    assert lecture["orientation_degrees"](bar) == pytest.approx(0.0, abs=1e-6)
    rotated = keras.layers.RandomRotation((0.05, 0.05), seed=1)(bar[None, :, :, None], training=True)
    angle = lecture["orientation_degrees"](np.asarray(rotated)[0, :, :, 0])
    assert abs(angle) == pytest.approx(lecture["rotation_factor_to_degrees"](0.05), abs=0.5)


def test_identity_at_inference_and_changes_in_training(lecture, batch):
    augmentation = lecture["seed_augmentation"]()
    np.testing.assert_array_equal(np.asarray(augmentation(batch, training=False)), batch)
    wrapped = keras.Sequential([keras.Input((32, 32, 3)), augmentation])
    np.testing.assert_array_equal(wrapped.predict(batch, verbose=0), batch)
    changed = np.asarray(augmentation(batch, training=True))
    assert changed.shape == batch.shape
    assert np.abs(changed - batch).mean() > 0.01


def test_pipeline_augments_images_and_keeps_labels(lecture, batch):
    labels = np.arange(len(batch))
    dataset = tf.data.Dataset.from_tensor_slices((batch, labels)).batch(3)
    augmented = lecture["augment_dataset"](dataset, lecture["seed_augmentation"]())
    out_images, out_labels = zip(*[(x.numpy(), y.numpy()) for x, y in augmented])
    np.testing.assert_array_equal(np.concatenate(out_labels), labels)
    assert np.concatenate(out_images).shape == batch.shape
    assert np.abs(np.concatenate(out_images) - batch).mean() > 0.01


def test_small_cnn_and_helpers(lecture, batch):
    model = lecture["build_small_cnn"](lecture["seed_augmentation"]())
    probabilities = model.predict(batch, verbose=0)
    assert probabilities.shape == (len(batch), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    smooth = np.full((1, 4, 4, 3), 0.5, dtype=np.float32)
    assert lecture["roughness"](smooth) == 0.0
    assert lecture["roughness"](batch) > 0.2


def _channel_sources(image_in, image_out):
    """For each output channel, which input channel it is (0-2) or the inverse of (3-5); None if neither."""
    candidates = [image_in[..., k] for k in range(3)] + [1.0 - image_in[..., k] for k in range(3)]
    return [
        next((k for k, c in enumerate(candidates) if np.allclose(image_out[..., channel], c, atol=1e-6)), None)
        for channel in range(3)
    ]


def test_colour_remap_inverts_and_shuffles_channels_only_in_training(lecture, batch):
    layer = lecture["RandomColourRemap"](seed=3)
    np.testing.assert_array_equal(np.asarray(layer(batch, training=False)), batch)
    many = np.repeat(batch[:1], 200, axis=0)
    out = np.asarray(layer(many, training=True))
    assert out.shape == many.shape
    remaps = set()
    for image_out in out:
        sources = _channel_sources(many[0], image_out)
        assert None not in sources, "every output channel is an input channel or its inverse"
        assert sorted(k % 3 for k in sources) == [0, 1, 2], "the channels are shuffled, none is repeated"
        remaps.add(tuple(sources))
    assert len(remaps) > 30  # of the 48 recolourings, drawn at random per image
    model = lecture["build_small_cnn"](lecture["shapes_augmentation"]())
    np.testing.assert_array_equal(
        model.get_layer("colour_remap")(batch, training=False), batch
    )  # inside the model it is the identity at inference


@pytest.fixture(scope="module")
def cpu_experiment(lecture):
    """The lecture's augmentation experiment on the shapes stand-in with the cpu profile's budget: no augmentation
    against the colour remapping, from the seed the notebook uses (about 40 s on 2 CPU cores)."""
    profile = profiles.PROFILES["cpu"]
    budget = lecture["AUGMENTATION_BUDGETS"]["cpu"]
    (x_train, y_train), (x_test, y_test) = cnnbook.data.load("shapes")
    n_train, n_val = budget["n_train"], budget["n_val"]
    train = (x_train[:n_train].astype(np.float32) / 255.0, y_train[:n_train])
    validation = (
        x_train[n_train : n_train + n_val].astype(np.float32) / 255.0,
        y_train[n_train : n_train + n_val],
    )
    test = profile.subset(x_test.astype(np.float32) / 255.0, y_test, "test")
    cnnbook.seed_everything(0, deterministic_ops=True)  # as cnnbook.setup() does on a CPU
    runs = [("no augmentation", None), ("colour remapping", lecture["shapes_augmentation"])]
    return lecture["augmentation_experiment"](
        train, validation, test, runs, epochs=budget["epochs"], profile=profile, data="shapes (cpu profile)"
    )


def test_augmentation_beats_no_augmentation_under_cpu(cpu_experiment):
    """Measured on 2 CPU cores over seeds 0-6: no augmentation 0.57-0.78 test accuracy, colour remapping 0.81-0.94,
    a gain of 0.05 to 0.26 on every seed (seed 0, the one run here: 0.78 -> 0.89). The plain model memorises its
    300 images (seed 0: clean training accuracy 0.997) and the remapping narrows that gap."""
    (plain, plain_train), (augmented, augmented_train) = cpu_experiment.values()
    assert plain_train > 0.9, "without augmentation the 300 images are memorised"
    assert augmented.test_accuracy > plain.test_accuracy + 0.05, (plain.test_accuracy, augmented.test_accuracy)
    plain_gap = plain_train - plain.history.history["val_accuracy"][-1]
    augmented_gap = augmented_train - augmented.history.history["val_accuracy"][-1]
    assert augmented_gap < plain_gap - 0.05, (plain_gap, augmented_gap)


def test_explorer_builds_and_draws():
    from cnnbook import augment_explorer as ae

    images = np.random.default_rng(1).integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    floats = ae.as_float_images(images)
    assert floats[0].dtype == np.float32 and floats[0].max() <= 1.0
    live = ae.build_live(images)
    assert type(live).__name__ == "VBox"
    fig = ae.draw_static(images)
    assert len(fig.axes) == 7 * (ae.STATIC_SETTING.copies + 1)  # six layers alone + the lecture's five together
    narrow = ae.draw_static(images, narrow=True)  # for a phone: fewer copies, the row labels above the rows
    assert len(narrow.axes) == 7 * (ae.NARROW_COPIES + 1) and narrow.get_figwidth() <= 4
    labels = [ax.get_title(loc="left") for ax in narrow.axes[:: ae.NARROW_COPIES + 1]]
    assert labels[0].startswith("RandomFlip") and labels[-1].startswith("the lecture's")
    plt.close(fig)
    plt.close(narrow)
    copies = ae.augmented_copies(floats[0], ae.AugmentSetting(copies=3))
    assert copies.shape == (3, 24, 24, 3) and 0.0 <= copies.min() and copies.max() <= 1.0
    none = ae.AugmentSetting(flip="none", rotation=0, translation=0, zoom=0, brightness=0, contrast=0, copies=2)
    np.testing.assert_array_equal(ae.augmented_copies(floats[0], none), np.stack([floats[0]] * 2))
    assert "18 degrees" in ae.describe_layer("rotation", ae.AugmentSetting())
