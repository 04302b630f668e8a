"""The helper library: profiles, setup determinism, datasets and stand-ins, notices, plots."""

from __future__ import annotations

import os
import sys

import keras
import numpy as np
import pytest

import cnnbook
from cnnbook import data, profiles, viz

# --------------------------------------------------------------------------------------------------- profiles


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("CNNBOOK_PROFILE", "smoke")
    assert profiles.resolve().name == "smoke"
    monkeypatch.setenv("CNNBOOK_PROFILE", "auto")
    assert profiles.resolve(gpu_available=True).name == "gpu"
    assert profiles.resolve(gpu_available=False).name == "cpu"
    monkeypatch.setenv("CNNBOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        profiles.resolve()


def test_profile_budgets_cap_and_pick():
    smoke, cpu, gpu = (profiles.PROFILES[n] for n in ("smoke", "cpu", "gpu"))
    assert smoke.epochs(30) == 1 and cpu.epochs(30) == 3 and gpu.epochs(30) == 30
    assert cpu.epochs(2) == 2
    assert smoke.n_train(60_000) == 1_000 and gpu.n_train(60_000) == 60_000
    x, y = np.arange(5000), np.arange(5000)
    assert len(smoke.subset(x, y, "test")[0]) == 500
    assert cpu.pick(smoke=1, cpu=2, gpu=3) == 2
    with pytest.raises(ValueError, match="missing"):
        cpu.pick(smoke=1, gpu=3)
    assert "up to 20 epochs per run" in smoke.describe() and "full datasets" in gpu.describe()


def test_profile_cap_on_epochs_is_what_the_banner_says():
    """The banner's "up to N epochs per run" is a cap: a run over it is refused with a message that says what to
    do, and the lectures' own cut (``epochs(full)``) stays under it."""
    for profile in profiles.PROFILES.values():
        if profile.max_epochs is None:
            assert profile.check_epochs(500) == 500 and "epochs" in profile.budget()
            continue
        assert f"up to {profile.max_epochs} epochs per run" in profile.budget()
        assert profile.epochs(10_000) <= profile.max_epochs
        assert profile.check_epochs(profile.max_epochs) == profile.max_epochs
        with pytest.raises(ValueError, match=f"at most {profile.max_epochs} epochs per run.*profile.pick"):
            profile.check_epochs(profile.max_epochs + 1)


def _tiny_classifier():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_train_and_report_refuses_a_run_over_the_profiles_cap(capsys):
    smoke = profiles.PROFILES["smoke"]
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    with pytest.raises(ValueError, match="allows at most 20 epochs"):
        cnnbook.training.train_and_report(_tiny_classifier(), (x, y), test=(x, y), profile=smoke, data="zeros",
                                          epochs=21)  # fmt: skip
    assert capsys.readouterr().out == "", "nothing was trained or reported"


def test_train_and_report_names_the_split_it_measured(capsys):
    """A dataset without a test split is evaluated on its validation data: the line says so (lecture 08)."""
    smoke = profiles.PROFILES["smoke"]
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    held_out = (x[:4], y[:4])
    tested = cnnbook.training.train_and_report(_tiny_classifier(), (x, y), test=(x, y), validation=held_out,
                                               profile=smoke, data="zeros", epochs=1)  # fmt: skip
    validated = cnnbook.training.train_and_report(_tiny_classifier(), (x, y), test=held_out, validation=held_out,
                                                  profile=smoke, data="zeros", epochs=1)  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert tested.split == "test" and out[0].startswith("test accuracy ")
    assert validated.split == "validation" and out[2].startswith("validation accuracy ")
    assert not any("test accuracy" in line for line in out[2:])


# ------------------------------------------------------------------------------------------------------ setup


def _small_fit(seed: int) -> list[np.ndarray]:
    cnnbook.setup(seed, profile="smoke", quiet=True)
    x = np.random.rand(64, 8).astype("float32")
    y = (x.sum(axis=1) > 4).astype("int32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.3), keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, shuffle=True, verbose=0)
    return model.get_weights()


def test_setup_makes_training_repeatable():
    first, second = _small_fit(7), _small_fit(7)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = _small_fit(8)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other)), "a different seed must change weights"


def test_setup_reports_versions_device_and_profile(capsys):
    profile = cnnbook.setup(profile="cpu")
    out = capsys.readouterr().out
    assert profile.name == "cpu"
    for field in ("Python", "TensorFlow", "Keras", "Device", "Seed", "Profile"):
        assert field in out
    assert keras.__version__ in out
    assert "Profile    : cpu: up to 40 epochs per run" in out


