"""Read a submitted notebook and put its structure back in order before nbgrader sees it.

Students edit notebooks in ways that break stock nbgrader: a file that is not JSON, an old format, a graded cell
deleted, duplicated, turned into Markdown, or with its nbgrader metadata edited. ``prepare`` either returns a
notebook nbgrader can grade, with the list of repairs made, or raises ``Unreadable`` with a message for the
instructor. It never changes a student's answer: repairs touch the cells the instructor owns (tests, read-only
cells) and the nbgrader metadata, which the instructor's copy (the student version generated from ``source/``)
defines.
"""

from __future__ import annotations

import copy
import json

import nbformat
from nbformat.validator import NotebookValidationError

from .notebooks import nbgrader_meta

REDOWNLOAD = (
    "ask the student to download the notebook again (Colab: File > Download > Download .ipynb) and resubmit"
)


class Unreadable(Exception):
    """The file cannot be graded at all; the message says why and what to do."""


def read(data: bytes, name: str = "the submission"):
    """Parse bytes as a notebook in format 4 (older formats are converted). Raises ``Unreadable``."""
    if not data.strip():
        raise Unreadable(f"{name} is empty: {REDOWNLOAD}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable(f"{name} is not a text file (not a notebook): {REDOWNLOAD}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise Unreadable(
            f"{name} is not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}); it was probably "
            f"truncated or edited by hand: {REDOWNLOAD}"
        ) from None
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise Unreadable(f"{name} is JSON but not a Jupyter notebook (no 'nbformat' field): {REDOWNLOAD}")
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001 (nbformat raises many kinds for broken files)
        problem = f"{type(err).__name__}: {err}"
        raise Unreadable(f"{name} is a notebook nbformat cannot read ({problem}): {REDOWNLOAD}") from None
    return nb, int(raw.get("nbformat", 4))


def prepare(data: bytes, instructor, name: str = "the submission"):
    """(notebook ready for nbgrader, list of repairs). ``instructor`` is the generated student version."""
    nb, version = read(data, name)
    repairs = []
    if version < 4:
        repairs.append(f"converted from notebook format {version} to 4")

    wanted = {}  # grade_id -> the instructor's cell
    order = []
    for cell in instructor.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade_id"):
            wanted[meta["grade_id"]] = cell
            order.append(meta["grade_id"])

    # Outputs are never graded (nbgrader clears them); dropping them first avoids failing on broken outputs.
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None

    # Cells claiming to be graded cells the instructor never made: plain cells from now on.
    copies: dict[str, list[int]] = {}
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if "nbgrader" not in cell.get("metadata", {}):
            continue
        grade_id = meta.get("grade_id")
        if grade_id not in wanted:
            del cell["metadata"]["nbgrader"]
            if meta.get("grade") or meta.get("solution") or meta.get("locked"):
                repairs.append(f"ignored a cell marked as graded cell {grade_id!r}, which the assignment has not")
            continue
        copies.setdefault(grade_id, []).append(index)

    # Duplicates: the last copy is graded (as nbgrader does); the others become plain cells.
    for grade_id, indices in copies.items():
        if len(indices) > 1:
            for index in indices[:-1]:
                del nb.cells[index]["metadata"]["nbgrader"]
            repairs.append(f"cell {grade_id!r} appeared {len(indices)} times: graded its last copy")
            copies[grade_id] = indices[-1:]

    # Matched cells get the instructor's metadata and cell type back (points, flags, checksums).
    for grade_id, (index,) in copies.items():
        cell, theirs = nb.cells[index], wanted[grade_id]
        if cell["cell_type"] != theirs["cell_type"]:
            was, should = cell["cell_type"], theirs["cell_type"]
            repairs.append(f"cell {grade_id!r} had been changed to {was}: made it {should} again")
            nb.cells[index] = cell = _retype(cell, theirs["cell_type"])
        mine, expected = nbgrader_meta(cell), nbgrader_meta(theirs)
        if mine != expected:
            if any(mine.get(k) != expected.get(k) for k in ("grade", "solution", "locked", "points")):
                repairs.append(f"restored the nbgrader metadata of cell {grade_id!r}")
            cell["metadata"]["nbgrader"] = copy.deepcopy(nbgrader_meta(theirs))

    # Deleted cells come back from the instructor's copy, right after the nearest earlier cell still there.
    present = set(copies)
    for position, grade_id in enumerate(order):
        if grade_id in present:
            continue
        anchor = next((g for g in reversed(order[:position]) if g in present), None)
        if anchor is None:
            index = 0
        else:
            index = 1 + next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == anchor)
        restored = copy.deepcopy(wanted[grade_id])
        if restored["cell_type"] == "code":
            restored["outputs"], restored["execution_count"] = [], None
        nb.cells.insert(index, restored)
        present.add(grade_id)
        repairs.append(f"cell {grade_id!r} was missing: restored it from the instructor's copy")

    if not copies:
        repairs.append("none of the assignment's graded cells were in the file: is it the right notebook?")
    nb.metadata["kernelspec"] = copy.deepcopy(instructor.metadata.get("kernelspec", nb.metadata.get("kernelspec")))
    for cell in nb.cells:  # ids must be unique and present in format 4.5
        cell.pop("id", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    try:
        nbformat.validate(nb)
    except NotebookValidationError as err:
        problem = err.message
        raise Unreadable(f"{name} does not follow the notebook format ({problem}): {REDOWNLOAD}") from None
    return nb, repairs


def _retype(cell, cell_type: str):
    source = cell.get("source", "")
    metadata = cell.get("metadata", {})
    if cell_type == "code":
        return nbformat.v4.new_code_cell(source=source, metadata=metadata)
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(source=source, metadata=metadata)
    return nbformat.v4.new_raw_cell(source=source, metadata=metadata)
