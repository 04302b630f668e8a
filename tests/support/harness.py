"""Check an assignment the way a class will meet it: through real nbgrader, in a temporary course directory.

``tests/test_assignments.py`` uses these functions; whoever writes or changes an assignment can run the same checks
from the repository root and read a report::

    .venv/bin/python -m tests.support.harness a2_conv_arithmetic
    .venv/bin/python -m tests.support.harness a2_conv_arithmetic --only same_padding_floor

A *submission* is built from the student version that nbgrader generates: every solution cell gets the reference
solution (the source cell without its ``### BEGIN/END SOLUTION`` lines) except the cells a wrong answer replaces.
Grading uses the stand-in datasets, explicitly (``CNNBOOK_STANDIN=1``), as CI must.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import importlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
ASSIGNMENTS = ("a1_backprop", "a2_conv_arithmetic", "a3_numpy_cnn", "a4_keras_cnn", "a5_augment_transfer")
REFERENCE, BLANK = "reference", "blank"


@dataclasses.dataclass(frozen=True)
class WrongAnswer:
    """A plausible mistake: new sources for some solution cells, and the points each test cell must take for it."""

    name: str
    mistake: str
    replace: dict[str, str]
    loses: dict[str, int]

    @property
    def student(self) -> str:
        return f"wrong_{self.name}"


def wrong_answers(assignment: str, full: bool | None = None) -> list[WrongAnswer]:
    """The assignment's wrong answers: all of them when ``full`` (default: ``CNNBOOK_FULL_CORPUS=1``), otherwise
    without those its file lists in ``FULL_CORPUS_ONLY``."""
    module = importlib.import_module(f"tests.support.wrong_answers.{assignment}")
    answers = list(module.WRONG_ANSWERS)
    if full is None:
        full = os.environ.get("CNNBOOK_FULL_CORPUS") == "1"
    if full:
        return answers
    return [a for a in answers if a.name not in getattr(module, "FULL_CORPUS_ONLY", set())]


# ----------------------------------------------------------------------------------------------- notebook reading
def source_path(assignment: str, root: pathlib.Path = ROOT) -> pathlib.Path:
    return root / "source" / assignment / f"{assignment}.ipynb"


def release_path(assignment: str, root: pathlib.Path = ROOT) -> pathlib.Path:
    return root / "release" / assignment / f"{assignment}.ipynb"


def read(path: pathlib.Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell["cell_type"] == "code"


def is_solution_cell(cell) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def test_points(nb) -> dict[str, int]:
    """grade_id -> points of every autograded test cell, in notebook order."""
    return {nbgrader_meta(c)["grade_id"]: int(nbgrader_meta(c)["points"]) for c in nb.cells if is_test_cell(c)}


def strip_solution_markers(source: str) -> str:
    keep = [line for line in source.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return "\n".join(keep)


def hidden_blocks(source: str) -> list[str]:
    return re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, flags=re.DOTALL)


def reference_solutions(source_nb) -> dict[str, str]:
    cells = [c for c in source_nb.cells if is_solution_cell(c)]
    return {nbgrader_meta(c)["grade_id"]: strip_solution_markers(c.source) for c in cells}


def fill(release_nb, solutions: dict[str, str]):
    """A copy of the student version with the given solution cells written in (others left as released)."""
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_solution_cell(cell) and grade_id in solutions:
            cell.source = solutions[grade_id]
    return nb


# ------------------------------------------------------------------------------------------------- frame checks
TITLE = re.compile(r"# A(\d) · \S.*")
PART = re.compile(r"^## Part ([A-Z]): .+ \((\d+) points?\)\s*$", re.MULTILINE)
TOTAL = re.compile(r"\*\*Points:\*\* (\d+) in total")
GRADE_ID = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")


def frame_problems(assignment: str, nb) -> list[str]:
    """Everything wrong with the frame of a source notebook (empty when it is right)."""
    from tools.book import first_cell_source

    problems = []
    cells = nb.cells
    number = assignment[1]
    if not (cells[0].cell_type == "markdown" and TITLE.fullmatch(cells[0].source.strip())):
        problems.append("cell 0 must be the title only: '# A<N> · <Title>'")
    elif TITLE.fullmatch(cells[0].source.strip()).group(1) != number:
        problems.append(f"the title must number the assignment A{number}")
    if cells[1].cell_type != "code" or cells[1].source != first_cell_source():
        problems.append("cell 1 must be the standard first cell (tools.book.first_cell_source())")
    elif not (nbgrader_meta(cells[1]).get("locked") and nbgrader_meta(cells[1]).get("grade_id") == "setup"):
        problems.append("the standard cell must be read-only with grade_id 'setup'")
    intro = cells[2].source if cells[2].cell_type == "markdown" else ""
    if "**Time:** about" not in intro:
        problems.append("cell 2 must say '**Time:** about N minutes'")
    points = test_points(nb)
    total = TOTAL.search(intro)
    if not total or int(total.group(1)) != sum(points.values()):
        problems.append(f"cell 2 must say '**Points:** {sum(points.values())} in total'")

    ids = [nbgrader_meta(c)["grade_id"] for c in cells if nbgrader_meta(c)]
    if len(ids) != len(set(ids)):
        problems.append("grade ids must be unique")
    for grade_id in ids:
        if not GRADE_ID.fullmatch(grade_id) and grade_id != "setup":
            problems.append(f"grade id {grade_id!r} is not descriptive snake_case")
    for cell in cells:
        meta = nbgrader_meta(cell)
        if is_solution_cell(cell):
            if not meta["grade_id"].endswith("_code"):
                problems.append(f"solution cell {meta['grade_id']!r} should end in '_code'")
            if "### BEGIN SOLUTION" not in cell.source:
                problems.append(f"solution cell {meta['grade_id']!r} has no '### BEGIN SOLUTION' region")
        if is_test_cell(cell):
            tree = ast.parse(cell.source)
            first = tree.body[0] if tree.body else None
            if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
                problems.append(f"test cell {meta['grade_id']!r} must open with a docstring saying what it checks")
            elif len(str(first.value.value).split()) < 5:
                problems.append(f"test cell {meta['grade_id']!r} has a docstring too short to say what it checks")
            if not meta.get("locked"):
                problems.append(f"test cell {meta['grade_id']!r} must be read-only")

    # Parts: every heading's points are the points of the test cells below it, up to the next part.
    parts, current = {}, None
    for cell in cells:
        if cell.cell_type == "markdown":
            for letter, pts in PART.findall(cell.source):
                current = letter
                parts[letter] = [int(pts), 0]
        elif is_test_cell(cell):
            if current is None:
                problems.append(f"test cell {nbgrader_meta(cell)['grade_id']!r} comes before the first part")
            else:
                parts[current][1] += int(nbgrader_meta(cell)["points"])
    letters = list(parts)
    if letters != [chr(ord("A") + i) for i in range(len(letters))] or not letters:
        problems.append(f"parts must be lettered A, B, C... in order, found {letters}")
    for letter, (said, counted) in parts.items():
        if said != counted:
            problems.append(f"Part {letter} says {said} points but its test cells give {counted}")
    if not any(hidden_blocks(c.source) for c in cells if is_test_cell(c)):
        problems.append("no hidden tests")
    return problems


# ----------------------------------------------------------------------------------------------- running nbgrader
def grading_env() -> dict[str, str]:
    """Environment of every nbgrader run here: the venv's tools first, stand-in data on purpose, smoke budgets."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CNNBOOK_STRICT_DATA", None)
    env.update(
        CNNBOOK_STANDIN="1",
        CNNBOOK_PROFILE="smoke",
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONHASHSEED="0",
    )
    env.pop("MPLBACKEND", None)
    from autograder.sandbox import datasets  # the sandbox's training splits, built here once (as the grader's
    # workers do), not in each nbgrader process, which may have dropped root by the time it exits

    env[datasets.ENV] = str(datasets.training_splits(env))
    return env


