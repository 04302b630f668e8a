"""Which cells of a submitted notebook are the instructor's, and which of the student's names the tests may see.

A cell counts as the instructor's only when the gradebook knows its id and its source matches; a student's name
reaches the tests only when it is a public identifier that no given or test cell binds and no builtin has.
"""

from __future__ import annotations

import builtins
import keyword
import symtable

from ..notebooks import nbgrader_meta

STUDENT, GIVEN, TEST = "student", "given", "test"


def instructor_cells(resources, course_id: str) -> dict[str, tuple[str, str]]:
    """grade id -> (kind, source) of the instructor's cells of this notebook, from the gradebook: the only cells
    that may run in the grader. A cell of the submission counts as one of them only if its id and its source
    match (nbgrader has restored the source of each one it knows); metadata alone proves nothing, since the
    student can write any metadata."""
    from nbgrader.api import Gradebook

    info = resources.get("nbgrader", {})
    out: dict[str, tuple[str, str]] = {}
    with Gradebook(info["db_url"], course_id) as gradebook:
        notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        graded = {cell.name for cell in notebook.grade_cells}
        solution = {cell.name for cell in notebook.solution_cells}
        for cell in notebook.source_cells:
            if cell.cell_type != "code" or cell.name in solution:
                continue
            if cell.name in graded:
                out[cell.name] = (TEST, cell.source)
            elif cell.locked:
                out[cell.name] = (GIVEN, cell.source)
    return out


def cell_kind(cell, known: dict[str, tuple[str, str]]) -> str:
    meta = nbgrader_meta(cell)
    grade_id = meta.get("grade_id")
    if meta.get("solution") or grade_id not in known:
        return STUDENT
    kind, source = known[grade_id]
    return kind if cell.source == source else STUDENT


def bound_names(source: str) -> set[str]:
    """The names a cell's code binds at the top level (assignments, imports, defs, loop and ``with`` targets),
    read with ``symtable``: the names a given or test cell owns."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return set()
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}


BUILTIN_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist)


def refusal(name, owned: set[str]) -> str | None:
    """Why a name the student's side reports may not enter the tests' namespace (None when it may)."""
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 200:
        return "not a name"
    if name.startswith("_"):
        return "private"
    if name in BUILTIN_NAMES:
        return "a builtin"
    if name in owned:
        return "defined by the instructor's cells"
    return None


def hidden_lines(source: str, begin: str, end: str) -> set[int]:
    """Line numbers (1-based) of a test cell's hidden region."""
    lines, hidden = set(), False
    for number, line in enumerate(source.split("\n"), start=1):
        if begin in line:
            hidden = True
        elif end in line:
            hidden = False
        elif hidden:
            lines.add(number)
    return lines
