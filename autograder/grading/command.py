"""``autograder grade`` as a Python function (:func:`grade`), and its report (:func:`print_report`).

The command line (``autograder.cli``) only maps its flags to :func:`grade`'s keywords and prints the report; tests
and scripts call :func:`grade` directly::

    report = grade(course, "a2_conv_arithmetic", workers=2, standin=True)
    print_report(report, console)
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable

from rich.markup import escape
from rich.table import Table

from ..course import Course, CourseError
from ..intake import gradebook_seconds_late, intakes, lateness
from ..records import FAILED, GRADED, Record, records
from .batch import grade_batch, interruptible, plan, slug_ok
from .canary import canary
from .cluster import Cluster, use_sandbox
from .prepare import prepare

NEEDS_MANUAL = "needs manual grading"


@dataclasses.dataclass
class GradeReport:
    """What one ``grade`` run did: the records it wrote, the students it kept unchanged, and how long it took."""

    course: Course
    assignment: str
    results: list[Record]
    skipped: list[str]
    failed_earlier: list[str]
    seconds: float


def students_to_grade(course: Course, assignment: str, only: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The students whose submissions ``grade`` considers: everyone in submitted/, or ``only`` those."""
    students = course.students_submitted(assignment)
    if only:
        missing = [s for s in only if s not in students]
        if missing:
            raise CourseError(
                f"no submission of {assignment} for {', '.join(missing)} in submitted/; run "
                f"`autograder collect {assignment} EXPORT` first"
            )
        students = list(only)
    if not students:
        raise CourseError(
            f"nothing to grade: submitted/ has no folder <student>/{assignment}/. Collect the class's notebooks "
            f"first: `autograder collect {assignment} EXPORT` (EXPORT: the LMS's zip or a folder)."
        )
    bad = [s for s in students if not slug_ok(s)]
    if bad:
        raise CourseError(f"student ids must be letters, digits and ._@+- only: {bad}; rename those folders")
    return students


def grade(
    course: Course,
    assignment: str,
    *,
    workers: int | None = None,
    students: list[str] | tuple[str, ...] = (),
    force: bool = False,
    retry_failed: bool = False,
    standin: bool = False,
    check_solution: bool = True,
    scheduler: str | None = None,
    trust_submissions: bool = False,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[int], contextlib.AbstractContextManager] | None = None,
) -> GradeReport:
    """Grade the collected submissions of ``assignment`` (``students``: only those). ``workers``: submissions
    graded at once (default: the course's setting, else one per core); ``scheduler``: a Dask scheduler's address
    to grade on instead of this machine; ``check_solution``: grade the instructor's solution first (the canary,
    unless the course turned it off). ``log`` gets the messages, ``warn`` the warnings (default: ``log``). Raises
    ``CourseError`` when nothing may be graded (the message says what to do).

    ``progress(total)``, when given, is a context manager around the batch whose value is called with each
    finished record (a progress bar); by default a line per submission goes to ``log``. Ctrl-C (in the main
    thread) raises ``KeyboardInterrupt`` once the submission being saved is saved; the cluster stops quietly."""
    warn = warn or log
    course.check_assignment(assignment)
    standin = standin or course.settings.standin_data
    if standin:
        warn(
            "STAND-IN DATA: grading on the course's stand-in datasets, not the real ones. "
            "Use this to test the course; these scores are not valid grades."
        )
    chosen = students_to_grade(course, assignment, students)
    start = time.monotonic()
    trusted = trust_submissions or course.settings.trust_submissions
    workers = workers or course.workers
    with interruptible(), Cluster(workers, scheduler, log=log) as cluster:
        if scheduler:
            log(f"grading on the Dask cluster at {scheduler} ({cluster.describe()})")
        isolate = use_sandbox(course, trusted, log=warn, cluster=cluster)
        setup = prepare(course, assignment, standin, isolate)
        todo, skipped, failed_earlier = plan(course, setup, chosen, force, retry_failed)
        if skipped:
            log(f"{len(skipped)} submission(s) graded before and unchanged: kept (use --force to grade again)")
        if failed_earlier:
            log(
                f"{len(failed_earlier)} submission(s) failed before and are unchanged: not retried "
                "(--retry-failed to try again)"
            )
        check = course.settings.canary and check_solution
        if todo or check:
            cluster.send(setup)
        if check:
            canary(course, setup, cluster, log=log)
        where = "on the cluster" if cluster.remote else f"with {workers} worker(s)"
        log(f"grading {len(todo)} submission(s) of {assignment} {where}")
        results: list[Record] = []
        if todo:
            around = (
                progress(len(todo)) if progress else contextlib.nullcontext(_line_per_submission(len(todo), log))
            )
            with around as each:
                results = grade_batch(course, setup, todo, cluster, each)
    return GradeReport(course, assignment, results, skipped, failed_earlier, time.monotonic() - start)


