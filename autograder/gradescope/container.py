"""What runs in Gradescope's container: ``python -m autograder.gradescope run|check``.

``check`` is setup.sh's last step: it grades the instructor's solution once. ``run`` (run_autograder) grades the
one notebook found in ``<root>/submission`` as the student ``student`` of a copy of the bundle's course, with the
``autograder grade`` command (so the sandbox, the repairs, the limits and the canary are the ones of a class graded
on the course's own machine), then writes ``<root>/results/results.json``: one test per graded test cell, its
error cut to ``Name: message`` by the feedback module's ``HideTests``, hidden tests shown only as the bundle says.
``<root>`` is ``/autograder``, or ``$AUTOGRADER_ROOT`` (the tests lay the directory out elsewhere).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from ..course import Course
from ..notebooks import atomic_write, nbgrader_meta
from . import messages

ROOT_ENV = "AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
SETTINGS = "gradescope.json"  # the bundle's settings, beside setup.sh
STUDENT = "student"  # the one submission of a Gradescope run is graded under this id
CHECK_STUDENT = "solution-check"  # setup.sh grades the instructor's solution as this student
MAX_NOTEBOOK_BYTES = 50 << 20  # as `autograder collect`
UNSANDBOXED_NOTE = "graded WITHOUT the sandbox"  # how a record graded with --trust-submissions says so
HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*$", re.MULTILINE)
HEADING_POINTS = re.compile(r"\s*\(\d+(?:\.\d+)?\s+points?\)\s*$")


def autograder_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def _settings(root: pathlib.Path) -> dict:
    return json.loads((root / "source" / SETTINGS).read_text(encoding="utf-8"))


def _grade_command(course_dir: pathlib.Path, settings: dict, student: str) -> tuple[int, str]:
    """``autograder grade`` of one student in ``course_dir``: (exit status, what it printed)."""
    command = [sys.executable, "-m", "autograder", "--course", str(course_dir), "grade", settings["assignment"]]
    command += ["--student", student, "--workers", "1"]
    if settings.get("standin"):
        command.append("--standin")
    if settings.get("trust_submissions"):
        command.append("--trust-submissions")
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_DB_URL"}  # the copy's own gradebook only
    env["PYTHONUNBUFFERED"] = "1"
    done = subprocess.run(
        command,
        cwd=course_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    return done.returncode, done.stdout


def _record(course_dir: pathlib.Path, assignment: str, student: str) -> dict | None:
    path = course_dir / ".autograder" / assignment / "records" / f"{student}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- check
def check(root: pathlib.Path | None = None) -> int:
    """setup.sh's last step: grade the instructor's solution through ``autograder grade`` in the bundle's course.
    A wrong grading environment (a dataset or a package missing) fails the image build here; a right one leaves
    the canary's result in the course, so every submission's ``grade`` finds it and does not grade it again."""
    from ..sandbox.isolation import isolation_problem

    root = root or autograder_root()
    settings = _settings(root)
    assignment = settings["assignment"]
    course_dir = root / "source" / "course"
    problem = isolation_problem()
    if problem and not settings.get("trust_submissions"):
        print(
            "WARNING: the grading sandbox does not work while the image is built: "
            f"{problem}.\nIf it does not work when submissions run either, every submission gets 0 with a "
            "message that the autograder could not run (nothing is graded without the sandbox). Check with a "
            "test submission; see autograder/README.md (Gradescope) for what to do.",
            flush=True,
        )
        return 0
    folder = course_dir / "submitted" / CHECK_STUDENT / assignment
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(course_dir / "source" / assignment / f"{assignment}.ipynb", folder / f"{assignment}.ipynb")
    try:
        status, printed = _grade_command(course_dir, settings, CHECK_STUDENT)
        print(printed, flush=True)
        record = _record(course_dir, assignment, CHECK_STUDENT)
    finally:
        for leftover in (course_dir / "submitted", course_dir / "autograded" / CHECK_STUDENT):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in (
            course_dir / ".autograder" / assignment / "records" / f"{CHECK_STUDENT}.json",
            course_dir / ".autograder" / assignment / "logs" / f"{CHECK_STUDENT}.log",
        ):
            leftover.unlink(missing_ok=True)
    if status != 0 or record is None:
        print(f"ERROR: {assignment} cannot be graded in this image (see above); fix it and upload again.")
        return 1
    score, top = sum(record.get("scores", {}).values()), sum(record.get("points", {}).values())
    if record.get("status") != "graded" or score != top:
        why = record.get("reason") or f"{score:g} of {top:g} points"
        print(f"ERROR: the instructor's solution of {assignment} is not graded full marks here: {why}")
        return 1
    print(f"grading environment checked: the instructor's solution of {assignment} gets {score:g} / {top:g}")
    return 0


# ------------------------------------------------------------------------------------------------ run
def _notebooks(folder: pathlib.Path) -> tuple[list[pathlib.Path], list[str]]:
    """(the notebooks of a submission folder, the names of its other files)."""
    notebooks, others = [], []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts) or not path.is_file() or path.is_symlink():
            continue
        (notebooks if path.suffix.lower() == ".ipynb" else others).append(path)
    return notebooks, [p.relative_to(folder).as_posix() for p in others]


def _results(output: str, started: float, tests: list | None = None, score: float | None = None) -> dict:
    results = {
        "execution_time": int(round(time.monotonic() - started)),
        "output": output,
        "output_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests or [],
    }
    if score is not None:
        results["score"] = score
    return results


def _docstring(source: str) -> str:
    """The first paragraph of a test cell's docstring (the student version's: what the test checks)."""
    try:
        text = ast.get_docstring(ast.parse(source)) or ""
    except SyntaxError:
        return ""
    return " ".join(text.split("\n\n")[0].split())


def _warnings(settings: dict, record: dict | None) -> list[str]:
    lines = [messages.STANDIN] if settings.get("standin") else []
    if record and any(n.startswith(UNSANDBOXED_NOTE) for n in record.get("notes", [])):
        lines.append(messages.UNSANDBOXED)
    return lines


def _own_errors(nb) -> list[str]:
    """'cell <id>: Name: message' of the cells that are not tests and raised (up to three)."""
    out = []
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution"):
            continue  # a test: reported with the test
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                out.append(f"cell {meta.get('grade_id') or index}: {output['traceback'][0]}")
    return out[:3]


def graded_results(course_dir: pathlib.Path, settings: dict, record: dict, started: float, notes: list[str]):
    """results.json of a graded submission: one test per graded test cell, in notebook order."""
    import nbformat

    from ..feedback import hide_tests, release_notebook

    assignment = settings["assignment"]
    course = Course.open(course_dir)
    hide = hide_tests(course.config, release_notebook(course, assignment))
    graded = nbformat.read(course.autograded(STUDENT, assignment) / f"{assignment}.ipynb", as_version=4)
    graded, resources = hide.preprocess(graded, {})
    errors = resources["autograder"]["errors"]

    scores, points = record.get("scores", {}), record.get("points", {})
    manual = set(record.get("needs_manual", []))
    tests, waiting, heading, part = [], [], "", ""
    for cell in nbformat.read(course.source_notebook(assignment), as_version=4).cells:
        if cell.cell_type == "markdown":
            for level, text in HEADING.findall(cell.source):
                heading = HEADING_POINTS.sub("", text)
                part = heading if level == "##" else part
            continue
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not meta.get("grade") or not grade_id:
            continue
        top = float(points.get(grade_id, meta.get("points") or 0.0))
        if meta.get("solution") or grade_id in manual:
            waiting.append(f"{grade_id} ({top:g} points)")
            continue
        score = float(scores.get(grade_id, 0.0))
        checks = _docstring(hide.release_sources.get(grade_id, ""))
        tag = re.match(r"Part [A-Z0-9]+", part)
        tests.append(
            {
                "name": f"{heading} — {grade_id}" if heading else grade_id,
                "number": str(len(tests) + 1),
                "score": score,
                "max_score": top,
                "status": "passed" if score >= top else "failed",
                "output": messages.outcome(checks, score, top, errors.get(grade_id)),
                "output_format": "text",
                "tags": [tag.group(0) if tag else part] if part else [],
                "visibility": settings["hidden_visibility"] if hide.begin_hidden in cell.source else "visible",
            }
        )

    lines = messages.graded_summary(assignment, tests, settings["hidden_visibility"], notes)
    lines += messages.cell_errors(_own_errors(graded))
    lines += messages.repairs(record.get("repairs") or [])
    for note in record.get("notes", []):
        if note.startswith(UNSANDBOXED_NOTE):
            continue  # said loudly by _warnings
        if not note.startswith(("kept the manual", "late ", "graded ")):
            lines.append(note)
    lines += messages.graded_by_hand(waiting)
    return _results("\n".join(lines + _warnings(settings, record)), started, tests)


def grade_submission(root: pathlib.Path | None = None) -> dict:
    """Grade the submission in ``<root>/submission`` and return results.json's content (not written)."""
    started = time.monotonic()
    root = root or autograder_root()
    settings = _settings(root)
    assignment = settings["assignment"]
    expected = f"{assignment}.ipynb"
    notebooks, others = _notebooks(root / "submission")
    if not notebooks:
        return _results(messages.no_notebook(others, expected), started, score=0)
    if len(notebooks) > 1:
        names = [p.relative_to(root / "submission").as_posix() for p in notebooks]
        return _results(messages.several_notebooks(names, expected), started, score=0)
    notebook = notebooks[0]
    if notebook.stat().st_size > MAX_NOTEBOOK_BYTES:
        return _results(messages.too_large(notebook.name, MAX_NOTEBOOK_BYTES >> 20, expected), started, score=0)
    notes = [] if notebook.name == expected else [messages.graded_as(notebook.name, expected)]

    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    course_dir = work / "course"
    shutil.copytree(root / "source" / "course", course_dir, symlinks=True)
    folder = course_dir / "submitted" / STUDENT / assignment
    folder.mkdir(parents=True)
    shutil.copyfile(notebook, folder / expected)

    status, printed = _grade_command(course_dir, settings, STUDENT)
    print(printed, flush=True)  # stdout: shown to the instructor only
    record = _record(course_dir, assignment, STUDENT) if status == 0 else None
    if record is None:
        return _results(messages.GRADING_SIDE, started, score=0)
    if record.get("status") != "graded":
        reason = record.get("reason", "")
        text = messages.not_graded(
            messages.student_reason(reason, course_dir, STUDENT), messages.what_to_do(reason)
        )
        return _results("\n".join([text, *notes, *_warnings(settings, record)]), started, score=0)
    return graded_results(course_dir, settings, record, started, notes)


def write_results(results: dict, root: pathlib.Path | None = None) -> pathlib.Path:
    path = (root or autograder_root()) / "results" / "results.json"
    atomic_write(path, json.dumps(results, indent=1))
    return path


def _run_in_container(root: pathlib.Path) -> int:
    """run_autograder: always leave a results.json, even when the grader itself fails."""
    started = time.monotonic()
    try:
        results = grade_submission(root)
    except Exception:  # noqa: BLE001 (the student must still get an answer; the instructor gets the traceback)
        import traceback

        traceback.print_exc(file=sys.stdout)
        results = _results(messages.GRADER_FAILED, started, score=0)
    path = write_results(results, root)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    """``python -m autograder.gradescope run|check``."""
    parser = argparse.ArgumentParser(
        prog="python -m autograder.gradescope", description="Grade in Gradescope's container with this pipeline."
    )
    parser.add_argument("command", choices=("run", "check"), help="run: grade one submission; check: setup.sh's")
    parser.add_argument("--root", help=f"Gradescope's directory (default: ${ROOT_ENV}, else {DEFAULT_ROOT})")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root) if args.root else autograder_root()
    if args.command == "check":
        return check(root)
    return _run_in_container(root)
