"""Grading at scale: a real Dask cluster (scheduler and workers as separate processes) and a real PostgreSQL
gradebook, written by two grading commands at once.

Two ``autograder grade --scheduler ADDRESS --db postgresql://...`` commands run at the same time on overlapping
sets of students (as two teaching assistants might), through one cluster of two workers. Afterwards the gradebook
must hold each student's submission exactly once, with exactly the scores the submissions earn, and both workers
must have graded some of them. The local path (no --scheduler: a local cluster) is what tests/test_grade.py runs.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys

import pytest
import sqlalchemy

from autograder import cli, grading
from autograder.course import Course
from tests.support import a1_course as tg
from tests.support import services

A = tg.A
STUDENTS = [
    "honest_full",
    "honest_blank",
    "honest_wrong",
    "late_full",
    "truncated_json",
    "renamed_file",
    "duplicated_solution",
    "retyped_test",
]
FIRST, SECOND = STUDENTS[:6], STUDENTS[2:]  # four students in both


def _command(course: pathlib.Path, db: str, scheduler: str, students: list[str], *extra: str) -> list[str]:
    picked = [arg for student in students for arg in ("--student", student)]
    return [sys.executable, "-m", "autograder", "--course", str(course), "--db", db, "grade", A, "--standin",
            "--scheduler", scheduler, *picked, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    corpus = tg.corpus()
    course = tg.make_course(tmp_path_factory.mktemp("cluster"), {s: corpus[s] for s in STUDENTS})
    os.environ["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # alembic
    env = dict(os.environ)
    with services.postgres() as db, services.dask_cluster(2) as (scheduler, workers):
        from nbgrader.api import Gradebook

        with Gradebook(db) as gradebook:  # the due date, for late_full
            gradebook.update_or_create_assignment(A, duedate=tg.DUE.replace(tzinfo=None))
        first = subprocess.Popen(
            _command(course, db, scheduler, FIRST),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        second = subprocess.Popen(
            _command(course, db, scheduler, SECOND, "--no-canary"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs = [(p.wait(timeout=1200), *p.communicate()) for p in (first, second)]
        rows = _rows(db)
        scores = _scores(db)
        yield course, db, workers, runs, rows, scores


def _rows(db: str) -> dict[str, list]:
    """The gradebook's rows that matter here, read with plain SQL (not through nbgrader's API)."""
    engine = sqlalchemy.create_engine(db)
    with engine.connect() as connection:

        def query(sql, **params):
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql), params)]

        out = {
            "students": query("SELECT id FROM student ORDER BY id"),
            "submissions": query(
                "SELECT s.student_id, count(*) FROM submitted_assignment s JOIN assignment a "
                "ON s.assignment_id = a.id WHERE a.name = :a GROUP BY s.student_id",
                a=A,
            ),
            "grades": query(
                "SELECT s.student_id, count(g.id), count(DISTINCT g.cell_id) FROM grade g "
                "JOIN submitted_notebook n ON g.notebook_id = n.id "
                "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
            ),
            "assignments": query("SELECT name FROM assignment"),
        }
    engine.dispose()
    return out


def _scores(db: str) -> dict[str, tuple[float, float, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(db) as gradebook:
        return {
            s.student.id: (s.score, s.max_score, s.total_seconds_late) for s in gradebook.assignment_submissions(A)
        }


def test_both_commands_finish(graded):
    _course, _db, _workers, runs, _rows, _scores = graded
    for status, stdout, stderr in runs:
        assert status == 0, stdout + stderr
        assert "grading on the Dask cluster at tcp://127.0.0.1:" in stderr
        assert "2 worker(s), 2 thread(s)" in stderr


def test_every_submission_is_in_the_gradebook_exactly_once(graded):
    _course, _db, _workers, _runs, rows, _scores = graded
    corpus = tg.corpus()
    graded_ok = sorted(s for s in STUDENTS if corpus[s][2] == "graded")
    assert rows["assignments"] == [(A,)]
    assert rows["submissions"] and sorted(rows["submissions"]) == [(s, 1) for s in graded_ok]
    assert [s for (s,) in rows["students"]] == graded_ok
    graded_cells = sum(1 for c in tg.reference().cells if tg.harness.nbgrader_meta(c).get("grade"))
    for student, count, distinct in rows["grades"]:
        assert (count, distinct) == (graded_cells, graded_cells), student


def test_scores_are_exactly_what_the_submissions_earn(graded):
    course, _db, _workers, _runs, _rows, scores = graded
    corpus = tg.corpus()
    records = grading.records(Course.open(course), A)
    assert sorted(records) == sorted(STUDENTS)
    for student in STUDENTS:
        _name, _data, status, score, words = corpus[student]
        record = records[student]
        assert (record.status, record.score if status == "graded" else None) == (status, score), student
        for word in words:
            assert word in " ".join([record.reason, *record.repairs, *record.notes]), (student, word)
        if status == "graded":
            assert scores[student][:2] == (score, tg.FULL), student
    late = scores["late_full"][2]
    assert late == pytest.approx(datetime.timedelta(days=2).total_seconds(), abs=1)
    assert scores["honest_full"][2] == 0


def test_both_workers_graded_and_the_course_was_never_on_them(graded):
    course, _db, workers, _runs, _rows, _scores = graded
    records = grading.records(Course.open(course), A)
    used = {record.worker.split()[-1] for record in records.values() if record.status == "graded"}
    assert used == set(workers), used
    # The workers graded in their own temporary folders: nothing of theirs is left in the course.
    work = course / ".autograder" / A / "work"
    assert not work.exists() or not any(p for p in work.iterdir() if not p.name.endswith(".lock"))


def test_a_scheduler_that_does_not_answer_is_a_clear_error(tmp_path, capsys):
    corpus = tg.corpus()
    course = tg.make_course(tmp_path / "nobody", {"honest_full": corpus["honest_full"]})
    port = services.free_port()
    status = cli.main(["--course", str(course), "grade", A, "--standin", "--scheduler", f"tcp://127.0.0.1:{port}"])
    said = capsys.readouterr().err
    assert status == 2
    assert "no Dask scheduler answers" in said and "leave out --scheduler" in said
    assert not (course / ".autograder" / A / "records").exists()


def test_a_database_url_that_is_not_one_is_a_clear_error(tmp_path, capsys):
    course = tg.make_course(tmp_path / "baddb", {})
    assert cli.main(["--course", str(course), "--db", "gradebook.db", "export"]) == 2
    assert "is not a database URL" in capsys.readouterr().err


WRITER = """
import json, random, sys
from autograder import grading
from autograder.course import Course

