"""``autograder grade`` end to end on a class of a1_backprop submissions: honest ones and every kind of breakage.

One course is graded once with two workers (the ``graded`` fixture); the tests read its records and gradebook. The
same submissions are graded again by a run killed with SIGKILL half-way and restarted; both must agree exactly.
Grading uses the stand-in datasets explicitly (``--standin``), as CI must.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from autograder import cli, grading
from autograder.course import Course
from tests import assignment_harness as harness
from tests.wrong_answers.a1_backprop import WRONG_ANSWERS

A = "a1_backprop"
FULL = 25.0
CELL_TIMEOUT = 25
DUE = datetime.datetime(2026, 10, 1, 23, 59, tzinfo=datetime.timezone.utc)


# -------------------------------------------------------------------------------------------- submissions
def _release():
    return harness.read(harness.release_path(A))


def _reference():
    return harness.fill(_release(), harness.reference_solutions(harness.read(harness.source_path(A))))


def _index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if harness.nbgrader_meta(c).get("grade_id") == grade_id)


def _append_to(nb, grade_id, code):
    cell = nb.cells[_index(nb, grade_id)]
    cell.source += "\n" + code
    return nb


def _bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def _duplicated_solution():
    nb = _reference()
    i = _index(nb, "forward_pass_code")
    wrong = copy.deepcopy(nb.cells[i])
    wrong.id = "forward-pass-copy"
    wrong.source = WRONG_ANSWERS[0].replace.get("forward_pass_code", "t0 = 0")
    nb.cells.insert(i, wrong)  # a wrong copy first, the right one last
    return nb


def _duplicated_test():
    nb = _reference()
    i = _index(nb, "forward_pass_values")
    twin = copy.deepcopy(nb.cells[i])
    twin.id = "test-forward-pass-copy"
    nb.cells.insert(i + 1, twin)
    return nb


def _deleted(nb, grade_id):
    del nb.cells[_index(nb, grade_id)]
    return nb


def _solution_moved_to_plain_cell():
    nb = _reference()
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
    nb = _reference()
    harness.nbgrader_meta(nb.cells[_index(nb, "forward_pass_values")])["points"] = 100
    return nb


def _test_switched_off():
    nb = _release()
    cell = nb.cells[_index(nb, "forward_pass_values")]
    cell.metadata.nbgrader.update(grade=False, locked=False, points=0)
    cell.source = "pass  # no test here"
    return nb


def _fake_graded_cell():
    nb = _reference()
    meta = {"grade": True, "grade_id": "bonus_points", "locked": True, "points": 50, "solution": False,
            "schema_version": 3}  # fmt: skip
    nb.cells.append(nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": meta}))
    return nb


def _old_format():
    return nbformat.writes(nbformat.convert(_reference(), 3), version=3).encode()


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
    ref = _bytes(_reference())
    died = _append_to(_reference(), "small_graph_backward_code", "import os\nos._exit(1)")
    sleeps = _append_to(_reference(), "relative_error_code", "import time\ntime.sleep(3600)")
    noisy = _append_to(_reference(), "forward_pass_code", NOISE)
    plots = _append_to(_reference(), "add_backward_code", PLOTS_AND_WIDGETS)
    restored = "restored the nbgrader metadata"
    name = A + ".ipynb"
    cases = {
        "honest_full": (ref, "graded", FULL, []),
        "honest_blank": (_bytes(_release()), "graded", 0.0, []),
        "honest_wrong": (
            _bytes(harness.fill(_release(), {**solutions, **wrong.replace})),
            "graded",
            FULL - sum(wrong.loses.values()),
            [],
        ),
        "late_full": (ref, "graded", FULL, []),
        "truncated_json": (ref[: len(ref) // 2], "failed", None, ["not valid JSON", "download"]),
        "empty_file": (b"", "failed", None, ["is empty"]),
        "not_a_notebook": (b'{"answer": 42}', "failed", None, ["not a Jupyter notebook"]),
        "old_format": (_old_format(), "graded", FULL, ["converted from notebook format 3"]),
        "duplicated_solution": (_bytes(_duplicated_solution()), "graded", FULL, ["appeared 2 times"]),
        "duplicated_test": (_bytes(_duplicated_test()), "graded", FULL, ["appeared 2 times"]),
        "deleted_test": (
            _bytes(_deleted(_reference(), "backward_pass_values")),
            "graded",
            FULL,
            ["'backward_pass_values' was missing"],
        ),
        "deleted_test_blank": (
            _bytes(_deleted(_release(), "forward_pass_values")),
            "graded",
            0.0,
            ["'forward_pass_values' was missing"],
        ),
        "solution_in_plain_cell": (
            _bytes(_solution_moved_to_plain_cell()),
            "graded",
            FULL,
            ["'add_backward_code' was missing"],
        ),
        "retyped_test": (
            _bytes(_retyped(_reference(), "add_backward_matches_tape")),
            "graded",
            FULL,
            ["changed to markdown"],
        ),
        "retyped_solution": (
            _bytes(_retyped(_reference(), "multiply_backward_code")),
            "graded",
            FULL,
            ["changed to markdown"],
        ),
        "tampered_points": (_bytes(_tampered_points()), "graded", FULL, [restored]),
        "test_switched_off": (_bytes(_test_switched_off()), "graded", 0.0, [restored]),
        "fake_graded_cell": (_bytes(_fake_graded_cell()), "graded", FULL, ["'bonus_points'"]),
        # the student's process ends in the last solution cell: what was graded before counts, the last test fails
        "kernel_dies": (
            _bytes(died),
            "graded",
            FULL - 3,
            ["The sandbox stopped", "ended by itself (exit status 1)"],
        ),
        "cell_timeout": (_bytes(sleeps), "graded", FULL, [f"per-cell limit of {CELL_TIMEOUT} s"]),
        "stderr_noise": (_bytes(noisy), "graded", FULL, []),
        "plots_and_widgets": (_bytes(plots), "graded", FULL, []),
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


def grade(course: pathlib.Path, *args: str) -> int:
    return cli.main(["--course", str(course), "grade", A, "--standin", *args])


def gradebook_scores(course: pathlib.Path) -> dict[str, tuple[float, float, float]]:
    """student -> (score, max score, seconds late) from the course gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student.id: (s.score, s.max_score, s.total_seconds_late) for s in gb.assignment_submissions(A)}


