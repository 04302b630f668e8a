"""A batch: which students to grade, their jobs on the cluster, each saved as it finishes.

Ctrl-C (SIGINT) while grading: ``on_interrupt``, installed by ``interruptible`` around a grading command, raises
``KeyboardInterrupt`` at once, except while a finished submission is being saved, which is completed first; the
batch also stops at the next submission if a library on the way swallowed the exception.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import threading
import time
import uuid

from ..course import Course
from ..records import FAILED, Record, record_path
from .cluster import Cluster
from .job import JobOutput, fingerprint, job_for
from .prepare import GradingSetup
from .save import save


def plan(course: Course, setup: GradingSetup, students: list[str], force: bool, retry_failed: bool):
    """Which students to grade now: (to grade, unchanged and graded, unchanged and failed)."""
    todo, skipped, failed_earlier = [], [], []
    for student in students:
        old = Record.load(record_path(course, setup.assignment, student))
        unchanged = old is not None and old.fingerprint == fingerprint(course, setup, student)
        if force or not unchanged:
            todo.append(student)
        elif old.status == FAILED and not retry_failed:
            failed_earlier.append(student)
        elif old.status == FAILED:
            todo.append(student)
        else:
            skipped.append(student)
    return todo, skipped, failed_earlier


def grade_batch(course: Course, setup: GradingSetup, students: list[str], cluster: Cluster, progress):
    """Grade ``students`` on the cluster (which has been sent the setup); save each as it finishes, here, in this
    process's main thread, and call ``progress(record)``."""
    results: list[Record] = []
    with scratch_space(course, setup.assignment) as scratch:
        _grade_all(course, setup, students, progress, cluster, str(scratch), results)
    return results


@contextlib.contextmanager
def scratch_space(course: Course, assignment: str):
    """This grading command's scratch folder under ``.autograder/<a>/work/``, locked while it runs. Folders of
    commands that are gone (killed) are removed; those of commands still running are left alone."""
    work = course.state(assignment) / "work"
    work.mkdir(parents=True, exist_ok=True)
    for lock in work.glob("run-*.lock"):
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running command's
            shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
            lock.unlink(missing_ok=True)
    lock = work / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        folder = lock.with_suffix("")
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- Ctrl-C
_INTERRUPT = {"asked": False, "saving": False}


def on_interrupt(signum, frame) -> None:
    """SIGINT's handler while grading: ``KeyboardInterrupt``, held back while a submission is being saved."""
    _INTERRUPT["asked"] = True
    logging.disable(logging.CRITICAL)  # the cluster's shutdown would log every task it cancels
    if not _INTERRUPT["saving"]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible():
    """Around a grading command, cluster included: Ctrl-C stops it between two saved submissions, and the
    cluster's shutdown says nothing about the tasks it cancels (``cli.main`` says what to do next). Only the main
    thread takes signals: called elsewhere, Python's own handling stays."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if main else None
    _INTERRUPT.update(asked=False, saving=False)
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        if _INTERRUPT["asked"]:
            logging.disable(logging.NOTSET)


def _save(course: Course, outcome: JobOutput) -> None:
    _INTERRUPT["saving"] = True
    try:
        save(course, outcome)
    finally:
        _INTERRUPT["saving"] = False


def _finished(futures):
    """The futures as they finish; stops (KeyboardInterrupt) when Ctrl-C was pressed, even if it was swallowed."""
    from distributed import as_completed

    pending = as_completed(futures)
    while not pending.is_empty():
        done = pending.next_batch(block=False)
        if _INTERRUPT["asked"]:
            raise KeyboardInterrupt
        if not done:
            time.sleep(0.1)
        yield from done


def _grade_all(course, setup, students, progress, cluster, scratch, results) -> None:
    futures = {}
    for student in students:
        job = job_for(course, setup, cluster.kit, student)
        if isinstance(job, Record):
            _save(course, JobOutput(job))
            results.append(job)
            progress(job)
            continue
        job.scratch = scratch
        futures[cluster.submit(job)] = job
    for future in _finished(futures):
        job = futures[future]
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 (a grader bug or a lost worker must not stop the batch)
            result = Record(job.student, setup.assignment, FAILED, points=dict(setup.points))
            result.reason = f"grader error: {err!r}"  # no fingerprint: graded again by the next run
            outcome = JobOutput(result)
        _save(course, outcome)
        results.append(outcome.record)
        progress(outcome.record)


def slug_ok(student: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*", student))
