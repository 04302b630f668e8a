"""``autograder gradescope``: the bundle, and its run_autograder on submissions laid out as Gradescope does.

The bundle of a1_backprop is built once with ``--standin`` and ``--hidden-visibility after_due_date`` (not the
default, so the option is seen to work) and unzipped into ``<tmp>/autograder/source``. Instead of running setup.sh
(which installs system packages and a venv), the project's venv is put first on PATH, where run_autograder finds
``python3``, and setup.sh's last step, ``python -m autograder.gradescope check``, is run as it would be: it grades
the instructor's solution once and leaves the canary's result in the bundle's course, so the submissions after it
are graded once each. setup.sh itself is only checked with ``bash -n`` and for what it installs.

Each submission is a fresh ``submission/`` and ``results/`` under the same ``AUTOGRADER_ROOT``; results.json is
validated against a JSON schema written from Gradescope's specification of the file, then read for its values.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import zipfile

import jsonschema
import nbformat
import pytest

from autograder import cli
from autograder.course import Course
from autograder.gradescope import build as build_bundle
from autograder.sandbox.isolation import isolation_problem
from tests.support import harness
from tests.support.wrong_answers import a1_backprop as a1_wrong

A = "a1_backprop"
VISIBILITY = "after_due_date"
ANSWERS = {answer.name: answer for answer in a1_wrong.WRONG_ANSWERS}
MISTAKES = [ANSWERS["add_forgets_upstream"], ANSWERS["hand_forward_exp_sign"]]
TRACEBACK_MARKS = ("Traceback (most recent call last)", "Cell In[", "----> ", "File <", "Traceback (grader side)",
                   "Raised in your code:")  # fmt: skip
needs_sandbox = pytest.mark.skipif(
    isolation_problem() is not None, reason=f"no sandbox here: {isolation_problem()} (make sandbox)"
)

# --------------------------------------------------------------------------------------- results.json's schema
# Written from Gradescope's autograder specification (the results.json format): every field is optional except a
# score somewhere (top level, or on every test).
_VISIBLE = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
_FORMAT = {"enum": ["text", "simple_format", "html", "md", "ansi"]}
_TEST = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "max_score": {"type": "number"},
        "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"},
        "name_format": _FORMAT,
        "number": {"type": "string"},
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": _VISIBLE,
        "extra_data": {"type": "object"},
    },
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "test_output_format": _FORMAT,
        "test_name_format": _FORMAT,
        "visibility": _VISIBLE,
        "stdout_visibility": _VISIBLE,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": _TEST},
        "leaderboard": {"type": "array"},
    },
    "additionalProperties": False,
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"minItems": 1, "items": {"required": ["score"]}}}},
    ],
}
# What this bundle promises beyond the specification: every test says all of this.
OUR_TEST_FIELDS = {"score", "max_score", "status", "name", "number", "output", "output_format", "visibility"}


def valid(results: dict) -> dict:
    jsonschema.validate(results, SCHEMA)
    for test in results.get("tests", []):
        assert OUR_TEST_FIELDS <= set(test), test
    return results


# ---------------------------------------------------------------------------------------------------- helpers
def _source():
    return harness.read(harness.source_path(A))


def _release():
    return harness.read(harness.release_path(A))


def _nb_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _env(root: pathlib.Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_DB_URL"}
    env["PATH"] = f"{harness.VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # in place of setup.sh's venv
    env["AUTOGRADER_ROOT"] = str(root)
    env.update(extra)
    return env


def _unzip(bundle: pathlib.Path, target: pathlib.Path) -> None:
    """Unzip as Gradescope does, keeping the files' modes (zipfile alone drops them)."""
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            archive.extract(info, target)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target / info.filename, mode)


def secret_lines() -> set[str]:
    """Lines of hidden tests that neither the public part of any cell nor the student version has."""
    source = _source()
    released = {line.strip() for c in _release().cells for line in c.source.splitlines()}
    public = set()
    for cell in source.cells:
        text = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.DOTALL)
        public |= {line.strip() for line in text.splitlines()}
    hidden = {line.strip() for c in source.cells for block in harness.hidden_blocks(c.source)
              for line in block.splitlines()}  # fmt: skip
    return {line for line in hidden - public - released if len(line) > 20}