def outcomes(course: pathlib.Path) -> dict[str, tuple[str, float | None]]:
    records = grading.records(Course.open(course), A)
    return {s: (r.status, r.score if r.status == "graded" else None) for s, r in records.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The corpus graded with two workers, the due date set in the gradebook first (for late_full)."""
    from nbgrader.api import Gradebook

    course = make_course(tmp_path_factory.mktemp("parallel"))
    os.environ["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(A, duedate=DUE.replace(tzinfo=None))
    start = time.monotonic()
    status = grade(course, "--workers", "2")
    return course, status, time.monotonic() - start


# ------------------------------------------------------------------------------------------------ outcomes
def test_the_batch_finishes_whatever_the_submissions_do(graded):
    course, status, _ = graded
    assert status == 0
    assert set(grading.records(Course.open(course), A)) == set(corpus())


@pytest.mark.parametrize("student", list(corpus()))
def test_each_submission_gets_its_expected_status_and_score(graded, student):
    course, _, _ = graded
    _name, _data, status, score, words = corpus()[student]
    record = grading.Result.load(course / ".autograder" / A / "records" / f"{student}.json")
    said = " ".join([record.reason, *record.repairs, *record.notes])
    assert record.status == status, said
    for word in words:
        assert word in said, f"{student}: {word!r} not in {said!r}"
    book = gradebook_scores(course)
    if status == "graded":
        assert record.score == score and record.max_score == FULL, said
        assert book[student][:2] == (score, FULL), "the gradebook must hold the same score"
        assert (course / "autograded" / student / A / f"{A}.ipynb").exists()
    else:
        assert record.reason and student not in book, "a failed submission gets no grade in the gradebook"


def test_honest_submissions_need_no_repair(graded):
    course, _, _ = graded
    for student in ("honest_full", "honest_blank", "honest_wrong", "stderr_noise", "plots_and_widgets"):
        record = grading.Result.load(course / ".autograder" / A / "records" / f"{student}.json")
        assert record.repairs == [], (student, record.repairs)


def test_lateness_comes_from_the_timestamp_and_the_due_date(graded):
    course, _, _ = graded
    book = gradebook_scores(course)
    assert book["late_full"][2] == pytest.approx(2 * 86400)
    assert book["honest_full"][2] == 0


def test_the_instructor_solution_was_graded_first_with_full_marks(graded):
    course, _, _ = graded
    canary = grading.Result.load(course / ".autograder" / A / "canary.json")
    assert canary.status == "graded" and canary.score == canary.max_score == FULL


def test_no_grading_process_outlives_the_batch(graded):
    course, _, _ = graded
    assert _processes_in(course) == []


def _wait_until_gone(folder: pathlib.Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while _processes_in(folder) and time.monotonic() < deadline:
        time.sleep(0.2)


def _processes_in(folder: pathlib.Path) -> list[int]:
    """pids of processes whose working directory or command line is inside ``folder``."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(int(proc.name))
    return found


# -------------------------------------------------------------------------------------- re-runs are cheap
def test_a_rerun_grades_nothing_unchanged_and_only_what_changed(graded, capsys):
    course, _, _ = graded
    before = {p.name: p.read_bytes() for p in (course / ".autograder" / A / "records").iterdir()}
    capsys.readouterr()
    assert grade(course, "--workers", "2") == 0
    said = capsys.readouterr()
    assert "grading 0 submission(s)" in said.err
    assert "failed before and are unchanged" in said.err
    after = {p.name: p.read_bytes() for p in (course / ".autograder" / A / "records").iterdir()}
    assert after == before, "an unchanged submission must not be graded again"

    # honest_blank resubmits with the reference solution: only that one is graded.
    (course / "submitted" / "honest_blank" / A / f"{A}.ipynb").write_bytes(_bytes(_reference()))
    assert grade(course, "--workers", "2") == 0
    assert "grading 1 submission(s)" in capsys.readouterr().err
    assert outcomes(course)["honest_blank"] == ("graded", FULL)
    assert gradebook_scores(course)["honest_blank"][0] == FULL
    for name, data in before.items():
        if name != "honest_blank.json":
            assert (course / ".autograder" / A / "records" / name).read_bytes() == data


# ------------------------------------------------------------------------------ gradebook = records = killed
def test_the_gradebook_holds_exactly_the_recorded_scores(graded):
    """What the course gradebook says (nbgrader's own totals) is what the records say, submission by submission.
    (The expected score of each submission is checked above; parallel and one-worker grading were compared here
    until every grading became a task of one cluster, local or remote: tests/test_cluster.py.)"""
    course, _, _ = graded
    recorded = outcomes(course)
    book = gradebook_scores(course)
    assert set(book) == {s for s, (status, _score) in recorded.items() if status == "graded"}
    for student, (score, top, _late) in book.items():
        assert (score, top) == (recorded[student][1], FULL), student


def test_a_run_killed_half_way_resumes_and_grades_each_submission_once(tmp_path):
    fast = {s: v for s, v in corpus().items() if s not in ("cell_timeout", "kernel_dies")}
    course = make_course(tmp_path / "killed", fast)
    command = [sys.executable, "-m", "autograder", "--course", str(course), "grade", A, "--standin",
               "--workers", "2", "--no-canary"]  # fmt: skip
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = course / ".autograder" / A / "records"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < len(fast) // 2:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert 0 < len(done_before) < len(fast)
    _wait_until_gone(course)  # its nbgrader processes and kernels die with it
    assert _processes_in(course) == [], "grading processes outlived the killed run"

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert f"grading {len(fast) - len(done_before)} submission(s)" in result.stderr
    after = {p.name: p.read_bytes() for p in records.glob("*.json")}
    assert set(after) == {f"{s}.json" for s in fast}
    for name, data in done_before.items():
        assert after[name] == data, f"{name} was graded twice"
    expected = {s: (status, score) for s, (_n, _d, status, score, _w) in fast.items()}
    assert outcomes(course) == expected
    book = gradebook_scores(course)
    assert set(book) == {s for s, (_n, _d, status, *_r) in fast.items() if status == "graded"}
    assert not (course / ".autograder" / A / "work").exists() or not any(
        (course / ".autograder" / A / "work").iterdir()
    )


# ------------------------------------------------------------------------------------- limits and refusals
def test_a_submission_over_its_time_limit_is_stopped_and_reported(tmp_path, capsys):
    endless = _append_to(_reference(), "forward_pass_code", "import time\nwhile True:\n    time.sleep(0.1)")
    course = make_course(tmp_path / "slow", {"endless": (A + ".ipynb", _bytes(endless), "failed", None, [])})
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("c.Execute.timeout = 600\nc.Autograder.submission_timeout = 20\n")
    start = time.monotonic()
    assert grade(course, "--no-canary") == 0
    assert time.monotonic() - start < 120
    record = grading.Result.load(course / ".autograder" / A / "records" / "endless.json")
    assert record.status == "failed" and "longer than the limit of 20 s" in record.reason
    _wait_until_gone(course)
    assert _processes_in(course) == [], "the kernel of a stopped submission must be killed with it"


def test_strict_data_refuses_a_batch_whose_dataset_is_missing(tmp_path, capsys):
    """Under strict data (the default) a4 needs real MNIST, which this machine cannot download: the instructor's
    solution loses points, so the batch is refused before any student is graded."""
    folder = tmp_path / "strict"
    folder.mkdir()
    shutil.copy(harness.ROOT / "nbgrader_config.py", folder)
    shutil.copytree(harness.ROOT / "source" / "a4_keras_cnn", folder / "source" / "a4_keras_cnn")
    (folder / "submitted" / "someone" / "a4_keras_cnn").mkdir(parents=True)
    shutil.copy(harness.release_path("a4_keras_cnn"), folder / "submitted" / "someone" / "a4_keras_cnn")
    keras_home = tmp_path / "empty-keras-home"
    saved = {k: os.environ.get(k) for k in ("KERAS_HOME", "HTTPS_PROXY", "https_proxy")}
    # No cached MNIST and no way to download it, whatever this machine has.
    os.environ.update(
        KERAS_HOME=str(keras_home), HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9"
    )
    try:
        status = cli.main(["--course", str(folder), "grade", "a4_keras_cnn"])
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    said = capsys.readouterr().err
    assert status == 2
    assert "the instructor's solution of a4_keras_cnn gets" in said and "nothing was graded" in said
    assert "--standin" in said
    assert not (folder / ".autograder" / "a4_keras_cnn" / "records").exists()


def test_clear_errors_for_a_wrong_command(tmp_path, capsys):
    assert cli.main(["--course", str(tmp_path), "grade", A]) == 2
    assert "no nbgrader_config.py" in capsys.readouterr().err
    course = make_course(tmp_path / "empty", {})
    assert grade(course) == 2
    assert "autograder collect a1_backprop" in capsys.readouterr().err
    assert cli.main(["--course", str(course), "grade", "a9_nothing"]) == 2
    assert "a1_backprop" in capsys.readouterr().err
    assert grade(course, "--student", "nobody") == 2
    assert "nobody" in capsys.readouterr().err


def test_records_are_json_a_person_can_read(graded):
    course, _, _ = graded
    data = json.loads((course / ".autograder" / A / "records" / "honest_wrong.json").read_text())
    assert data["status"] == "graded" and set(data["points"]) == set(data["scores"])
