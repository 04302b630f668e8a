"""Datasets for the lectures and assignments, with offline stand-ins (introduced in lecture 01).

``load(name)`` returns what the Keras loader for ``name`` returns, ``((x_train, y_train), (x_test, y_test))``,
with the same shapes and dtypes:

=================  ===========================================  =========================================
name               real source                                  stand-in used when it cannot be fetched
=================  ===========================================  =========================================
``mnist``          ``keras.datasets.mnist``                      ``digits``
``fashion_mnist``  ``keras.datasets.fashion_mnist``              ``digits``
``cifar10``        ``keras.datasets.cifar10``                    ``shapes``
``flowers``        ``keras.utils.get_file`` + folder loader      ``shapes`` (5 classes, written as files)
=================  ===========================================  =========================================

The stand-ins need no network and are deterministic:

* ``digits``: scikit-learn's real handwritten digits (1,797 scans of 8x8 pixels, 16 grey levels), resized and
  padded like MNIST to 28x28 uint8 images with uint8 labels.
* ``shapes``: procedurally drawn 32x32 RGB images of 10 shape classes, shaped like CIFAR-10 (labels ``(N, 1)``).
* ``xo``: the 9x9 X and O images of the lecture's toy example (pixels -1 and +1), with shifted and noisy copies.

How real data is handled is chosen by environment variables:

* default: try the real dataset; if it cannot be fetched, use its stand-in and show a notice naming it;
* ``CNNBOOK_STRICT_DATA=1`` (grading): real data only; a missing dataset raises :class:`DataUnavailableError`
  that says how to cache it;
* ``CNNBOOK_STANDIN=1``: use the stand-ins without trying the network (CI), with the same notice.

In a graded run the student's code sees the training splits only: the autograder writes them with :func:`seal`
and points ``CNNBOOK_SEALED_DATA`` at that folder inside the sandbox; there ``load`` reads nothing else and returns
test splits with no rows (the grader keeps the test split and measures accuracy on its side).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pathlib
import sys

import numpy as np

from .notice import announce

REAL = ("mnist", "fashion_mnist", "cifar10", "flowers")
STANDINS = ("digits", "shapes", "xo")
STANDIN_FOR = {"mnist": "digits", "fashion_mnist": "digits", "cifar10": "shapes", "flowers": "shapes"}

FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
KERAS_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist/",
    "cifar10": "cifar-10-batches-py/",
    "flowers": "flower_photos/",
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "digits": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],  # fmt: skip
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "shapes": [
        "disk",
        "square",
        "triangle",
        "cross",
        "ring",
        "h-stripes",
        "v-stripes",
        "diagonal",
        "checker",
        "dots",
    ],  # fmt: skip
    "flowers": ["daisy", "dandelion", "roses", "sunflowers", "tulips"],
    "xo": ["X", "O"],
}


class DataUnavailableError(RuntimeError):
    """A real dataset is needed (strict mode) but is neither cached nor downloadable."""


class Dataset(tuple):
    """``((x_train, y_train), (x_test, y_test))`` like a Keras loader, plus where it came from.

    Attributes: ``requested`` (the name asked for), ``name`` (what was actually loaded), ``is_standin``
    and ``class_names``.
    """

    def __new__(cls, train, test, *, requested: str, name: str, class_names: list[str]):
        self = super().__new__(cls, (train, test))
        self.requested, self.name, self.class_names = requested, name, list(class_names)
        self.is_standin = name != requested
        self.test_withheld = False  # True in a graded run's sandbox: the grader keeps the test split
        return self

    def describe(self) -> str:
        train, test = self
        if isinstance(train, tuple):
            size = f"{len(train[0]):,} train / {len(test[0]):,} test"
            if self.test_withheld:
                size = f"{len(train[0]):,} train / the test split is kept by the grader"
        else:  # tf.data datasets of batches (flowers): count the files they were read from
            size = f"{len(train.file_paths):,} train / {len(test.file_paths):,} validation images"
        if self.is_standin:
            return f"{self.name} (stand-in for {self.requested}), {size}"
        return f"{self.name}, {size}"


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0, got {value!r}")


def _modes() -> tuple[bool, bool]:
    strict, standin = _flag("CNNBOOK_STRICT_DATA"), _flag("CNNBOOK_STANDIN")
    if strict and standin:
        raise ValueError(
            "CNNBOOK_STRICT_DATA=1 and CNNBOOK_STANDIN=1 contradict each other: strict means real data only, "
            "CNNBOOK_STANDIN means stand-ins only. Unset one of them."
        )
    return strict, standin


def data_mode() -> str:
    """A line saying how datasets will be loaded under the current environment."""
    strict, standin = _modes()
    if strict:
        return "strict: real datasets only (CNNBOOK_STRICT_DATA=1)"
    if standin:
        return "stand-ins only (CNNBOOK_STANDIN=1): digits, shapes and xo replace the real datasets"
    return "real datasets; an announced stand-in where one cannot be downloaded"


def keras_cache_dir() -> pathlib.Path:
    """Where Keras keeps downloaded datasets (``$KERAS_HOME/datasets``, by default ``~/.keras/datasets``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return pathlib.Path(home) / "datasets"


def _missing_message(name: str, error: BaseException) -> str:
    target = keras_cache_dir() / KERAS_FILES[name]
    return (
        f"The real '{name}' dataset is needed (CNNBOOK_STRICT_DATA=1, as in grading) but it is not in the "
        f"Keras cache and could not be downloaded ({error.__class__.__name__}: {error}). "
        f"To fix it, on a machine with internet access run `python -m cnnbook.data fetch {name}`, then copy "
        f"{target} to the same place on this machine (set KERAS_HOME to use another cache folder). "
        f"For a dry run without real data, set CNNBOOK_STANDIN=1 instead (not for real grades)."
    )


READABLE = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "flowers": "the flower photos",
}
STANDIN_WORDS = {
    "digits": "scikit-learn's 1,797 handwritten digits, enlarged to 28x28",
    "shapes": "procedurally drawn shapes",
}


