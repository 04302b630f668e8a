"""The a1_backprop course the grader tests share: a corpus of submissions (honest, broken, tampered, hostile to the
grading process), each with the status, score and words its record must show, and a course directory holding them.
"""

from __future__ import annotations

import copy
import datetime
import pathlib
import shutil

import nbformat

from tests.support import harness
from tests.support.wrong_answers.a1_backprop import WRONG_ANSWERS

A = "a1_backprop"
FULL = 25.0
CELL_TIMEOUT = 25
DUE = datetime.datetime(2026, 10, 1, 23, 59, tzinfo=datetime.timezone.utc)


# -------------------------------------------------------------------------------------------- submissions
def _release():
    return harness.read(harness.release_path(A))


def reference():
    return harness.fill(_release(), harness.reference_solutions(harness.read(harness.source_path(A))))


def _index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if harness.nbgrader_meta(c).get("grade_id") == grade_id)


def append_to(nb, grade_id, code):
    cell = nb.cells[_index(nb, grade_id)]
    cell.source += "\n" + code
    return nb


def as_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _duplicated_solution():
    nb = reference()
    i = _index(nb, "forward_pass_code")
    wrong = copy.deepcopy(nb.cells[i])
    wrong.id = "forward-pass-copy"
    wrong.source = WRONG_ANSWERS[0].replace.get("forward_pass_code", "t0 = 0")
    nb.cells.insert(i, wrong)  # a wrong copy first, the right one last
    return nb


def _duplicated_test():
    nb = reference()
    i = _index(nb, "forward_pass_values")
    twin = copy.deepcopy(nb.cells[i])
    twin.id = "test-forward-pass-copy"
    nb.cells.insert(i + 1, twin)
    return nb


def _deleted(nb, grade_id):
    del nb.cells[_index(nb, grade_id)]
    return nb


def _solution_moved_to_plain_cell():
    nb = reference()
    i = _index(nb, "add_backward_code")
    plain = nbformat.v4.new_code_cell(nb.cells[i].source)
    nb.cells[i] = plain
    return nb


def _retyped(nb, grade_id):
    i = _index(nb, grade_id)
    cell = nb.cells[i]
    nb.cells[i] = nbformat.v4.new_markdown_cell(cell.source, metadata=cell.metadata)
    return nb


def _tampered_points():
    nb = reference()
    harness.nbgrader_meta(nb.cells[_index(nb, "forward_pass_values")])["points"] = 100
    return nb


def _test_switched_off():
    nb = _release()
    cell = nb.cells[_index(nb, "forward_pass_values")]
    cell.metadata.nbgrader.update(grade=False, locked=False, points=0)
    cell.source = "pass  # no test here"
    return nb