def points_by_test() -> dict[str, float]:
    return {gid: float(pts) for gid, pts in harness.test_points(_source()).items()}


def hidden_ids() -> set[str]:
    return {c.metadata["nbgrader"]["grade_id"] for c in _source().cells
            if harness.is_test_cell(c) and "### BEGIN HIDDEN TESTS" in c.source}  # fmt: skip


class Gradescope:
    """``<tmp>/autograder`` laid out like Gradescope's container, with the bundle unzipped in ``source/``."""

    def __init__(self, root: pathlib.Path):
        self.root = root

    def submit(self, files: dict[str, bytes], **env) -> dict:
        """Put ``files`` in submission/, run run_autograder: results.json, its log and the raw graded notebook."""
        for folder in ("submission", "results"):
            shutil.rmtree(self.root / folder, ignore_errors=True)
            (self.root / folder).mkdir()
        for name, data in files.items():
            (self.root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / "submission" / name).write_bytes(data)
        done = subprocess.run(
            [str(self.root / "source" / "run_autograder")],
            cwd=self.root,
            env=_env(self.root, **env),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        log = done.stdout + done.stderr
        assert done.returncode == 0, log
        results = json.loads((self.root / "results" / "results.json").read_text(encoding="utf-8"))
        graded = self.root / "work" / "course" / "autograded" / "student" / A / f"{A}.ipynb"
        raw = nbformat.read(graded, as_version=4) if graded.exists() else None
        return {"results": valid(results), "log": log, "graded": raw}


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    argv = ["--course", str(harness.ROOT), "gradescope", A, "--standin", "--hidden-visibility", VISIBILITY]
    assert cli.main([*argv, "--out", str(out)]) == 0
    return out / f"{A}-gradescope.zip"


@pytest.fixture(scope="module")
def gradescope(bundle, tmp_path_factory) -> Gradescope:
    root = tmp_path_factory.mktemp("gs") / "autograder"
    _unzip(bundle, root / "source")
    if isolation_problem() is None:  # setup.sh's last step (it needs the sandbox, as grading does)
        done = subprocess.run(
            [str(harness.VENV_BIN / "python"), "-m", "autograder.gradescope", "check"],
            cwd=root,
            env=_env(root),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "the instructor's solution of a1_backprop gets 25 / 25" in done.stdout
    return Gradescope(root)


@pytest.fixture(scope="module")
def reference(gradescope):
    nb = harness.fill(_release(), harness.reference_solutions(_source()))
    return gradescope.submit({f"Copy of {A}.ipynb": _nb_bytes(nb)})


@pytest.fixture(scope="module")
def wrong(gradescope):
    solutions = harness.reference_solutions(_source())
    for mistake in MISTAKES:
        solutions.update(mistake.replace)
    return gradescope.submit({f"{A}.ipynb": _nb_bytes(harness.fill(_release(), solutions))})


# ------------------------------------------------------------------------------------------------- the bundle
def test_bundle_has_gradescopes_layout_and_only_what_it_needs(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        source = archive.read(f"course/source/{A}/{A}.ipynb")
        settings = json.loads(archive.read("gradescope.json"))
    assert {"setup.sh", "run_autograder"} <= names  # at the zip's top level
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755
    assert source == harness.source_path(A).read_bytes()
    modules = {p.relative_to(harness.ROOT).as_posix() for package in ("autograder", "cnnbook")
               for p in (harness.ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}  # fmt: skip
    for name in {"pyproject.toml", "requirements.txt", "autograder/gradescope/setup.sh",
                 "autograder/gradescope/run_autograder", *modules}:  # fmt: skip
        assert f"package/{name}" in names
    assert "course/nbgrader_config.py" in names
    courses = {n.split("/")[2] for n in names if n.startswith("course/source/")}
    assert courses == {A}, "only this assignment's source travels"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("package/tests/", "package/source/", "package/release/"))]
    assert settings == {
        "assignment": A,
        "datasets": [],
        "hidden_visibility": VISIBILITY,
        "standin": True,
        "student": "student",
        "trust_submissions": False,
    }


def test_setup_sh_is_valid_bash_and_installs_what_grading_needs(bundle, tmp_path):
    _unzip(bundle, tmp_path)
    for script in ("setup.sh", "run_autograder"):
        done = subprocess.run(["bash", "-n", str(tmp_path / script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
    setup = (tmp_path / "setup.sh").read_text()
    assert setup.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in setup
    for step in ("apt-get install", "bubblewrap", "python3 -m venv", '-m pip install --quiet -r "$SOURCE/package/'
                 "requirements.txt", '--no-deps "$SOURCE/package"', "-m autograder.gradescope check"):  # fmt: skip
        assert step in setup
    assert "cnnbook.data fetch" not in setup  # --standin: no real dataset
    assert "-m autograder.gradescope run" in (tmp_path / "run_autograder").read_text()


def test_setup_sh_fetches_the_datasets_the_assignment_loads(tmp_path):
    path, built = build_bundle(Course.open(harness.ROOT), "a4_keras_cnn", out_dir=tmp_path)
    assert path == tmp_path / "a4_keras_cnn-gradescope.zip"
    with zipfile.ZipFile(path) as archive:
        setup = archive.read("setup.sh").decode()
        settings = json.loads(archive.read("gradescope.json"))
    assert settings == built
    assert '"$PY" -m cnnbook.data fetch mnist\n' in setup
    assert "# a4_keras_cnn loads, and grades" in setup and "@" not in setup  # every placeholder filled in
    assert settings["datasets"] == ["mnist"] and not settings["standin"]
    assert settings["hidden_visibility"] == "after_published"  # the default


def test_bundle_scripts_are_package_data():
    """``pip install .`` installs the scripts the bundle is built from, beside the modules."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    pyproject = tomllib.loads((harness.ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["autograder.gradescope"]
    assert {"setup.sh", "run_autograder"} <= set(shipped)
    for name in shipped:
        assert (harness.ROOT / "autograder" / "gradescope" / name).is_file()


def test_bundled_course_keeps_its_own_gradebook(bundle, tmp_path):
    """A course whose config names a database server: the bundle's course uses gradebook.db beside its config."""
    _unzip(bundle, tmp_path)
    config = tmp_path / "course" / "nbgrader_config.py"
    text = config.read_text()
    server = 'c = get_config()\nc.CourseDirectory.db_url = "postgresql://grader@db/course"'
    config.write_text(text.replace("c = get_config()", server))
    assert Course.open(tmp_path / "course").db_url == f"sqlite:///{tmp_path / 'course' / 'gradebook.db'}"


# ------------------------------------------------------------------------------------------------ submissions
@needs_sandbox
def test_instructor_solution_gets_full_marks_on_every_test(reference):
    results = reference["results"]
    points = points_by_test()
    assert [t["name"].rsplit(" — ", 1)[-1] for t in results["tests"]] == list(points)
    for test in results["tests"]:
        grade_id = test["name"].rsplit(" — ", 1)[-1]
        assert (test["score"], test["max_score"], test["status"]) == (points[grade_id], points[grade_id], "passed")
    assert sum(t["score"] for t in results["tests"]) == sum(points.values()) == 25
    assert "score" not in results  # the tests carry it (a total would show what hidden tests hide)
    assert "graded as a1_backprop.ipynb" in results["output"]  # the file's name differed: graded, and said
    assert "checking the grading environment" not in reference["log"], "the canary should come from setup.sh"


@needs_sandbox
def test_tests_are_named_by_their_part_and_say_what_they_check(reference):
    tests = {t["name"].rsplit(" — ", 1)[-1]: t for t in reference["results"]["tests"]}
    assert tests["forward_pass_values"]["name"] == "A.1 Forward pass — forward_pass_values"
    assert tests["add_backward_matches_tape"]["name"] == "Part B: gates as code — add_backward_matches_tape"
    assert tests["forward_pass_values"]["tags"] == ["Part A"]
    assert tests["forward_pass_values"]["output"].startswith("What it checks: Checks the eight forward values")


@needs_sandbox
def test_wrong_answer_loses_exactly_its_points_on_the_named_tests(wrong):
    lost = {}
    for mistake in MISTAKES:
        for grade_id, pts in mistake.loses.items():
            lost[grade_id] = lost.get(grade_id, 0) + pts
    points = points_by_test()
    errors = {}
    for cell in wrong["graded"].cells:  # the raw autograded notebook: each failed test's exception
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                errors[cell.metadata["nbgrader"]["grade_id"]] = f"{output.ename}: {output.evalue.strip()}"
    tests = {t["name"].rsplit(" — ", 1)[-1]: t for t in wrong["results"]["tests"]}
    assert set(tests) == set(points)
    for grade_id, test in tests.items():
        expected = points[grade_id] - lost.get(grade_id, 0)
        assert test["score"] == expected, (grade_id, test)
        assert test["status"] == ("failed" if grade_id in lost else "passed"), (grade_id, test)
        if grade_id in lost:
            assert errors[grade_id] in test["output"], (grade_id, test["output"])
    assert sum(t["score"] for t in tests.values()) == 25 - sum(lost.values())


@needs_sandbox
def test_no_hidden_test_line_or_traceback_reaches_results(reference, wrong):
    secrets = secret_lines()
    assert len(secrets) > 20
    raw = nbformat.writes(wrong["graded"])  # the detector finds them where they are
    assert [line for line in secrets if line in raw]
    for run in (reference, wrong):
        text = json.dumps(run["results"], ensure_ascii=False)
        plain = "\n".join([run["results"]["output"], *(t["output"] for t in run["results"]["tests"])])
        assert not [line for line in secrets if line in text or line in plain]
        assert not [mark for mark in TRACEBACK_MARKS if mark in plain]


@needs_sandbox
def test_hidden_tests_carry_the_chosen_visibility_and_public_ones_are_visible(reference, wrong):
    hidden = hidden_ids()
    assert hidden
    for run in (reference, wrong):
        for test in run["results"]["tests"]:
            grade_id = test["name"].rsplit(" — ", 1)[-1]
            assert test["visibility"] == (VISIBILITY if grade_id in hidden else "visible"), test
        assert "after the due date" in run["results"]["output"]
        assert run["results"]["stdout_visibility"] == "hidden"


def test_empty_submission_gets_zero_and_says_what_to_upload(gradescope):
    results = gradescope.submit({})["results"]
    assert results["score"] == 0 and results["tests"] == []
    assert "No notebook" in results["output"] and f"{A}.ipynb" in results["output"]
    assert "File > Download > Download .ipynb" in results["output"]


def test_several_notebooks_get_zero_and_are_named(gradescope):
    data = _nb_bytes(_release())
    results = gradescope.submit({f"{A}.ipynb": data, "draft/old.ipynb": data, "notes.txt": b"x"})["results"]
    assert results["score"] == 0 and results["tests"] == []
    assert "2 notebooks" in results["output"] and "draft/old.ipynb" in results["output"]
    assert "exactly one" in results["output"]


@needs_sandbox
def test_unreadable_notebook_gets_zero_with_the_reason_and_what_to_do(gradescope):
    run = gradescope.submit({f"{A}.ipynb": b'{"cells": ['})
    results = run["results"]
    assert results["score"] == 0 and results["tests"] == []
    assert "could not be graded" in results["output"]
    assert "is not valid JSON" in results["output"]
    assert "download your notebook again" in results["output"]
    assert "student's notebook" not in results["output"] and "ask the student" not in results["output"]
    assert str(gradescope.root) not in results["output"]


def test_without_the_sandbox_nothing_is_graded_and_the_student_is_told(gradescope):
    """bubblewrap missing (as in a container that forbids namespaces): the default bundle refuses to grade."""
    nb = harness.fill(_release(), harness.reference_solutions(_source()))
    run = gradescope.submit({f"{A}.ipynb": _nb_bytes(nb)}, AUTOGRADER_BWRAP=str(gradescope.root / "no-bwrap"))
    assert run["results"]["score"] == 0 and run["results"]["tests"] == []
    assert "problem on the grading side" in run["results"]["output"]
    assert "cannot be isolated" in run["log"]  # the reason, for the instructor (stdout)
    assert run["graded"] is None
    assert stat.S_IMODE(os.stat(gradescope.root / "source" / "run_autograder").st_mode) == 0o755