def _announce_standin(requested: str, standin: str, *, downloaded: bool) -> None:
    """One notice in plain words: which dataset is missing, what replaces it, what that means for the numbers.

    The download's own error (a URL and a network message) is not shown: ``python -m cnnbook.data fetch NAME``
    reports it to whoever wants to repair the download.
    """
    real = READABLE[requested]
    why = (
        f"{real[0].upper()}{real[1:]} could not be downloaded here"
        if downloaded
        else f"{real[0].upper()}{real[1:]} was not downloaded (CNNBOOK_STANDIN=1 is set)"
    )
    announce(
        f"Stand-in data: '{standin}' instead of {real}",
        f"{why}, so this notebook uses the '{standin}' stand-in ({STANDIN_WORDS[standin]}). It gives arrays of "
        f"the same sizes and types, so every cell runs, but its images, classes and accuracies are not those of "
        f"{real}. With internet access (e.g. on Colab) {real} itself is used.",
    )


def load(name: str, **kwargs) -> Dataset:
    """Load a dataset by name (see the module docstring). ``kwargs`` go to the stand-in or flowers loader."""
    key = name.strip().lower().replace("-", "_")
    if key in STANDINS:
        return _load_standin(key, requested=key, **kwargs)
    if key not in REAL:
        raise ValueError(f"Unknown dataset {name!r}. Available: {', '.join(REAL + STANDINS)}.")
    strict, standin_only = _modes()
    if standin_only:
        _announce_standin(key, STANDIN_FOR[key], downloaded=False)
        return _load_standin(STANDIN_FOR[key], requested=key, **kwargs)
    try:
        return _load_real(key, **kwargs)
    except DataUnavailableError:  # a graded run's sandbox without this dataset's training split
        if strict:
            raise
        _announce_standin(key, STANDIN_FOR[key], downloaded=True)
        return _load_standin(STANDIN_FOR[key], requested=key, **kwargs)
    except Exception as error:  # keras raises a bare Exception on network failure
        if strict:
            raise DataUnavailableError(_missing_message(key, error)) from error
        _announce_standin(key, STANDIN_FOR[key], downloaded=True)
        return _load_standin(STANDIN_FOR[key], requested=key, **kwargs)


class _HeldFirstLine(io.TextIOBase):
    """A stdout that holds back what is written until more than one line has come.

    Keras prints "Downloading data from URL" before it tries the network, then a progress bar. Offline, the
    attempt fails at once and the reader would see that line followed by the stand-in notice, as if a download
    had happened. Held back, the line is shown with the progress bar when the download is under way (live, as
    on Colab) and dropped when it fails (the stand-in notice says why).
    """

    def __init__(self, target):
        self.target = target
        self.held: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.held is None:
            return self.target.write(text)
        self.held.append(text)
        joined = "".join(self.held)
        if joined.count("\n") > 1 or (joined.count("\n") == 1 and not joined.endswith("\n")):
            self.release()
        return len(text)

    def release(self) -> None:
        if self.held:
            self.target.write("".join(self.held))
        self.held = None

    def flush(self) -> None:
        if self.held is None:
            self.target.flush()