def _line_per_submission(total: int, log: Callable[[str], None]) -> Callable[[Record], None]:
    done: list[Record] = []
    start = time.monotonic()

    def line(result: Record) -> None:
        done.append(result)
        elapsed = time.monotonic() - start
        eta = elapsed / len(done) * (total - len(done))
        state = f"{result.score:g}/{result.max_score:g}" if result.status == GRADED else "FAILED"
        log(
            f"[{len(done)}/{total}] {result.student}: {state} "
            f"({result.seconds:.0f} s; elapsed {elapsed:.0f} s, ETA {eta:.0f} s)"
        )

    return line


def print_report(report: GradeReport, out) -> None:
    """Every submission this run considered (graded now, or unchanged and kept), with its status, score, lateness
    and what happened to it; then the run's totals; on the rich console ``out``."""
    course, assignment, results = report.course, report.assignment, report.results
    everyone = records(course, assignment)
    graded = [r for r in everyone.values() if r.status == GRADED]
    failed = [r for r in results if r.status == FAILED]
    manual = [r for r in results if r.needs_manual]
    shown = {r.student: (r, "") for r in results}
    for student in report.skipped + report.failed_earlier:
        if student in everyone:
            shown[student] = (everyone[student], " (unchanged)")
    if shown:
        late_in_gradebook, collected = gradebook_seconds_late(course, assignment), intakes(course, assignment)
        table = Table(title=f"{assignment}: each submission", show_lines=False)
        for column in ("student", "status", "score", "late", "reason and notes"):
            table.add_column(column, overflow="fold")
        for student, (r, kept) in sorted(shown.items()):
            score = f"{r.score:g}/{r.max_score:g}" if r.status == GRADED else "-"
            late = lateness(collected.get(student), late_in_gradebook.get(student))
            what = [r.reason] if r.reason else []
            what += r.repairs + r.notes
            what += [f"needs manual grading: {', '.join(r.needs_manual)}"] if r.needs_manual else []
            status = (NEEDS_MANUAL if r.needs_manual else r.status) + kept
            table.add_row(*map(escape, (student, status, score, late.reason, "; ".join(what))))
        out.print(table)
    table = Table(title=f"{assignment}: this run")
    for column in (
        "graded",
        "failed",
        "needs manual grading",
        "unchanged (kept)",
        "mean score (all graded)",
        "time",
    ):
        table.add_column(column, justify="right")
    mean = statistics.fmean(r.score for r in graded) if graded else float("nan")
    top = graded[0].max_score if graded else 0
    seconds = report.seconds
    per = f" ({seconds / len(results):.1f} s per submission)" if results else ""
    table.add_row(
        str(len(results) - len(failed)),
        str(len(failed)),
        str(len(manual)),
        str(len(report.skipped)),
        f"{mean:.2f} / {top:g}" if graded else "-",
        f"{seconds:.0f} s{per}",
    )
    out.print(table)
    if any((course.state(assignment) / "logs" / f"{r.student}.log").exists() for r in failed):
        logs = (course.state(assignment) / "logs").relative_to(course.root)
        out.print(f"nbgrader's log of each failed submission: {logs}/<student>.log")
