"""Ground floor shared by every stage: nbgrader's cell metadata, the points of an assignment, atomic file writes.

Nothing here imports another module of the package.
"""

from __future__ import annotations

import os
import pathlib


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata (``{}`` for a cell nbgrader does not track, or whose metadata is ``null``)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def points(nb, with_tasks: bool = False) -> dict[str, float]:
    """Points per grade id of the graded cells (test cells; with ``with_tasks``, manually graded tasks too), in
    notebook order."""
    out = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade_id") and (meta.get("grade") or (with_tasks and meta.get("task"))):
            out[meta["grade_id"]] = float(meta.get("points") or 0.0)
    return out


def atomic_write(path: pathlib.Path, data: bytes | str, fsync: bool = False) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, then a rename. Text is written as UTF-8 with
    newlines untranslated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        with open(tmp, "wb") as stream:
            stream.write(data)
            if fsync:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
