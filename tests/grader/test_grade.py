"""``autograder grade`` end to end on a class of a1_backprop submissions: honest ones and every kind of breakage.

One course is graded once with two workers (the ``graded`` fixture); the tests read its records and gradebook. The
same submissions are graded again by a run killed with SIGKILL half-way and restarted; both must agree exactly.
Grading uses the stand-in datasets explicitly (``--standin``), as CI must.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from autograder import cli, grading
from autograder.course import Course
from tests.support import harness
from tests.support.a1_course import (
    DUE,
    FULL,
    A,
    append_to,
    as_bytes,
    corpus,
    gradebook_scores,
    make_course,
    reference,
)


def grade(course: pathlib.Path, *args: str) -> int:
    return cli.main(["--course", str(course), "grade", A, "--standin", *args])


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
    record = grading.Record.load(course / ".autograder" / A / "records" / f"{student}.json")
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
        record = grading.Record.load(course / ".autograder" / A / "records" / f"{student}.json")
        assert record.repairs == [], (student, record.repairs)


def test_lateness_comes_from_the_timestamp_and_the_due_date(graded):
    course, _, _ = graded
    book = gradebook_scores(course)
    assert book["late_full"][2] == pytest.approx(2 * 86400)
    assert book["honest_full"][2] == 0


def test_the_instructor_solution_was_graded_first_with_full_marks(graded):
    course, _, _ = graded
    canary = grading.Record.load(course / ".autograder" / A / "canary.json")
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
    (course / "submitted" / "honest_blank" / A / f"{A}.ipynb").write_bytes(as_bytes(reference()))
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
    endless = append_to(reference(), "forward_pass_code", "import time\nwhile True:\n    time.sleep(0.1)")
    course = make_course(tmp_path / "slow", {"endless": (A + ".ipynb", as_bytes(endless), "failed", None, [])})
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("c.Execute.timeout = 600\nc.Autograder.submission_timeout = 20\n")
    start = time.monotonic()
    assert grade(course, "--no-canary") == 0
    assert time.monotonic() - start < 120
    record = grading.Record.load(course / ".autograder" / A / "records" / "endless.json")
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


# --------------------------------------------------------------------------------- the report and Ctrl-C
def _report_rows(printed: str) -> dict[str, list[str]]:
    """The rows of the per-student table `autograder grade` prints: student -> its five cells."""
    rows = {}
    for line in printed.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 5 and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_the_report_lists_every_submission_with_its_score_status_and_lateness(tmp_path, capsys, monkeypatch):
    """The end of `autograder grade`: one row per student (score, status, how late and who says so, reason)."""
    from nbgrader.api import Gradebook
    from rich.console import Console

    from autograder.intake import Intake

    monkeypatch.setattr(cli, "out", Console(width=250, highlight=False))  # no cell wrapped

    every = corpus()
    chosen = ("honest_full", "late_full", "truncated_json")
    course = make_course(tmp_path / "report", {s: every[s] for s in chosen})
    os.environ["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(A, duedate=DUE.replace(tzinfo=None))
    Intake("honest_full", A, "collected", file=f"honestfull_LATE_7_9_{A}.ipynb", lms="canvas", lms_late=True).save(
        Course.open(course)
    )
    capsys.readouterr()
    assert grade(course, "--workers", "2", "--no-canary") == 0
    printed = capsys.readouterr().out
    rows = _report_rows(printed)
    assert "a1_backprop: each submission" in printed
    assert rows["student"] == ["student", "status", "score", "late", "reason and notes"]
    assert rows["honest_full"][1:4] == ["graded", "25/25", "marked late by the LMS"]
    assert rows["late_full"][1:4] == ["graded", "25/25", "2 d 0 h after the due date"]
    assert rows["truncated_json"][1:3] == ["failed", "-"] and "not valid JSON" in rows["truncated_json"][4]

    assert grade(course, "--workers", "2", "--no-canary") == 0  # nothing changed: the same rows, marked so
    again = _report_rows(capsys.readouterr().out)
    assert again["honest_full"][1:4] == ["graded (unchanged)", "25/25", "marked late by the LMS"]
    assert again["truncated_json"][1] == "failed (unchanged)"


def test_ctrl_c_stops_grading_quietly_and_keeps_what_finished(tmp_path):
    every = corpus()
    course = make_course(tmp_path / "interrupted", {s: every[s] for s in ("honest_blank", "honest_full")})
    command = [sys.executable, "-m", "autograder", "--course", str(course), "grade", A, "--standin",
               "--workers", "1", "--no-canary"]  # fmt: skip
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = course / ".autograder" / A / "records"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not list(records.glob("*.json")):
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends
    out, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    said = err[err.index("[1/2]") :]
    lines = [line for line in said.splitlines() if line.strip()]
    assert lines[1:] == ["interrupted: what finished is saved; run the same command again to go on"], said
    assert "Traceback" not in err and "distributed" not in err and not out.strip()
    done = grading.records(Course.open(course), A)
    assert len(done) == 1 and next(iter(done.values())).status == "graded"
    _wait_until_gone(course)
    assert _processes_in(course) == [], "grading processes outlived the interrupted run"
