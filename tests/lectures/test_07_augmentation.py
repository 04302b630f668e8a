"""Lecture 07 (augmentation): the lecture's augmentation layers, factor conversions and pipeline behave as the
lecture says; the augmentation explorer builds and draws."""

from __future__ import annotations

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf

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
