"""What datasets a sandbox holds: the training splits only (the grader's side; see ``autograder/SANDBOX.md``).

A graded run must not be able to train on the test split. The sandbox therefore gets neither the Keras dataset
cache nor scikit-learn's bundled data files: it gets a folder written by :func:`cnnbook.data.seal` in the
grader's process, holding each dataset's training split and nothing else, bound read-only at ``/data/sealed``
(``CNNBOOK_SEALED_DATA``). There, ``cnnbook.data.load`` returns test splits with no rows; the grader's own
process, where the tests run, loads the whole dataset and measures accuracy on its side.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import pathlib
import shutil
import tempfile
import threading

ENV = "AUTOGRADER_SEALED_DATA"  # set by a worker for its nbgrader processes: the folder it built
INSIDE = "/data/sealed"  # where the sandbox sees it
_BUILT: dict[str, pathlib.Path] = {}
_LOCK = threading.Lock()


def training_splits(env: dict[str, str] | None = None) -> pathlib.Path:
    """The folder of training splits for a sandbox: the one named by ``AUTOGRADER_SEALED_DATA`` in ``env`` (a
    worker builds it once and hands it to the nbgrader processes it starts), or one built now, once per process
    and Keras cache, removed when the process exits."""
    env = os.environ if env is None else env
    given = env.get(ENV, "").strip()
    if given:
        return pathlib.Path(given)
    from cnnbook import data

    key = str(data.keras_cache_dir())  # seal writes what this cache holds, and every stand-in, whatever the mode
    with _LOCK:
        if key not in _BUILT:
            folder = pathlib.Path(tempfile.mkdtemp(prefix="autograder-training-data-"))
            atexit.register(shutil.rmtree, folder, True)
            data.seal(folder)
            folder.chmod(0o755)  # read by the sandbox's own user; written only here
            _BUILT[key] = folder
        return _BUILT[key]


def masked_data_folders() -> list[str]:
    """Folders of the Python environment that hold a dataset a stand-in is made from (scikit-learn's digits):
    covered by an empty tmpfs in the sandbox, so the student's code cannot rebuild a test split from them."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.origin:
        return []
    data = pathlib.Path(spec.origin).resolve().parent / "datasets" / "data"
    return [str(data)] if data.is_dir() else []
