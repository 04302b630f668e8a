"""Run the code a lecture defines, so tests check the lecture's own functions (not copies of them).

Code cells tagged ``lecture-code`` hold definitions and worked-example data only (no training, no plots); tests
execute them in a fresh namespace and call what they define.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TAG = "lecture-code"


def tagged_sources(notebook: str | pathlib.Path, tag: str = TAG) -> list[str]:
    path = ROOT / notebook if not pathlib.Path(notebook).is_absolute() else pathlib.Path(notebook)
    nb = json.loads(path.read_text(encoding="utf-8"))
    sources = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and tag in cell.get("metadata", {}).get("tags", []):
            source = cell["source"]
            sources.append("".join(source) if isinstance(source, list) else source)
    if not sources:
        raise AssertionError(f"{path.name} has no code cell tagged {tag!r}")
    return sources


def notebook_text(notebook: str | pathlib.Path) -> str:
    """Every cell's source of ``notebook``, joined: for tests that check what a lecture says."""
    path = ROOT / notebook if not pathlib.Path(notebook).is_absolute() else pathlib.Path(notebook)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)


def load_namespace(notebook: str | pathlib.Path, tag: str = TAG) -> dict:
    """Execute the tagged cells of ``notebook`` in order and return the resulting namespace."""
    namespace: dict = {"__name__": f"lecture_{pathlib.Path(notebook).stem}"}
    for source in tagged_sources(notebook, tag):
        exec(compile(source, str(notebook), "exec"), namespace)
    return namespace


def run_isolated(code: str, timeout: float = 300) -> list[str]:
    """Run ``code`` in a Python of its own (Matplotlib without a screen) and return the lines it printed. A crash
    in a native library there (TensorFlow's oneDNN dies with SIGFPE on some CPUs) fails the calling test with the
    exit status, instead of taking the test run down."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"exit status {result.returncode} (-8: SIGFPE)\n{result.stderr[-3000:]}"
    return result.stdout.splitlines()
