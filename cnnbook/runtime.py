"""``setup()``: the one call at the top of every notebook (introduced in lecture 01).

It seeds Python, NumPy and Keras/TensorFlow, quiets TensorFlow's start-up logging, reports the versions and the
device, and returns the active :class:`~cnnbook.profiles.Profile`.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import sys
import textwrap

from . import profiles

DEFAULT_SEED = 42


def prepare_environment() -> None:
    """Environment that must be set before TensorFlow or Keras is first imported."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's C++ start-up and graph-rewrite log lines are noise on a page; real failures still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def widen_kernel_terminal() -> None:
    """In a notebook kernel, 120 columns for what sizes itself to the terminal (Keras' model summaries).

    A kernel has no terminal and would get 80 columns, which cuts the "Connected to" column of a functional
    model's summary ("input_layer[0]…"). Elsewhere (a terminal, a script, the grading tools) nothing changes.
    """
    if "ipykernel" in sys.modules and "COLUMNS" not in os.environ:
        os.environ["COLUMNS"] = "120"


class DropRetracingWarnings(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    Lectures train several fresh models one after another (a comparison, a few seeds); each new model traces its
    own training step once, and TensorFlow counts those first traces as retracing and warns about a mistake the
    notebook does not make. Other TensorFlow warnings still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_retracing_warnings() -> None:
    """Install :class:`DropRetracingWarnings` on TensorFlow's logger (once)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, DropRetracingWarnings) for f in logger.filters):
        logger.addFilter(DropRetracingWarnings())


def seed_everything(seed: int = DEFAULT_SEED, *, deterministic_ops: bool = True) -> None:
    """Seed Python's ``random``, NumPy and TensorFlow; optionally make TensorFlow's ops deterministic."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)  # seeds random, NumPy and the backend again, in Keras' own way
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


def device_name() -> str:
    """The GPU's name when TensorFlow sees one, otherwise the CPU with its core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", gpus[0].name)
        except (RuntimeError, ValueError):
            name = gpus[0].name
        return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")
    return f"CPU ({os.cpu_count()} cores, no GPU visible to TensorFlow)"


def setup(seed: int | None = None, *, profile: str | None = None, quiet: bool = False) -> profiles.Profile:
    """Seed everything, report versions and device, and return the active training profile.

    ``seed`` defaults to ``CNNBOOK_SEED`` or 42. ``profile`` overrides ``CNNBOOK_PROFILE``. On a GPU, op
    determinism is left off (some GPU kernels have no deterministic form and it costs speed); on a CPU two runs
    with the same seed give identical weights.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    if seed is None:
        seed = int(os.environ.get("CNNBOOK_SEED", DEFAULT_SEED))
    gpu = bool(tf.config.list_physical_devices("GPU"))
    active = profiles.resolve(profile, gpu_available=gpu)
    seed_everything(seed, deterministic_ops=not gpu)
    quiet_retracing_warnings()
    widen_kernel_terminal()
    from .viz import use_style

    use_style()
    if not quiet:
        from .data import data_mode

        rows = [
            ("Python", platform.python_version()),
            ("TensorFlow", tf.__version__),
            ("Keras", f"{keras.__version__} (backend: {keras.backend.backend()})"),
            ("NumPy", np.__version__),
            ("Device", device_name()),
            ("Seed", str(seed)),
            ("Data", data_mode()),
            ("Profile", f"{active.name}: {active.budget()}"),
            ("Meaning", active.meaning),
        ]
        width = max(len(key) for key, _ in rows)
        lines = []
        for key, value in rows:
            wrapped = textwrap.wrap(value, 62) or [""]
            lines.append(f"{key:<{width}} : {wrapped[0]}")
            lines.extend(f"{'':<{width}}   {more}" for more in wrapped[1:])
        print("\n".join(lines))
    return active