course_dir, db, seed, points = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
course = Course.open(course_dir, db_url=db)
students = [f"crowd{n:02d}" for n in range(12)]
random.Random(seed).shuffle(students)
for student in students:
    result = grading.Record(student, "%s", grading.GRADED, points=points)
    grades = {gid: (float(n %% 2) * pts, False) for n, (gid, pts) in enumerate(sorted(points.items()))}
    files = {"%s.ipynb": json.dumps({"written by": seed}).encode()}
    grading.save(course, grading.JobOutput(result, files=files, grades=grades, timestamp=None))
"""


def test_many_writers_at_once_lose_and_duplicate_nothing(graded):
    """Six processes write the same twelve new students' grades at the same moment, in different orders: every
    row exists once, and the scores are the ones written (the database's unique rows and the grader's retries)."""
    course, db, *_ = graded
    points = grading.records(Course.open(course), A)["honest_full"].points
    script = WRITER % (A, A)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(course), db, str(seed), json.dumps(points)],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in range(6)
    ]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    rows = _rows(db)
    crowd = sorted((s, n) for s, n in rows["submissions"] if s.startswith("crowd"))
    assert crowd == [(f"crowd{n:02d}", 1) for n in range(12)]
    for student, count, distinct in rows["grades"]:
        assert count == distinct == len(points), student
    expected = sum(float(n % 2) * pts for n, (_gid, pts) in enumerate(sorted(points.items())))
    scores = _scores(db)
    assert {scores[f"crowd{n:02d}"][0] for n in range(12)} == {expected}
    for n in range(12):  # one writer's complete folder, nothing half-written or left aside
        folder = course / "autograded" / f"crowd{n:02d}"
        assert sorted(p.name for p in folder.iterdir()) == [A]
        assert json.loads((folder / A / f"{A}.ipynb").read_text())["written by"] in range(6)
