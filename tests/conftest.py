"""Shared fixtures (the book is built once per test session, under the smoke profile, and reused) and the markers.

The tests are grouped by product: ``lectures/`` (the notebooks and cnnbook), ``assignments/``, ``grader/`` (the
autograder), ``book/`` (the build and the site, marked ``book``; the repository's hygiene); ``support/`` holds what
they share. Each test is marked after what it needs, so a fast subset can be chosen: ``-m lectures``,
``-m assignments``, ``-m grading``, ``-m sandbox`` (real bubblewrap sandboxes), ``-m postgres`` (a private
PostgreSQL server), ``-m book`` (builds the whole book once), or ``-m "not book and not postgres"``.
"""

from __future__ import annotations

import os

# Before any test module imports Keras or Matplotlib: the TensorFlow backend, quiet C++ logs, and a Matplotlib
# backend that needs no display. (Not through MPLBACKEND: the book build's kernels must keep inline figures.)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_LOG = ROOT / "_build" / "book-build.log"


@pytest.fixture(scope="session")
def built_book():
    """Build the site with ``python -m tools.book build --profile smoke``; return (status, log text).

    The build reuses the execution cache when nothing it depends on changed, so a second test run is fast.
    """
    env = dict(os.environ, CNNBOOK_PROFILE="smoke", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "tools.book", "build", "--profile", "smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log = result.stdout + result.stderr
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    BUILD_LOG.write_text(log, encoding="utf-8")
    return result.returncode, log


FOLDER_MARKS = {"lectures": "lectures", "assignments": "assignments", "grader": "grading"}
MODULE_MARKS = {
    "test_book": ("book",),
    "test_site": ("book",),
    "test_sandbox": ("sandbox",),
    "test_gradescope": ("sandbox",),
    "test_cluster": ("postgres",),
}


def pytest_collection_modifyitems(items):
    for item in items:
        path = pathlib.Path(str(item.fspath))
        folder = path.parent.name
        if folder in FOLDER_MARKS:
            item.add_marker(FOLDER_MARKS[folder])
        for name in MODULE_MARKS.get(path.stem, ()):
            item.add_marker(name)
