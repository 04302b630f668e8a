"""The canary: the instructor's solution graded first, on the same workers; the batch is refused unless it gets
full marks (a dataset missing under strict data, a library too old)."""

from __future__ import annotations

from ..course import Course, CourseError
from ..records import GRADED, Record
from .cluster import Cluster
from .job import Job
from .prepare import GradingSetup

CANARY = "instructor-solution"


def canary(course: Course, setup: GradingSetup, cluster: Cluster, log=print) -> Record:
    """Grade the instructor's solution on the cluster (its workers are what must be right); refuse the batch
    unless it gets full marks. Cached per grading setup. The cluster must have been sent the setup."""
    path = course.state(setup.assignment) / "canary.json"
    cached = Record.load(path)
    if cached and cached.fingerprint == setup.key and cached.status == GRADED:
        if cached.score == cached.max_score:
            return cached
    log(f"checking the grading environment: grading the instructor's solution of {setup.assignment} first")
    job = Job(
        student=CANARY,
        notebook=course.source_notebook(setup.assignment).read_bytes(),
        timestamp=None,
        kit=cluster.kit,
        submission_timeout=course.settings.submission_timeout,
        cell_timeout=course.cell_timeout,
        limits=dict(course.settings.sandbox_limits),
        fingerprint=setup.key,
        warm_start=course.settings.warm_start,
    )
    outcome = cluster.run_one(job)
    result = outcome.record
    result.save(path)
    where = f" on {result.worker}" if cluster.remote else ""
    if result.status != GRADED:
        raise CourseError(
            f"the instructor's solution of {setup.assignment} could not be graded{where} ({result.reason}); "
            "student submissions would fail the same way, so nothing was graded."
        )
    if result.score != result.max_score:
        lost = [
            f"  {gid}: {outcome.errors.get(gid, 'no points')}"
            for gid, pts in result.points.items()
            if result.scores.get(gid, 0.0) != pts
        ]
        first = outcome.first_error
        hint = (
            "A dataset is missing: under strict data (the default) grading uses the real datasets only. Put them "
            "where the notebook loads them from (`python -m cnnbook.data fetch NAME` on a machine with internet "
            "access fills the Keras cache; on a cluster, on every worker), or, to test the course only, pass "
            "--standin."
            if "DataUnavailable" in first or "dataset" in first.lower()
            else "Fix the grading environment (or the source notebook) and run again."
        )
        raise CourseError(
            f"the instructor's solution of {setup.assignment} gets {result.score:g} of {result.max_score:g} "
            f"points in this grading environment{where}, so student grades would be wrong; nothing was graded.\n"
            + (f"The first error, the likely cause: {first}\nTests that lost points:\n" if first else "")
            + "\n".join(lost)
            + f"\n{hint}"
        )
    return result
