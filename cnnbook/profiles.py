"""Training budgets: the ``smoke``, ``cpu`` and ``gpu`` profiles.

Every lecture notebook takes its epochs and data sizes from the active profile, so the same notebook runs in
seconds in CI, in minutes on a laptop and at full scale on a Colab GPU. The profile is chosen by the environment
variable ``CNNBOOK_PROFILE`` (``smoke``, ``cpu``, ``gpu`` or ``auto``); ``auto`` (the default) picks ``gpu`` when
TensorFlow sees a GPU and ``cpu`` otherwise. Introduced in lecture 01 (setup) and used by every lecture after it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

ENV_VAR = "CNNBOOK_PROFILE"
NAMES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """A training budget.

    ``max_epochs`` is the longest training run, in epochs, that any lecture makes under this profile (a cell
    chooses its own count, e.g. with :meth:`pick`, and :func:`cnnbook.training.train_and_report` refuses a run
    over the cap, so the banner that :func:`cnnbook.setup` prints stays true). ``short_epochs`` is what
    :meth:`epochs` cuts a lecture's full-scale epoch count to. ``max_train_samples`` and ``max_test_samples`` cap
    the examples a lecture takes. ``None`` means no cap (the lecture's full value is used).
    """

    name: str
    max_epochs: int | None
    max_train_samples: int | None
    max_test_samples: int | None
    meaning: str
    short_epochs: int | None = None

    def epochs(self, full: int) -> int:
        """The number of epochs to train when the lecture's full-scale value is ``full``."""
        if full < 1:
            raise ValueError(f"epochs must be at least 1, got {full}")
        cut = self.short_epochs if self.short_epochs is not None else self.max_epochs
        return full if cut is None else min(full, cut)

    def check_epochs(self, epochs: int) -> int:
        """``epochs`` itself when this profile allows a run that long; otherwise a ``ValueError`` that says why."""
        if self.max_epochs is not None and epochs > self.max_epochs:
            raise ValueError(
                f"profile '{self.name}' allows at most {self.max_epochs} epochs per run (the cap setup() prints), "
                f"but this run asks for {epochs}. Ask for fewer in the cell (profile.pick(...) or "
                f"profile.epochs(n)), or raise max_epochs of '{self.name}' in cnnbook/profiles.py."
            )
        return epochs

    def n_train(self, full: int) -> int:
        """How many training examples to use out of ``full`` available."""
        return full if self.max_train_samples is None else min(full, self.max_train_samples)

    def n_test(self, full: int) -> int:
        """How many test examples to use out of ``full`` available."""
        return full if self.max_test_samples is None else min(full, self.max_test_samples)

    def pick(self, **values):
        """Choose a value per profile: ``profile.pick(smoke=1, cpu=5, gpu=30)``.

        Every profile name must be given, so a notebook cannot silently miss one.
        """
        missing = [name for name in NAMES if name not in values]
        unknown = [name for name in values if name not in NAMES]
        if missing or unknown:
            raise ValueError(
                f"pick() needs exactly the profiles {', '.join(NAMES)}; missing: {missing or 'none'}, "
                f"unknown: {unknown or 'none'}"
            )
        return values[self.name]

    def subset(self, x, y, split: str = "train"):
        """The first examples of ``(x, y)`` allowed by this profile (``split`` is ``"train"`` or ``"test"``)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        n = self.n_train(len(x)) if split == "train" else self.n_test(len(x))
        return x[:n], y[:n]

    def budget(self) -> str:
        """The caps of this profile in words, e.g. ``up to 20 epochs per run, at most 1,000 training examples``."""
        caps = []
        if self.max_epochs is not None:
            caps.append(f"up to {self.max_epochs} epochs per run")
        if self.max_train_samples is not None:
            caps.append(f"at most {self.max_train_samples:,} training examples")
        if self.max_test_samples is not None:
            caps.append(f"at most {self.max_test_samples:,} test examples")
        return ", ".join(caps) if caps else "full datasets and epochs"

    def describe(self) -> str:
        """One line saying what this profile means for the numbers a notebook shows."""
        return f"profile '{self.name}' ({self.budget()}): {self.meaning}"


PROFILES = {
    "smoke": Profile(
        "smoke",
        max_epochs=20,  # lecture 05's early-stopping run; most runs take 1 to 8
        short_epochs=1,
        max_train_samples=1_000,
        max_test_samples=500,
        meaning=(
            "a check that every cell runs, in seconds on 2 CPU cores (CI). Accuracies and curves shown are "
            "those of tiny runs and say nothing about what the models can reach."
        ),
    ),
    "cpu": Profile(
        "cpu",
        max_epochs=40,  # lecture 05's early-stopping run; a lecture's full count is cut to 3
        short_epochs=3,
        max_train_samples=12_000,
        max_test_samples=2_000,
        meaning=(
            "a laptop budget, minutes per notebook. Models are trained on subsets and for fewer epochs than "
            "at full scale, so accuracies are lower than full-scale ones."
        ),
    ),
    "gpu": Profile(
        "gpu",
        max_epochs=None,
        max_train_samples=None,
        max_test_samples=None,
        meaning="full datasets and the epochs each lecture specifies (a Colab GPU or better).",
    ),
}


def gpu_visible_without_tensorflow() -> bool:
    """Whether an NVIDIA GPU is visible, asked of ``nvidia-smi`` (cheap: does not import TensorFlow)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def resolve(name: str | None = None, *, gpu_available: bool | None = None) -> Profile:
    """The profile called ``name``, or the one ``CNNBOOK_PROFILE`` names, ``auto`` resolved.

    ``gpu_available`` answers the ``auto`` question; when it is ``None`` the GPU is looked for.
    """
    requested = (name if name is not None else os.environ.get(ENV_VAR, "auto")).strip().lower() or "auto"
    if requested == "auto":
        if gpu_available is None:
            gpu_available = gpu_visible_without_tensorflow()
        return PROFILES["gpu" if gpu_available else "cpu"]
    if requested not in PROFILES:
        raise ValueError(
            f"Unknown profile {requested!r} (from {ENV_VAR} or the argument). "
            f"Use one of: {', '.join(NAMES)} or auto, e.g. `export {ENV_VAR}=smoke`."
        )
    return PROFILES[requested]
