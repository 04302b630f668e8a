"""Lecture 08 (transfer learning): the lecture's transfer-model builder, freezing helper and parameter arithmetic;
the miniature experiment shows transfer under the cpu profile.

The functions come from the notebook's cells tagged ``lecture-code``. Expected counts are computed here from the
architecture (2,048 features, one BN moving mean and variance per channel), not read from the same weight lists.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import cnnbook
from cnnbook import profiles
from tests.support.nbcode import load_namespace

NOTEBOOK = "notebooks/08_transfer_learning.ipynb"
N_CLASSES = 3


@pytest.fixture(scope="module")
def ns():
    return load_namespace(NOTEBOOK)


@pytest.fixture(scope="module")
def transfer(ns):
    model, base = ns["build_transfer_model"](N_CLASSES, (71, 71), weights=None)
    return model, base


def _sizes(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _bn_channels(base):
    return sum(
        layer.get_build_config()["input_shape"][-1]
        for layer in base.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_model_structure(transfer):
    model, base = transfer
    assert base.output_shape[-1] == 2048
    assert model.output_shape == (None, N_CLASSES)
    assert model.get_layer("new_head").count_params() == (2048 + 1) * N_CLASSES
    assert model.count_params() == base.count_params() + (2048 + 1) * N_CLASSES


def test_frozen_counts(ns, transfer):
    model, base = transfer
    ns["set_trainable"](base, False)
    assert not any(layer.trainable for layer in base.layers)
    assert base.trainable_weights == []
    counts = ns["parameter_counts"](model)
    assert counts["trainable"] == (2048 + 1) * N_CLASSES
    assert counts["non_trainable"] == base.count_params()
    assert counts == ns["expected_counts"](base, N_CLASSES, base_frozen=True)


def test_unfrozen_counts(ns, transfer):
    model, base = transfer
    ns["set_trainable"](base, True)
    assert all(layer.trainable for layer in base.layers)
    bn_stats = 2 * _bn_channels(base)
    assert bn_stats == 54_528  # Xception: 27,264 BN channels, a moving mean and a variance each
    counts = ns["parameter_counts"](model)
    assert counts["non_trainable"] == bn_stats
    assert counts["trainable"] == base.count_params() - bn_stats + (2048 + 1) * N_CLASSES
    assert counts["trainable"] == _sizes(model.trainable_weights)
    assert counts == ns["expected_counts"](base, N_CLASSES, base_frozen=False)


def test_unfrozen_with_batchnorm_kept_frozen(ns, transfer):
    model, base = transfer
    ns["set_trainable"](base, True, keep_batchnorm_frozen=True)
    for layer in base.layers:
        assert layer.trainable == (not isinstance(layer, keras.layers.BatchNormalization)), layer.name
    counts = ns["parameter_counts"](model)
    assert counts["non_trainable"] == 4 * _bn_channels(base)
    assert counts["trainable"] == base.count_params() - 4 * _bn_channels(base) + (2048 + 1) * N_CLASSES
    assert counts == ns["expected_counts"](base, N_CLASSES, base_frozen=False, batchnorm_frozen=True)
    ns["set_trainable"](base, False)  # freezing again freezes the BN layers too
    assert not any(layer.trainable for layer in base.layers)


def test_preprocess_input_maps_to_minus_one_one(transfer):
    pixels = np.array([0.0, 63.75, 127.5, 191.25, 255.0], dtype="float32")
    mapped = np.asarray(keras.applications.xception.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(mapped, [-1.0, -0.5, 0.0, 0.5, 1.0], atol=1e-6)
    model, base = transfer
    ops = model.operations
    front = keras.Model(model.input, ops[ops.index(base) - 1].output)
    image = np.full((1, 71, 71, 3), 255.0, dtype="float32")
    image[0, :, :35] = 0.0
    seen = np.asarray(front(image))
    assert seen.min() == pytest.approx(-1.0) and seen.max() == pytest.approx(1.0)


def test_feature_size_formula_and_decay(ns):
    size = ns["xception_feature_size"]
    assert [size(n) for n in (71, 96, 160, 224, 299)] == [3, 3, 5, 7, 10]
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.2, decay_steps=1, decay_rate=0.01)
    for step in (0, 1, 100, 1000):
        assert ns["keras2_decayed_lr"](0.2, 0.01, step) == pytest.approx(float(schedule(step)), rel=1e-6)


def test_miniature_helpers(ns):
    y = np.array([5, 0, 7, 5, 9, 3, 7, 5])
    x = np.arange(len(y))
    xs, ys = ns["select_classes"](x, y, [5, 7, 9])
    assert list(xs) == [0, 2, 3, 4, 6, 7] and list(ys) == [0, 1, 0, 2, 1, 0]
    labels = np.repeat(np.arange(3), 20)
    idx = ns["few_per_class"](labels, 4, seed=0)
    assert len(idx) == 12 and np.bincount(labels[idx]).tolist() == [4, 4, 4]
    assert list(idx) == list(ns["few_per_class"](labels, 4, seed=0))
    base = ns["build_small_base"]((32, 32, 3))
    model = ns["build_classifier"](base, 5)
    assert model.output_shape == (None, 5)
    assert model.count_params() == base.count_params() + (64 + 1) * 5


def test_miniature_tasks_share_nothing_but_the_generator(ns):
    source, target = set(ns["SOURCE_CLASSES"]), set(ns["TARGET_CLASSES"])
    assert len(source) == len(target) == 5 and not source & target
    shapes = cnnbook.data.load("shapes")
    source_train, source_test, target_pool, target_test = ns["miniature_tasks"](shapes, profiles.PROFILES["cpu"])
    for x, y in (source_train, source_test, target_pool, target_test):
        assert x.shape[1:] == (32, 32, 3) and sorted(np.unique(y)) == [0, 1, 2, 3, 4]
    assert len(source_train[0]) > 2000 and len(target_test[0]) > 400


@pytest.fixture(scope="module")
def cpu_miniature(ns):
    """The miniature under the cpu profile's budget, as the notebook runs it: pretraining on the source classes,
    then (a) frozen, (b) fine-tuned and (c) from scratch on 10 labels per target class for each of its seeds
    (about 40 s on 2 CPU cores)."""
    profile, budget = profiles.PROFILES["cpu"], ns["MINIATURE_BUDGETS"]["cpu"]
    source_train, source_test, target_pool, target_test = ns["miniature_tasks"](
        cnnbook.data.load("shapes"), profile
    )
    cnnbook.seed_everything(0, deterministic_ops=True)  # as cnnbook.setup() does on a CPU
    base, pretraining = ns["pretrain_base"](
        source_train, source_test, epochs=budget["pretrain_epochs"], profile=profile, data="shapes (source)"
    )
    accuracy = {}
    for seed in range(budget["n_seeds"]):
        run = ns["few_label_comparison"](
            base, target_pool, target_test, seed=seed, epochs=budget["few_epochs"], profile=profile,
            data="shapes (target)",
        )  # fmt: skip
        for name, value in run.items():
            accuracy.setdefault(name, []).append(value)
    return pretraining, accuracy


def test_frozen_and_fine_tuned_bases_beat_training_from_scratch_under_cpu(cpu_miniature):
    """Measured on 2 CPU cores over label draws 0-5: frozen 0.82-0.86, fine-tuned 0.82-0.89, from scratch
    0.46-0.65; on every draw both transfer variants beat training from scratch by 0.18 or more."""
    pretraining, accuracy = cpu_miniature
    assert pretraining.test_accuracy > 0.85, "the source task is learned"
    frozen, fine_tuned, scratch = (
        np.array(accuracy[k]) for k in ("(a) frozen", "(b) fine-tuned", "(c) from scratch")
    )
    assert len(scratch) == 3
    assert np.all(frozen > scratch + 0.1), (frozen, scratch)
    assert np.all(fine_tuned > scratch + 0.1), (fine_tuned, scratch)
    assert frozen.mean() > scratch.mean() + 0.15 and fine_tuned.mean() > scratch.mean() + 0.15, accuracy
