"""The test runner itself: a crash in native code (TensorFlow, oneDNN, BLAS) fails the test it happened in, and the
run goes on. pytest runs the tests in a worker process (pytest-xdist, ``-n 1`` in pyproject.toml's addopts) that
is replaced when it dies, instead of in the process that reports."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CRASHING = """
import ctypes


def test_native_code_crashes():
    ctypes.string_at(0)  # reads address 0 in C: SIGSEGV, as a crash inside a native library would


def test_the_next_test_still_runs():
    assert sum(range(4)) == 6
"""


def test_a_native_crash_fails_one_test_not_the_run(tmp_path):
    (tmp_path / "test_crash.py").write_text(CRASHING)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "test_crash.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "crashed while running 'test_crash.py::test_native_code_crashes'" in out, out