def nbgrader(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "nbgrader"), *args],
        cwd=cwd,
        env=grading_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def validate(path: pathlib.Path, invert: bool = False) -> tuple[bool, str]:
    """``nbgrader validate [--invert]``: (passed, its report). Its exit status is 0 either way: read its words."""
    args = ["validate", str(path)] + (["--invert"] if invert else [])
    result = nbgrader(*args, cwd=ROOT)
    out = result.stdout + result.stderr
    success = "Success! The notebook does not pass any tests." if invert else "Success! Your notebook passes all"
    return result.returncode == 0 and success in out, out


class Course:
    """A throw-away nbgrader course directory holding one assignment of this repository."""

    def __init__(self, assignment: str, directory: pathlib.Path, sandboxed: bool = True):
        """``sandboxed``: grade as ``autograder grade`` does (student code in the sandbox, tests in the grader),
        isolated when bubblewrap works here; otherwise nbgrader's own Execute step, all in one kernel."""
        self.assignment = assignment
        self.dir = pathlib.Path(directory)
        shutil.copy(ROOT / "nbgrader_config.py", self.dir / "nbgrader_config.py")
        from autograder.sandbox.isolation import isolation_problem

        if sandboxed and isolation_problem() is None:
            from autograder.grading.job import sandbox_steps

            with open(self.dir / "nbgrader_config.py", "a", encoding="utf-8") as config:
                config.write(f"\nc.Autograde.autograde_preprocessors = {sandbox_steps()!r}\n")
        shutil.copytree(ROOT / "source" / assignment, self.dir / "source" / assignment)

    def generate(self) -> nbformat.NotebookNode:
        result = nbgrader("generate_assignment", self.assignment, "--force", cwd=self.dir)
        release = release_path(self.assignment, self.dir)
        if result.returncode != 0 or not release.exists():
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result.stdout}{result.stderr}")
        return read(release)

    def submit(self, student: str, nb) -> None:
        folder = self.dir / "submitted" / student / self.assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{self.assignment}.ipynb")

    def autograde(self) -> str:
        result = nbgrader("autograde", self.assignment, "--force", cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader autograde failed:\n{result.stdout}{result.stderr}")
        return result.stdout + result.stderr

    def scores(self) -> dict[str, dict[str, float]]:
        """student -> {test grade_id: score} read from the gradebook nbgrader wrote."""
        from nbgrader.api import Gradebook

        out = {}
        with Gradebook(f"sqlite:///{self.dir / 'gradebook.db'}") as gradebook:
            for student in gradebook.students:
                try:
                    notebook = gradebook.find_submission_notebook(self.assignment, self.assignment, student.id)
                except Exception:  # noqa: BLE001 (no submission for this student)
                    continue
                out[student.id] = {grade.name: float(grade.score or 0.0) for grade in notebook.grades}
        return out


@dataclasses.dataclass
class Outcome:
    points: dict[str, int]  # test grade_id -> points available
    scores: dict[str, dict[str, float]]  # student -> grade_id -> score
    log: str
    seconds: float

    def lost(self, student: str) -> dict[str, float]:
        got = self.scores[student]
        return {gid: pts - got.get(gid, 0.0) for gid, pts in self.points.items() if got.get(gid, 0.0) != pts}


def grade_corpus(assignment: str, answers: list[WrongAnswer], directory: pathlib.Path) -> Outcome:
    """Generate the student version, submit reference, blank and every wrong answer, autograde them all."""
    start = time.monotonic()
    course = Course(assignment, directory)
    release = course.generate()
    source = read(source_path(assignment))
    reference = reference_solutions(source)
    course.submit(REFERENCE, fill(release, reference))
    course.submit(BLANK, release)
    for answer in answers:
        unknown = set(answer.replace) - set(reference)
        if unknown:
            raise ValueError(f"{answer.name}: no solution cell {sorted(unknown)}")
        course.submit(answer.student, fill(release, {**reference, **answer.replace}))
    log = course.autograde()
    return Outcome(test_points(source), course.scores(), log, time.monotonic() - start)


# ---------------------------------------------------------------------------------------------------- report
def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", choices=ASSIGNMENTS)
    parser.add_argument("--only", help="grade only this wrong answer (with the reference and the blank)")
    parser.add_argument("--skip-validate", action="store_true", help="skip nbgrader validate")
    args = parser.parse_args(argv)
    ok = True
    source = read(source_path(args.assignment))
    problems = frame_problems(args.assignment, source)
    print("frame:", "ok" if not problems else "\n  " + "\n  ".join(problems))
    ok &= not problems
    answers = wrong_answers(args.assignment, full=True)
    if args.only:
        answers = [a for a in answers if a.name == args.only]
        if not answers:
            parser.error(f"no wrong answer named {args.only}")
    with tempfile.TemporaryDirectory(prefix=f"{args.assignment}-") as tmp:
        outcome = grade_corpus(args.assignment, answers, pathlib.Path(tmp))
        if not args.skip_validate:
            passed, report = validate(source_path(args.assignment))
            print("validate source:", "ok" if passed else "FAILED\n" + report)
            ok &= passed
            inverted, report = validate(release_path(args.assignment, pathlib.Path(tmp)), invert=True)
            print("validate --invert release:", "ok" if inverted else "FAILED\n" + report)
            ok &= inverted
    total = sum(outcome.points.values())
    print(f"autograded {len(outcome.scores)} submissions in {outcome.seconds:.0f} s; {total} points available")
    expectations = {REFERENCE: {}, BLANK: dict(outcome.points)} | {a.student: a.loses for a in answers}
    for student, expected in expectations.items():
        if student not in outcome.scores:
            print(f"  {student}: NOT GRADED")
            ok = False
            continue
        lost = outcome.lost(student)
        good = lost == {k: float(v) for k, v in expected.items()}
        ok &= good
        verdict = "" if good else f"; expected {expected}"
        print(f"  {'ok ' if good else 'BAD'} {student}: lost {lost or 'nothing'}{verdict}")
    if not ok:
        print("\nnbgrader log (tail):\n" + outcome.log[-4000:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main())