def test_setup_drops_tensorflows_retracing_warning_only(capsys):
    """Lectures train fresh models in a loop; TensorFlow's warning about retracing would be a false alarm."""
    import logging

    cnnbook.setup(profile="smoke", quiet=True)
    cnnbook.setup(profile="smoke", quiet=True)  # a second setup adds no second filter
    logger = logging.getLogger("tensorflow")
    assert sum(isinstance(f, cnnbook.runtime.DropRetracingWarnings) for f in logger.filters) == 1
    message = "%d out of the last %d calls to %s triggered tf.function retracing. Tracing is expensive"
    record = logger.makeRecord("tensorflow", logging.WARNING, __file__, 1, message, (5, 31, "f"), None)
    other = logger.makeRecord("tensorflow", logging.WARNING, __file__, 1, "a real warning", (), None)
    assert not logger.filter(record) and logger.filter(other)


def test_a_notebook_kernel_gets_a_wide_terminal_for_model_summaries(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    cnnbook.runtime.widen_kernel_terminal()
    assert "COLUMNS" not in os.environ, "a terminal or a script keeps its own width"
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    cnnbook.runtime.widen_kernel_terminal()
    assert os.environ["COLUMNS"] == "120"


# ------------------------------------------------------------------------------------------- datasets


@pytest.mark.parametrize(
    ("name", "x_shape", "y_shape"),
    [("digits", (28, 28), ()), ("shapes", (32, 32, 3), (1,))],
)
def test_standins_are_deterministic_and_shaped_like_keras(name, x_shape, y_shape):
    first, second = data.load(name), data.load(name)
    data._digits.cache_clear()
    data._shapes.cache_clear()
    fresh = data.load(name)  # recomputed, not a cached object
    for split in (0, 1):
        x, y = first[split]
        assert x.dtype == np.uint8 and y.dtype == np.uint8
        assert x.shape[1:] == x_shape and y.shape[1:] == y_shape and len(x) == len(y)
        np.testing.assert_array_equal(x, fresh[split][0])
        np.testing.assert_array_equal(y, fresh[split][1])
        assert x is second[split][0]
    (x_train, y_train), (x_test, _) = first
    assert sorted(np.unique(y_train)) == list(range(10)), "all 10 classes are present"
    assert x_train.max() > 200 and x_train.min() == 0, "pixel range like the real data (0..255)"
    assert not first.is_standin and first.name == name
    flat = x_train.reshape(len(x_train), -1)
    assert len(np.unique(flat, axis=0)) == len(flat), "no duplicated images"


def test_digits_are_the_real_scikit_learn_digits():
    from sklearn.datasets import load_digits

    (x_train, y_train), (x_test, y_test) = data.load("digits")
    assert len(x_train) + len(x_test) == len(load_digits().images) == 1797
    # the 8x8 scan, scaled back down, is recovered from the 20x20 digit in the middle of the 28x28 image
    assert x_train[:, :4].max() == 0 and x_train[:, 24:].max() == 0


def test_xo_toy_images():
    (x, y), (x_noisy, y_noisy) = data.load("xo")
    assert x.shape == (18, 9, 9) and x.dtype == np.float32
    assert set(np.unique(x)) == {-1.0, 1.0}
    centre = np.flatnonzero(y == 0)[4]  # the unshifted X is the middle of the 3x3 shifts
    np.testing.assert_array_equal(x[centre], data.X_IMAGE)
    np.testing.assert_array_equal(data.X_IMAGE, data.X_IMAGE.T)  # the X is symmetric
    assert (x_noisy != np.repeat(x, 4, axis=0)).sum(axis=(1, 2)).tolist() == [2] * len(x_noisy)
    assert y_noisy.tolist() == np.repeat(y, 4).tolist()


def _offline(monkeypatch, module):
    """Make a Keras loader fail as it does on a machine without internet access."""

    def fail():
        print("Downloading data from https://example.invalid/data.npz")  # as keras.utils.get_file does first
        raise Exception("URL fetch failure on https://example.invalid: [Errno -2] Name or service not known")

    monkeypatch.setattr(module, "load_data", fail)


def test_missing_dataset_falls_back_to_standin_with_notice(monkeypatch, capsys):
    monkeypatch.delenv("CNNBOOK_STRICT_DATA", raising=False)
    monkeypatch.delenv("CNNBOOK_STANDIN", raising=False)
    _offline(monkeypatch, keras.datasets.cifar10)
    ds = data.load("cifar10")
    out = capsys.readouterr().out
    assert "Stand-in data: 'shapes' instead of CIFAR-10" in out
    assert "CIFAR-10 could not be downloaded here, so this notebook uses the 'shapes' stand-in" in out
    assert "Downloading data from" not in out, "a download that never happened is announced"
    for raw in ("URL fetch failure", "Errno", "example.invalid", "Exception"):
        assert raw not in out, f"the notice shows the raw network error ({raw})"
    assert out.count("CIFAR-10 could not be downloaded") == 1
    assert ds.is_standin and ds.name == "shapes" and ds.requested == "cifar10"
    (x, y), _ = ds
    assert x.shape[1:] == (32, 32, 3) and y.shape[1:] == (1,)


def test_a_real_download_shows_its_messages_as_they_come(monkeypatch, capsys):
    monkeypatch.delenv("CNNBOOK_STRICT_DATA", raising=False)
    monkeypatch.delenv("CNNBOOK_STANDIN", raising=False)
    seen = []

    def download():
        print("Downloading data from https://example.invalid/mnist.npz")
        sys.stdout.write("\r  4096/11490434 [....] - 0s 0us/step")
        seen.append(capsys.readouterr().out)  # what the reader sees while the download runs
        x, y = np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8)
        return (x, y), (x, y)

    monkeypatch.setattr(keras.datasets.mnist, "load_data", download)
    ds = data.load("mnist")
    assert not ds.is_standin
    assert seen == [
        "Downloading data from https://example.invalid/mnist.npz\n\r  4096/11490434 [....] - 0s 0us/step"
    ]