@contextlib.contextmanager
def quiet_failed_download():
    """Keras' "Downloading data from URL" line shows only while a download really runs, not before one fails.

    Used around every real dataset loader here, and by lecture 08 around the ImageNet weights of Xception.
    """
    held = _HeldFirstLine(sys.stdout)
    with contextlib.redirect_stdout(held):
        yield  # on an exception the held line is dropped
    held.release()


def _load_real(name: str, **kwargs) -> Dataset:
    sealed = _sealed_folder()
    if sealed is not None:
        return _load_sealed(sealed, name, requested=name, **kwargs)
    import keras

    if name == "flowers":
        with quiet_failed_download():
            return _load_flowers(**kwargs)
    if kwargs:
        raise TypeError(f"load({name!r}) takes no options, got {sorted(kwargs)}")
    loader = {
        "mnist": keras.datasets.mnist,
        "fashion_mnist": keras.datasets.fashion_mnist,
        "cifar10": keras.datasets.cifar10,
    }[name]
    with quiet_failed_download():
        train, test = loader.load_data()
    return Dataset(train, test, requested=name, name=name, class_names=CLASS_NAMES[name])


def _find_class_root(path: pathlib.Path) -> pathlib.Path:
    """The folder whose sub-folders are the flower classes (archives unpack one level deeper or not)."""
    for candidate in [path, *sorted(p for p in path.rglob("*") if p.is_dir())]:
        if {"daisy", "roses"} <= {p.name for p in candidate.iterdir() if p.is_dir()}:
            return candidate
    raise FileNotFoundError(f"no folder with the flower classes under {path}")


def _load_flowers(image_size=(299, 299), batch_size=32, validation_split=0.2, seed=42) -> Dataset:
    import keras

    archive_dir = keras.utils.get_file("flower_photos", origin=FLOWERS_URL, untar=True)
    root = _find_class_root(pathlib.Path(archive_dir))
    return _folder_datasets(root, "flowers", "flowers", image_size, batch_size, validation_split, seed)


def _folder_datasets(root, requested, name, image_size, batch_size, validation_split, seed) -> Dataset:
    import keras

    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        root,
        validation_split=validation_split,
        subset="both",
        seed=seed,
        image_size=tuple(image_size),
        batch_size=batch_size,
        verbose=False,
    )
    class_names = list(train_ds.class_names)
    return Dataset(train_ds, val_ds, requested=requested, name=name, class_names=class_names)


# ----------------------------------------------------------------------------------------------- stand-ins


def _load_standin(name: str, *, requested: str, **kwargs) -> Dataset:
    sealed = _sealed_folder()
    if sealed is not None:
        return _load_sealed(sealed, "flowers" if requested == "flowers" else name, requested=requested, **kwargs)
    if requested == "flowers":
        return _shapes_folder(requested=requested, **kwargs)
    if name == "digits":
        train, test = _digits(**kwargs)
    elif name == "shapes":
        train, test = _shapes(**kwargs)
    else:
        train, test = _xo(**kwargs)
    return Dataset(train, test, requested=requested, name=name, class_names=CLASS_NAMES[name])


