"""Shared fixtures: the book is built once per test session (under the smoke profile) and reused."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_LOG = ROOT / "_build" / "book-build.log"


@pytest.fixture(scope="session")
def built_book():
    """Build the site with ``python -m cnnbook.book build --profile smoke``; return (status, log text).

    The build reuses the execution cache when nothing it depends on changed, so a second test run is fast.
    """
    env = dict(os.environ, CNNBOOK_PROFILE="smoke", PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "cnnbook.book", "build", "--profile", "smoke"],
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