def test_strict_mode_raises_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNBOOK_STRICT_DATA", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _offline(monkeypatch, keras.datasets.mnist)
    with pytest.raises(data.DataUnavailableError) as error:
        data.load("mnist")
    message = str(error.value)
    assert "python -m cnnbook.data fetch mnist" in message
    assert str(tmp_path / "datasets" / "mnist.npz") in message


def test_a_graded_run_sees_the_training_splits_only(monkeypatch, tmp_path):
    """What the grader writes for a sandbox (seal) holds no test split, and load() there returns the same
    training split as outside and a test split with no rows, for a real dataset and for a stand-in."""
    for name in ("CNNBOOK_STRICT_DATA", "CNNBOOK_STANDIN", "CNNBOOK_SEALED_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    (tmp_path / "keras" / "datasets" / "mnist.npz").write_bytes(b"")  # cached: the loader below stands for it
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), rng.integers(0, 10, 6, dtype=np.uint8)
    test = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), rng.integers(0, 10, 4, dtype=np.uint8)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: (train, test))
    sealed = tmp_path / "sealed"
    assert data.seal(sealed) == ["mnist", "digits", "shapes", "xo"]
    for path in sealed.iterdir():
        with np.load(path, allow_pickle=False) as stored:
            assert sorted(stored.files) == sorted(data.SEALED_KEYS), path.name

    def must_not_be_called():
        raise AssertionError("a graded run's load read the Keras cache")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", must_not_be_called)
    monkeypatch.setenv("CNNBOOK_SEALED_DATA", str(sealed))
    monkeypatch.setenv("CNNBOOK_STRICT_DATA", "1")
    ds = data.load("mnist")
    (x, y), (x_test, y_test) = ds
    np.testing.assert_array_equal(x, train[0])
    np.testing.assert_array_equal(y, train[1])
    assert x_test.shape == (0, 28, 28) and x_test.dtype == np.uint8 and y_test.shape == (0,)
    assert ds.test_withheld and ds.describe() == "mnist, 6 train / the test split is kept by the grader"
    monkeypatch.setenv("CNNBOOK_STRICT_DATA", "0")
    monkeypatch.setenv("CNNBOOK_STANDIN", "1")
    ds = data.load("mnist")
    np.testing.assert_array_equal(ds[0][0], data._digits()[0][0])
    assert ds.name == "digits" and len(ds[1][0]) == 0 and ds[1][0].shape[1:] == (28, 28)
    assert len(data.load("cifar10")[1][1]) == 0 and len(data.load("xo")[1][0]) == 0
    with pytest.raises(data.DataUnavailableError, match="not available in this graded run"):
        data.load("flowers")
    with pytest.raises(data.DataUnavailableError, match="without options"):
        data.load("digits", test_fraction=0.5)
    with pytest.raises(RuntimeError, match="cannot be written from sealed data"):
        data.seal(tmp_path / "again")