@functools.lru_cache(maxsize=4)
def _digits(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's 8x8 digits as 28x28 uint8 images: 20x20 digit in a 4-pixel border, as in MNIST."""
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = bunch.images / 16.0  # 0..1
    big = resize(small, (len(small), 20, 20), order=1, anti_aliasing=False, preserve_range=True)
    images = np.zeros((len(small), 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = np.clip(np.rint(big * 255), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


def _draw_shape(kind: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A boolean mask of one shape of class ``kind`` at a random position, size and orientation."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(size * 0.35, size * 0.65, 2)
    r = rng.uniform(size * 0.18, size * 0.3)
    dy, dx = yy - cy, xx - cx
    if kind == 0:  # disk
        return dy**2 + dx**2 <= r**2
    if kind == 1:  # square, rotated a little
        a = rng.uniform(-0.3, 0.3)
        u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    if kind == 2:  # upward triangle
        return (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == 3:  # plus-shaped cross
        w = r * 0.3
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if kind == 4:  # ring
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= r * 0.6)
    period = rng.uniform(4.0, 7.0)
    phase = rng.uniform(0, period)
    if kind == 5:  # horizontal stripes
        return ((yy + phase) % period) < period / 2
    if kind == 6:  # vertical stripes
        return ((xx + phase) % period) < period / 2
    if kind == 7:  # diagonal stripes
        return ((xx + yy + phase) % (period * 1.4)) < period * 0.7
    if kind == 8:  # checkerboard
        cell = rng.integers(3, 6)
        return ((((yy + phase) // cell) + ((xx + phase) // cell)) % 2) == 0
    # kind == 9: grid of dots
    step = rng.uniform(6.0, 9.0)
    ry, rx = (yy + phase) % step - step / 2, (xx + phase) % step - step / 2
    return ry**2 + rx**2 <= (step * 0.25) ** 2


def _shape_images(n: int, rng: np.random.Generator, num_classes: int = 10, size: int = 32):
    labels = rng.integers(0, num_classes, n)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, kind in enumerate(labels):
        mask = _draw_shape(int(kind), rng, size)
        background = rng.uniform(0, 255, 3)
        foreground = rng.uniform(0, 255, 3)
        while np.abs(foreground - background).sum() < 150:  # keep the shape visible
            foreground = rng.uniform(0, 255, 3)
        image = np.where(mask[..., None], foreground, background)
        image += rng.normal(0, 12, image.shape)
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images, labels.astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _shapes(n_train: int = 5000, n_test: int = 1000, seed: int = 0):
    """Procedural 32x32 RGB shapes, 10 classes; labels shaped ``(N, 1)`` like CIFAR-10."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _shape_images(n_train, rng)
    x_test, y_test = _shape_images(n_test, rng)
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))


def _shapes_folder(requested, image_size=(299, 299), batch_size=32, validation_split=0.2, seed=42,
                   n_images=500) -> Dataset:  # fmt: skip
    """The flowers stand-in: 5 shape classes written as PNG files, read by the same folder loader."""
    import keras

    root = pathlib.Path(os.environ.get("CNNBOOK_CACHE", pathlib.Path.home() / ".cache" / "cnnbook"))
    root = root / f"shapes_folder_{n_images}"
    names = CLASS_NAMES["shapes"][:5]
    if not (root / ".complete").exists():
        rng = np.random.default_rng(1)
        images, labels = _shape_images(n_images, rng, num_classes=5)
        for class_name in names:
            (root / class_name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels)):
            keras.utils.save_img(root / names[label] / f"{i:05d}.png", image)
        (root / ".complete").touch()
    return _folder_datasets(root, requested, "shapes", image_size, batch_size, validation_split, seed)


X_IMAGE = np.array(
    [
        [-1, -1, -1, -1, -1, -1, -1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1, +1, -1],
        [-1, -1, +1, -1, -1, -1, +1, -1, -1],
        [-1, -1, -1, +1, -1, +1, -1, -1, -1],
        [-1, -1, -1, -1, +1, -1, -1, -1, -1],
        [-1, -1, -1, +1, -1, +1, -1, -1, -1],
        [-1, -1, +1, -1, -1, -1, +1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1, +1, -1],
        [-1, -1, -1, -1, -1, -1, -1, -1, -1],
    ],
    dtype=np.float32,
)
"""The lecture's 9x9 X (the transcript repeats its middle row and shows a 10th column by a conversion slip;
the 7x7 feature maps it prints only come out of this 9x9 image)."""

O_IMAGE = np.array(
    [
        [-1, -1, -1, -1, -1, -1, -1, -1, -1],
        [-1, -1, -1, +1, +1, +1, -1, -1, -1],
        [-1, -1, +1, -1, -1, -1, +1, -1, -1],
        [-1, +1, -1, -1, -1, -1, -1, +1, -1],
        [-1, +1, -1, -1, -1, -1, -1, +1, -1],
        [-1, +1, -1, -1, -1, -1, -1, +1, -1],
        [-1, -1, +1, -1, -1, -1, +1, -1, -1],
        [-1, -1, -1, +1, +1, +1, -1, -1, -1],
        [-1, -1, -1, -1, -1, -1, -1, -1, -1],
    ],
    dtype=np.float32,
)
"""A 9x9 O in the same style (the lecture's O picture did not survive in the transcript)."""


@functools.lru_cache(maxsize=4)
def _xo(n_flips: int = 2, copies: int = 4, seed: int = 0):
    """The X and O toy set: each image shifted by up to one pixel, plus copies with ``n_flips`` pixels flipped.

    Train: the clean shifted images; test: their noisy copies. Images are float32 in {-1, +1}, labels uint8
    (0 = X, 1 = O).
    """
    rng = np.random.default_rng(seed)
    clean, labels = [], []
    for label, base in enumerate((X_IMAGE, O_IMAGE)):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = np.full_like(base, -1.0)
                src = base[max(0, -dy) : 9 - max(0, dy), max(0, -dx) : 9 - max(0, dx)]
                shifted[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
                clean.append(shifted)
                labels.append(label)
    clean, labels = np.stack(clean), np.array(labels, dtype=np.uint8)
    noisy = np.repeat(clean, copies, axis=0)
    for image in noisy:
        idx = rng.choice(81, size=n_flips, replace=False)
        image.flat[idx] *= -1
    return (clean, labels), (noisy, np.repeat(labels, copies))


# ------------------------------------------------------------------------------------ graded runs: sealed data
SEALED_ENV = "CNNBOOK_SEALED_DATA"
SEALED_KEYS = ("x_train", "y_train", "class_names")
REAL_FILES = {  # what must be in the Keras cache for a real dataset to load without the network
    "mnist": ["mnist.npz"],
    "fashion_mnist": [f"fashion-mnist/{part}-{kind}-idx{n}-ubyte.gz" for part in ("train", "t10k")
                      for kind, n in (("images", 3), ("labels", 1))],
    "cifar10": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"],
}  # fmt: skip


def _sealed_folder() -> pathlib.Path | None:
    value = os.environ.get(SEALED_ENV, "").strip()
    return pathlib.Path(value) if value else None


def _load_sealed(folder: pathlib.Path, name: str, *, requested: str, **kwargs) -> Dataset:
    """A graded run's dataset: the training split the grader wrote, and a test split with no rows."""
    if kwargs:
        raise DataUnavailableError(
            f"load({requested!r}) with options ({', '.join(sorted(kwargs))}) is not available in a graded run: "
            "the grader provides each dataset's training split as the course loads it by default. Call "
            f"load({requested!r}) without options."
        )
    path = folder / f"{name}.npz"
    if not path.is_file():
        raise DataUnavailableError(
            f"The '{name}' dataset is not available in this graded run: the grader provides the training split of "
            f"each dataset its machine holds, and '{name}' is not one of them."
        )
    with np.load(path, allow_pickle=False) as stored:
        x_train, y_train = stored["x_train"], stored["y_train"]
        class_names = [str(c) for c in stored["class_names"]]
    x_test = np.empty((0, *x_train.shape[1:]), dtype=x_train.dtype)
    y_test = np.empty((0, *y_train.shape[1:]), dtype=y_train.dtype)
    dataset = Dataset(
        (x_train, y_train), (x_test, y_test), requested=requested, name=name, class_names=class_names
    )
    dataset.test_withheld = True
    return dataset


def seal(folder: str | pathlib.Path) -> list[str]:
    """Write the training split of every dataset that loads here without the network into ``folder`` (one
    ``<name>.npz`` each: ``x_train``, ``y_train``, ``class_names``; never a test split), for a graded run's
    sandbox (``CNNBOOK_SEALED_DATA``). Real datasets are written when their files are in the Keras cache; the
    stand-ins digits, shapes and xo always. Returns the names written."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if _sealed_folder() is not None:
        raise RuntimeError(f"{SEALED_ENV} is set: sealed data cannot be written from sealed data")
    splits = {}
    for name, files in REAL_FILES.items():
        if all((keras_cache_dir() / f).is_file() for f in files):
            splits[name] = (_load_real(name)[0], CLASS_NAMES[name])
    splits["digits"] = (_digits()[0], CLASS_NAMES["digits"])
    splits["shapes"] = (_shapes()[0], CLASS_NAMES["shapes"])
    splits["xo"] = (_xo()[0], CLASS_NAMES["xo"])
    for name, ((x_train, y_train), class_names) in splits.items():
        partial = folder / f".{name}.partial.npz"
        np.savez(partial, x_train=x_train, y_train=y_train, class_names=np.array(class_names, dtype=str))
        partial.chmod(0o644)
        partial.replace(folder / f"{name}.npz")
    return list(splits)


def fetch(name: str) -> pathlib.Path:
    """Download a real dataset into the Keras cache (run where there is internet) and say where it is."""
    key = name.strip().lower().replace("-", "_")
    if key not in REAL:
        raise ValueError(f"Only real datasets can be fetched: {', '.join(REAL)}")
    os.environ["CNNBOOK_STRICT_DATA"] = "1"
    os.environ.pop("CNNBOOK_STANDIN", None)
    load(key)
    return keras_cache_dir() / KERAS_FILES[key]


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cnnbook.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_parser = sub.add_parser("fetch", help="download real datasets into the Keras cache")
    fetch_parser.add_argument("names", nargs="+", choices=REAL)
    args = parser.parse_args(argv)
    for name in args.names:
        print(f"{name}: cached at {fetch(name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