def _fake_graded_cell():
    nb = reference()
    meta = {"grade": True, "grade_id": "bonus_points", "locked": True, "points": 50, "solution": False,
            "schema_version": 3}  # fmt: skip
    nb.cells.append(nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": meta}))
    return nb


def _old_format():
    return nbformat.writes(nbformat.convert(reference(), 3), version=3).encode()


NOISE = """
import sys, warnings
print("2026-11-23 10:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
      file=sys.stderr)
warnings.warn("this function is deprecated", DeprecationWarning)
"""
PLOTS_AND_WIDGETS = """
import matplotlib.pyplot as plt
import ipywidgets
plt.plot([0, 1], [1, 0])
plt.show()
ipywidgets.interact(lambda x: x, x=(0, 10))
display(ipywidgets.IntSlider())
"""


def corpus():
    """student -> (file name, bytes, expected status, expected score or None, words the record must contain)."""
    wrong = WRONG_ANSWERS[0]
    solutions = harness.reference_solutions(harness.read(harness.source_path(A)))
    ref = as_bytes(reference())
    died = append_to(reference(), "small_graph_backward_code", "import os\nos._exit(1)")
    sleeps = append_to(reference(), "relative_error_code", "import time\ntime.sleep(3600)")
    noisy = append_to(reference(), "forward_pass_code", NOISE)
    plots = append_to(reference(), "add_backward_code", PLOTS_AND_WIDGETS)
    restored = "restored the nbgrader metadata"
    name = A + ".ipynb"
    cases = {
        "honest_full": (ref, "graded", FULL, []),
        "honest_blank": (as_bytes(_release()), "graded", 0.0, []),
        "honest_wrong": (
            as_bytes(harness.fill(_release(), {**solutions, **wrong.replace})),
            "graded",
            FULL - sum(wrong.loses.values()),
            [],
        ),
        "late_full": (ref, "graded", FULL, []),
        "truncated_json": (ref[: len(ref) // 2], "failed", None, ["not valid JSON", "download"]),
        "empty_file": (b"", "failed", None, ["is empty"]),
        "not_a_notebook": (b'{"answer": 42}', "failed", None, ["not a Jupyter notebook"]),
        "old_format": (_old_format(), "graded", FULL, ["converted from notebook format 3"]),
        "duplicated_solution": (as_bytes(_duplicated_solution()), "graded", FULL, ["appeared 2 times"]),
        "duplicated_test": (as_bytes(_duplicated_test()), "graded", FULL, ["appeared 2 times"]),
        "deleted_test": (
            as_bytes(_deleted(reference(), "backward_pass_values")),
            "graded",
            FULL,
            ["'backward_pass_values' was missing"],
        ),
        "deleted_test_blank": (
            as_bytes(_deleted(_release(), "forward_pass_values")),
            "graded",
            0.0,
            ["'forward_pass_values' was missing"],
        ),
        "solution_in_plain_cell": (
            as_bytes(_solution_moved_to_plain_cell()),
            "graded",
            FULL,
            ["'add_backward_code' was missing"],
        ),
        "retyped_test": (
            as_bytes(_retyped(reference(), "add_backward_matches_tape")),
            "graded",
            FULL,
            ["changed to markdown"],
        ),
        "retyped_solution": (
            as_bytes(_retyped(reference(), "multiply_backward_code")),
            "graded",
            FULL,
            ["changed to markdown"],
        ),
        "tampered_points": (as_bytes(_tampered_points()), "graded", FULL, [restored]),
        "test_switched_off": (as_bytes(_test_switched_off()), "graded", 0.0, [restored]),
        "fake_graded_cell": (as_bytes(_fake_graded_cell()), "graded", FULL, ["'bonus_points'"]),
        # the student's process ends in the last solution cell: what was graded before counts, the last test fails
        "kernel_dies": (
            as_bytes(died),
            "graded",
            FULL - 3,
            ["The sandbox stopped", "ended by itself (exit status 1)"],
        ),
        "cell_timeout": (as_bytes(sleeps), "graded", FULL, [f"per-cell limit of {CELL_TIMEOUT} s"]),
        "stderr_noise": (as_bytes(noisy), "graded", FULL, []),
        "plots_and_widgets": (as_bytes(plots), "graded", FULL, []),
    }
    out = {student: (name, *case) for student, case in cases.items()}
    out["renamed_file"] = ("Copy of a1_backprop.ipynb", ref, "graded", FULL, ["Copy of a1_backprop.ipynb"])
    return out


def make_course(folder: pathlib.Path, submissions=None) -> pathlib.Path:
    """A course directory with a1 and the corpus (or the given submissions) collected under submitted/."""
    folder.mkdir(parents=True, exist_ok=True)
    config = (harness.ROOT / "nbgrader_config.py").read_text()
    config += f"\nc.Execute.timeout = {CELL_TIMEOUT}\nc.Autograder.submission_timeout = 600\n"
    (folder / "nbgrader_config.py").write_text(config)
    shutil.copytree(harness.ROOT / "source" / A, folder / "source" / A)
    for student, (name, data, *_rest) in (corpus() if submissions is None else submissions).items():
        target = folder / "submitted" / student / A
        target.mkdir(parents=True)
        (target / name).write_bytes(data)
    stamp = folder / "submitted" / "late_full" / A / "timestamp.txt"
    if stamp.parent.exists():
        stamp.write_text((DUE + datetime.timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    return folder


def gradebook_scores(course: pathlib.Path) -> dict[str, tuple[float, float, float]]:
    """student -> (score, max score, seconds late) from the course gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: (s.score, s.max_score, s.total_seconds_late) for s in gb.assignment_submissions(A)}
