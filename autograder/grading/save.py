"""Writing one finished submission into the course: its autograded folder, its gradebook rows (one transaction;
manual grades untouched), its log and its record. Only the grading command's main thread calls it."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import shutil
import time
import uuid
import warnings

from sqlalchemy.exc import SAWarning

from ..course import Course, CourseError
from ..records import GRADED, record_path
from .job import JobOutput

RETRIES = 8  # attempts of one gradebook transaction that another grader's transaction got in the way of


def retrying(what: str, attempt):
    """Run ``attempt()`` again when the database refused it because another writer got there first (a row
    created at the same moment, a lock, a serialization failure); raise after RETRIES attempts."""
    from nbgrader.api import InvalidEntry  # nbgrader's word for a refused insert (a row that already exists)
    from sqlalchemy.exc import IntegrityError, OperationalError

    for n in range(RETRIES):
        try:
            return attempt()
        except (IntegrityError, OperationalError, InvalidEntry) as err:
            if n == RETRIES - 1:
                raise CourseError(
                    f"the gradebook refused {what} {RETRIES} times ({type(err).__name__}: {err}); "
                    "is another program holding it? Run the same command again: what finished is saved."
                ) from err
            time.sleep(0.2 * (n + 1))


def write_gradebook(course: Course, outcome: JobOutput) -> list[str]:
    """One transaction: this submission's automatic scores, comments, timestamp and late penalty. Manual grades
    are never overwritten. Returns the grade ids whose manual grades were kept."""
    from nbgrader.api import MissingEntry
    from nbgrader.utils import parse_utc

    result = outcome.record
    assignment, student = result.assignment, result.student
    with course.gradebook() as gradebook, warnings.catch_warnings():
        # nbgrader's add_submission makes SQLAlchemy warn about its autoflush order; the rows are right.
        warnings.simplefilter("ignore", SAWarning)
        try:
            gradebook.update_or_create_student(student)
            try:
                submitted = gradebook.find_submission(assignment, student)
            except MissingEntry:
                submitted = gradebook.add_submission(assignment, student)
            submitted.timestamp = parse_utc(outcome.timestamp) if outcome.timestamp else None
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            kept = []
            for grade in notebook.grades:
                score, needs_manual = outcome.grades.get(grade.name, (None, True))
                grade.auto_score = score
                if grade.manual_score is not None:
                    kept.append(grade.name)
                    grade.needs_manual_grade = False
                else:
                    grade.needs_manual_grade = bool(needs_manual)
            for comment in notebook.comments:
                comment.auto_comment = outcome.comments.get(comment.name)
            notebook.late_submission_penalty = outcome.penalty
            gradebook.db.commit()
        except BaseException:
            gradebook.db.rollback()
            raise
    return kept


def swap_in(staged: pathlib.Path, target: pathlib.Path) -> None:
    """Replace the folder ``target`` by ``staged``; a reader sees the old folder or the new one, and another
    grading command swapping in the same student's folder at the same moment makes this one try again."""
    for _ in range(RETRIES):
        old = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, old)
        try:
            os.replace(staged, target)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    raise CourseError(f"could not replace {target}: another program keeps writing it")


def save(course: Course, outcome: JobOutput) -> None:
    """Write one finished submission into the course: autograded notebook, gradebook (one transaction; manual
    grades untouched), then its record. Called from the grading command's main thread only; several grading
    commands may write one course gradebook at once (PostgreSQL, or SQLite's own locking)."""
    result = outcome.record
    assignment, student = result.assignment, result.student
    clock = time.monotonic()
    if result.status == GRADED:
        target = course.autograded(student, assignment)
        staged = target.with_name(f".{assignment}.{os.getpid()}.new")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name, data in outcome.files.items():
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            (staged / name).write_bytes(data)
        swap_in(staged, target)
        kept = retrying(f"the grades of {student}", lambda: write_gradebook(course, outcome))
        if kept:
            result.notes.append(f"kept the manual grades of {', '.join(kept)}")
    if outcome.log:
        logs = course.state(assignment) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{student}.log").write_text(outcome.log, encoding="utf-8")
    result.stages["course_write"] = round(time.monotonic() - clock, 3)  # all but the record itself
    result.save(record_path(course, assignment, student))
