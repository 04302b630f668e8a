"""``autograder gradescope ASSIGNMENT``: a Gradescope autograder bundle that grades with this pipeline.

The bundle is a zip with, at its top level (Gradescope's layout)::

    setup.sh          run once, as root, when Gradescope builds the image: Python, bubblewrap, the packages, the
                      datasets, then a check that grades the instructor's solution
    run_autograder    run for each submission: ``python -m autograder.gradescope run``
    gradescope.json   the bundle's settings (assignment, stand-in data, visibility of hidden tests, ...)
    package/          the project's Python packages (autograder, cnnbook) with pyproject.toml and requirements.txt
    course/           a course directory holding only nbgrader_config.py and source/<assignment>/

``run`` grades the one notebook found in ``/autograder/submission`` as the student ``student`` of a copy of
``course/``, with the ``autograder grade`` command (so the sandbox, the repairs, the limits and the canary are the
ones of a class graded on the course's own machine), then writes ``/autograder/results/results.json``: one test per
graded test cell, its error cut to ``Name: message`` by the feedback module's ``HideTests``, hidden tests shown
only as the bundle says. ``AUTOGRADER_ROOT`` replaces ``/autograder`` (the tests lay the directory out elsewhere).
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
import zipfile

from .course import CONFIG_FILE, Course, CourseError

ROOT_ENV = "AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
SETTINGS = "gradescope.json"
STUDENT = "student"  # the one submission of a Gradescope run is graded under this id
CHECK_STUDENT = "solution-check"  # setup.sh grades the instructor's solution as this student
VISIBILITIES = ("after_published", "after_due_date", "hidden", "visible")
WHEN_SHOWN = {
    "after_published": "when your instructor publishes the grades",
    "after_due_date": "after the due date",
    "hidden": "only to your instructor",
}
MAX_NOTEBOOK_BYTES = 50 << 20  # as `autograder collect`
PACKAGES = ("autograder", "cnnbook")
PACKAGE_FILES = ("pyproject.toml", "requirements.txt", "README.md")
SKIP = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")
LOAD = re.compile(r"""\bload\(\s*["']([A-Za-z_-]+)["']""")
HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*$", re.MULTILINE)
HEADING_POINTS = re.compile(r"\s*\(\d+(?:\.\d+)?\s+points?\)\s*$")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources give the same zip

# Appended to the bundled nbgrader_config.py: Gradescope's container keeps its own gradebook beside the file, never
# the course's database server (a shared c.CourseDirectory.db_url would be unreachable, or written by strangers).
OWN_GRADEBOOK = """
# Added by `autograder gradescope`: the bundle grades into its own gradebook.db beside this file.
c.CourseDirectory.pop("db_url", None)  # noqa: F821
"""

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu with Python 3). It installs
# Python's venv, the grading sandbox (bubblewrap) and the course's packages, fetches the real datasets that
# @ASSIGNMENT@ loads, and grades the instructor's solution once: a broken image fails here, and the result is
# kept so that each submission skips that check.
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
export KERAS_HOME="${KERAS_HOME:-$AUTOGRADER_ROOT/keras}"
export DEBIAN_FRONTEND=noninteractive
VENV="$AUTOGRADER_ROOT/venv"
PY="$VENV/bin/python"

apt-get update -q
apt-get install -y -q --no-install-recommends \
  python3 python3-venv python3-pip bubblewrap util-linux ca-certificates
python3 -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -r "$SOURCE/package/requirements.txt"
"$PY" -m pip install --quiet --no-deps "$SOURCE/package"
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null

mkdir -p "$KERAS_HOME"
@FETCH@
"$PY" -m autograder.gradescope check
chmod 0755 "$SOURCE/run_autograder"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for each submission, as root: it grades the one notebook in submission/ with
# `autograder grade` (student code in the sandbox) and writes results/results.json. AUTOGRADER_ROOT replaces
# /autograder; without setup.sh's venv, the python3 first on PATH is used (it must have the course's packages).
set -u
export AUTOGRADER_ROOT="${AUTOGRADER_ROOT:-/autograder}"
export KERAS_HOME="${KERAS_HOME:-$AUTOGRADER_ROOT/keras}"
PY="$AUTOGRADER_ROOT/venv/bin/python"
if [ ! -x "$PY" ]; then
  PY="$(command -v python3 || true)"
fi
if [ -z "$PY" ]; then
  echo "run_autograder: no Python: run setup.sh first" >&2
  exit 1
fi
cd "$AUTOGRADER_ROOT"
exec "$PY" -I -m autograder.gradescope run
"""


# ---------------------------------------------------------------------------------------------------- build
def project_root() -> pathlib.Path:
    """The checkout this package runs from: the bundle takes its packages and requirements from there."""
    root = pathlib.Path(__file__).resolve().parent.parent
    missing = [name for name in ("pyproject.toml", "requirements.txt", *PACKAGES) if not (root / name).exists()]
    if missing:
        raise CourseError(
            f"the bundle needs the project's {', '.join(missing)} beside the autograder package ({root}); run "
            "`autograder gradescope` from a checkout of the course repository (installed with `make venv`)"
        )
    return root


def datasets_needed(nb) -> list[str]:
    """The real datasets the notebook's code cells load with ``cnnbook.data.load("NAME")``, sorted."""
    from cnnbook.data import REAL

    names = set()
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            names.update(name.lower().replace("-", "_") for name in LOAD.findall(cell.get("source", "")))
    return sorted(names & set(REAL))


def _files(folder: pathlib.Path):
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p in SKIP or p.endswith(".egg-info") for p in parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _add(bundle: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    bundle.writestr(info, data)


def build(
    course: Course,
    assignment: str,
    out: pathlib.Path,
    standin: bool = False,
    hidden_visibility: str = "after_published",
    trust_submissions: bool = False,
) -> tuple[pathlib.Path, dict]:
    """Write ``out/<assignment>-gradescope.zip``; returns its path and the bundle's settings."""
    import nbformat

    course.check_assignment(assignment)
    if hidden_visibility not in VISIBILITIES:
        choices = ", ".join(VISIBILITIES)
        raise CourseError(f"--hidden-visibility must be one of {choices}, not {hidden_visibility!r}")
    project = project_root()
    source_nb = nbformat.read(course.source_notebook(assignment), as_version=4)
    settings = {
        "assignment": assignment,
        "standin": bool(standin),
        "hidden_visibility": hidden_visibility,
        "trust_submissions": bool(trust_submissions),
        "datasets": [] if standin else datasets_needed(source_nb),
        "student": STUDENT,
    }
    if settings["datasets"]:
        fetch = f'"$PY" -m cnnbook.data fetch {" ".join(settings["datasets"])}'
    elif standin:
        fetch = "# no real dataset: built with --standin (stand-in datasets, for testing the course)"
    else:
        fetch = f"# no real dataset: {assignment} loads none"
    setup = SETUP_SH.replace("@ASSIGNMENT@", assignment).replace("@FETCH@", fetch)

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{assignment}-gradescope.zip"
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w") as bundle:
        _add(bundle, "setup.sh", setup.encode(), executable=True)
        _add(bundle, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        _add(bundle, SETTINGS, (json.dumps(settings, indent=1, sort_keys=True) + "\n").encode())
        for name in PACKAGE_FILES:
            if (project / name).exists():
                _add(bundle, f"package/{name}", (project / name).read_bytes())
        for package in PACKAGES:
            for path in _files(project / package):
                _add(bundle, f"package/{path.relative_to(project).as_posix()}", path.read_bytes())
        config = (course.root / CONFIG_FILE).read_bytes() + OWN_GRADEBOOK.encode()
        _add(bundle, f"course/{CONFIG_FILE}", config)
        folder = course.source_notebook(assignment).parent
        for path in _files(folder):
            _add(bundle, f"course/source/{assignment}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    os.replace(partial, target)
    return target, settings


def run(course: Course, args, out, err) -> int:
    """The ``autograder gradescope`` command."""
    folder = pathlib.Path(args.out)
    folder = folder if folder.is_absolute() else course.root / folder
    path, settings = build(
        course, args.assignment, folder, args.standin, args.hidden_visibility, args.trust_submissions
    )
    try:
        shown = path.relative_to(course.root)
    except ValueError:
        shown = path
    out.print(f"{shown}: Gradescope autograder for {args.assignment} ({path.stat().st_size / 1e6:.1f} MB)")
    datasets = ", ".join(settings["datasets"]) or "none"
    out.print(f"  setup.sh fetches the real datasets: {datasets}; installs Python packages and bubblewrap")
    when = WHEN_SHOWN.get(settings["hidden_visibility"], "always")
    out.print(f"  tests with hidden parts ({settings['hidden_visibility']}): students see them {when}")
    if settings["standin"]:
        err.print(
            "[bold yellow]STAND-IN DATA:[/] this bundle grades on stand-in datasets: for testing the course only, "
            "its scores are not valid grades."
        )
    if settings["trust_submissions"]:
        err.print(
            "[bold red]NO SANDBOX ALLOWED:[/] where bubblewrap does not work in Gradescope's container, this "
            "bundle grades without it: student code can then read the hidden tests and change its own score. "
            "Every such result says so."
        )
    out.print(
        "Upload it in Gradescope (Configure Autograder > Zip file upload, Ubuntu base image), then check the "
        "build log: it ends with the instructor's solution graded."
    )
    return 0


# ------------------------------------------------------------------------------------------ in the container
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


def check(root: pathlib.Path | None = None) -> int:
    """setup.sh's last step: grade the instructor's solution through ``autograder grade`` in the bundle's course.
    A wrong grading environment (a dataset or a package missing) fails the image build here; a right one leaves
    the canary's result in the course, so every submission's ``grade`` finds it and does not grade it again."""
    from .sandbox import isolation_problem

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


def _student_reason(reason: str, course_dir: pathlib.Path) -> str:
    from . import submission as submissions
    from .feedback import STUDENT_REDOWNLOAD

    reason = reason.replace(submissions.REDOWNLOAD, STUDENT_REDOWNLOAD)
    reason = reason.replace(f"{STUDENT}'s notebook", "your notebook")
    return reason.replace(str(course_dir) + "/", "").replace(str(course_dir), "the course")


def graded_results(course_dir: pathlib.Path, settings: dict, record: dict, started: float, notes: list[str]):
    """results.json of a graded submission: one test per graded test cell, in notebook order."""
    import nbformat

    from .feedback import hide_tests, release_notebook

    assignment = settings["assignment"]
    course = Course.open(course_dir)
    hide = hide_tests(course.config, release_notebook(course, assignment))
    begin = hide.begin_hidden
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
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        grade_id = meta.get("grade_id")
        if not meta.get("grade") or not grade_id:
            continue
        top = float(points.get(grade_id, meta.get("points") or 0.0))
        if meta.get("solution") or grade_id in manual:
            waiting.append(f"{grade_id} ({top:g} points)")
            continue
        score = float(scores.get(grade_id, 0.0))
        passed = score >= top
        lines = []
        checks = _docstring(hide.release_sources.get(grade_id, ""))
        if checks:
            lines.append(f"What it checks: {checks}")
        if passed:
            lines.append(f"Passed: {score:g} / {top:g} points.")
        else:
            lines.append(f"Failed: {score:g} / {top:g} points.")
            lines.append(errors.get(grade_id) or "The test gave no points.")
        tag = re.match(r"Part [A-Z0-9]+", part)
        tests.append(
            {
                "name": f"{heading} — {grade_id}" if heading else grade_id,
                "number": str(len(tests) + 1),
                "score": score,
                "max_score": top,
                "status": "passed" if passed else "failed",
                "output": "\n".join(lines),
                "output_format": "text",
                "tags": [tag.group(0) if tag else part] if part else [],
                "visibility": settings["hidden_visibility"] if begin in cell.source else "visible",
            }
        )

    total, top = sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)
    lines = [f"{assignment}: your notebook was graded by the course's autograder ({len(tests)} tests)."]
    lines += notes
    later = [t for t in tests if t["visibility"] != "visible"]
    if later:
        when = WHEN_SHOWN.get(settings["hidden_visibility"], "later")
        lines.append(
            f"{len(later)} of the {len(tests)} tests also run hidden checks: their results and points are shown "
            f"{when}."
        )
    else:
        lines.append(f"Score: {total:g} / {top:g}.")
    own = _own_errors(graded)
    if own:
        lines.append("Cells (not tests) that raised an error; tests after them may fail because of it:")
        lines += [f"- {error}" for error in own]
    if record.get("repairs"):
        lines.append("Changes made to your notebook so it could be graded (your answers were not changed):")
        lines += [f"- {r}" for r in record["repairs"]]
    for note in record.get("notes", []):
        if note.startswith("graded WITHOUT the sandbox"):
            continue  # said loudly below
        if not note.startswith(("kept the manual", "late ", "graded ")):
            lines.append(note)
    if waiting:
        lines.append("Graded by your instructor, not here: " + ", ".join(waiting) + ".")
    return _results("\n".join(lines + _warnings(settings, record)), started, tests)


def _own_errors(nb) -> list[str]:
    """'cell <id>: Name: message' of the cells that are not tests and raised (up to three)."""
    out = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if meta.get("grade") and not meta.get("solution"):
            continue  # a test: reported with the test
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                out.append(f"cell {meta.get('grade_id') or index}: {output['traceback'][0]}")
    return out[:3]


def _warnings(settings: dict, record: dict | None) -> list[str]:
    lines = []
    if settings.get("standin"):
        lines.append(
            "\nSTAND-IN DATA: graded on the course's stand-in datasets, for testing the course: not a valid grade."
        )
    if record and any(n.startswith("graded WITHOUT the sandbox") for n in record.get("notes", [])):
        lines.append(
            "\nWARNING: graded WITHOUT the sandbox. Bubblewrap does not work in this container and the bundle "
            "was built with --trust-submissions: the student's code ran with the grader's rights, so it could "
            "read the hidden tests and change its own results. Your instructor knows this setting."
        )
    return lines


def grade_submission(root: pathlib.Path | None = None) -> dict:
    """Grade the submission in ``<root>/submission`` and return results.json's content (not written)."""
    started = time.monotonic()
    root = root or autograder_root()
    settings = _settings(root)
    assignment = settings["assignment"]
    expected = f"{assignment}.ipynb"
    how = f"Upload one file, your notebook {expected} (in Colab: File > Download > Download .ipynb)."
    notebooks, others = _notebooks(root / "submission")
    if not notebooks:
        found = f" Your submission holds: {', '.join(others[:10])}." if others else " Your submission is empty."
        text = f"No notebook (.ipynb file) was found, so nothing was graded.{found} {how}"
        return _results(text, started, score=0)
    if len(notebooks) > 1:
        names = ", ".join(p.relative_to(root / "submission").as_posix() for p in notebooks[:10])
        return _results(
            f"Your submission holds {len(notebooks)} notebooks ({names}); it must hold exactly one, so nothing "
            f"was graded. {how}",
            started,
            score=0,
        )
    notebook = notebooks[0]
    if notebook.stat().st_size > MAX_NOTEBOOK_BYTES:
        return _results(
            f"{notebook.name} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB, so it was not graded. Clear its "
            f"outputs (Edit > Clear all outputs), download it again and resubmit. {how}",
            started,
            score=0,
        )
    notes = []
    if notebook.name != expected:
        notes.append(f"Your file {notebook.name} was graded as {expected} (next time, upload it under that name).")

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
        return _results(
            "Your notebook was received, but the autograder could not run because of a problem on the grading "
            "side, not in your notebook, so it has no score yet. Your instructor sees the details and will grade "
            "it again; you do not need to submit again.",
            started,
            score=0,
        )
    if record.get("status") != "graded":
        from .feedback import _what_to_do

        reason = _student_reason(record.get("reason", ""), course_dir)
        text = f"Your notebook could not be graded, so it gets no points yet: {reason}\n\nWhat to do: "
        text += _what_to_do(record.get("reason", ""))
        return _results("\n".join([text, *notes, *_warnings(settings, record)]), started, score=0)
    return graded_results(course_dir, settings, record, started, notes)


def write_results(results: dict, root: pathlib.Path | None = None) -> pathlib.Path:
    folder = (root or autograder_root()) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(results, indent=1), encoding="utf-8")
    os.replace(partial, path)
    return path


def _run_in_container(root: pathlib.Path) -> int:
    """run_autograder: always leave a results.json, even when the grader itself fails."""
    started = time.monotonic()
    try:
        results = grade_submission(root)
    except Exception:  # noqa: BLE001 (the student must still get an answer; the instructor gets the traceback)
        import traceback

        traceback.print_exc(file=sys.stdout)
        results = _results(
            "Your notebook was received, but the autograder failed while grading it (a problem on the grading "
            "side, not in your notebook), so it has no score yet. Your instructor sees the details.",
            started,
            score=0,
        )
    path = write_results(results, root)
    print(f"wrote {path}")
    return 0


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("run", "check"), help="run: grade one submission; check: setup.sh's")
    parser.add_argument("--root", help=f"Gradescope's directory (default: ${ROOT_ENV}, else {DEFAULT_ROOT})")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.root) if args.root else autograder_root()
    if args.command == "check":
        return check(root)
    return _run_in_container(root)


if __name__ == "__main__":
    sys.exit(_main())