def test_standin_switch_does_not_touch_the_network(monkeypatch, capsys):
    monkeypatch.setenv("CNNBOOK_STANDIN", "1")

    def must_not_be_called():
        raise AssertionError("the real loader was called although CNNBOOK_STANDIN=1")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", must_not_be_called)
    ds = data.load("fashion_mnist")
    out = capsys.readouterr().out
    assert ds.name == "digits" and "'digits' instead of Fashion-MNIST" in out
    assert "Fashion-MNIST was not downloaded (CNNBOOK_STANDIN=1 is set)" in out


def test_contradictory_switches_and_unknown_names(monkeypatch):
    monkeypatch.setenv("CNNBOOK_STANDIN", "1")
    monkeypatch.setenv("CNNBOOK_STRICT_DATA", "1")
    with pytest.raises(ValueError, match="contradict"):
        data.load("mnist")
    monkeypatch.delenv("CNNBOOK_STANDIN")
    with pytest.raises(ValueError, match="Available"):
        data.load("imagenet")


def test_notice_renders_as_html_box():
    notice = cnnbook.notice.Notice("Stand-in data", "shapes <instead> of cifar10")
    html = notice._repr_html_()
    assert "cnnbook-notice" in html and "&lt;instead&gt;" in html
    with pytest.raises(ValueError):
        cnnbook.notice.Notice("t", "b", level="loud")


def test_flowers_standin_goes_through_the_folder_loader(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNBOOK_STANDIN", "1")
    monkeypatch.setenv("CNNBOOK_CACHE", str(tmp_path))
    ds = data.load("flowers", image_size=(48, 48), batch_size=16)
    train, val = ds
    assert ds.describe() == "shapes (stand-in for flowers), 400 train / 100 validation images"
    images, labels = next(iter(train))
    assert tuple(images.shape) == (16, 48, 48, 3) and tuple(labels.shape) == (16,)
    assert len(list(tmp_path.rglob("*.png"))) == 500
    assert sorted(train.class_names) == train.class_names and len(train.class_names) == 5


# ------------------------------------------------------------------------------------------------------ plots


def test_static_explorer_picture_has_a_figure_for_phones():
    """The site's explorer figure is a ``<picture>``: the narrow figure (twice the density) on narrow screens."""
    import base64
    import re

    import matplotlib.pyplot as plt

    from cnnbook import widgets

    wide, narrow = plt.figure(figsize=(10, 3)), plt.figure(figsize=(3.8, 6))
    for figure in (wide, narrow):
        figure.add_subplot().plot([0, 1])
    picture = widgets.picture_html(wide, narrow, 'a "quoted" caption')
    plt.close(wide)
    plt.close(narrow)
    source = re.search(r'<source media="\(max-width: 640px\)" srcset="data:image/png;base64,(\S+) 2x">', picture)
    image = re.search(r'<img src="data:image/png;base64,(\S+)" alt="a &quot;quoted&quot; caption"', picture)
    assert picture.startswith("<picture") and source and image

    def png_width(encoded: str) -> int:
        return int.from_bytes(base64.b64decode(encoded)[16:20], "big")  # the IHDR chunk

    assert png_width(source.group(1)) <= 2 * 400, "the narrow figure fits a phone at twice the density"
    assert png_width(image.group(1)) > 700, "the wide figure keeps its size (100 px per inch)"


def test_plots_have_titles_and_labels():
    (x, y), _ = data.load("digits")
    fig = viz.image_grid(x[:10], y[:10], title="Digits", predictions=np.r_[y[:9], (y[9] + 1) % 10])
    assert fig._suptitle.get_text() == "Digits"
    red = [ax.title.get_color() for ax in fig.axes if ax.title.get_text()]
    assert red.count("tab:red") == 1, "exactly the one wrong prediction is red"

    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    fig = viz.training_curves({"run A": history, "run B": history})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 4

    fig = viz.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("0.50") == 2 and texts.count("1.00") == 2

    fig = viz.feature_maps(np.random.rand(7, 7, 3), titles=["a", "b", "c"], annotate=True)
    assert len(fig.axes[0].texts) == 49

    fig = viz.filters(np.random.rand(3, 3, 3, 4))
    assert sum(1 for ax in fig.axes if ax.images) == 4
