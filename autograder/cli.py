"""``autograder``: grade a class's Colab submissions with one command per step.

    autograder collect a2_conv_arithmetic canvas-export.zip      # LMS export -> submitted/<student>/<assignment>/
    autograder grade a2_conv_arithmetic --workers 2              # autograde through nbgrader, in parallel
    autograder feedback a2_conv_arithmetic                       # feedback/<student>/<assignment>/*.html
    autograder export                                            # exports/*.csv and *.json

Run it in the course directory (the repository root), or pass ``--course DIR``. Exit status: 0 when the command
did its work (submissions that could not be graded are listed, with their reasons), 2 when the command or the
course is wrong (the message says what to do).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import grading
from .course import Course, CourseError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograder",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--course", help="the course directory (default: the current directory)")
    parser.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get("AUTOGRADER_DB_URL") or None,
        help="the course gradebook's database, e.g. postgresql://grader@db.example.edu/cnn (default: "
        "$AUTOGRADER_DB_URL, else c.CourseDirectory.db_url, else gradebook.db beside nbgrader_config.py)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("collect", help="file an LMS export's notebooks under submitted/<student>/<assignment>/")
    p.add_argument("assignment")
    p.add_argument("export", help="the LMS export: a .zip file or a folder")
    p.add_argument(
        "--lms",
        default="auto",
        help="file-name pattern of the export: auto (default), "
        "canvas, moodle, blackboard, folders, files, or a name from c.Autograder.lms_patterns",
    )
    p.add_argument(
        "--pattern",
        help="a regular expression with the named groups student_id and, optionally, "
        "timestamp and late, matched against each file's path inside the export",
    )
    p.add_argument(
        "--due",
        help="due date, e.g. '2026-10-01 23:59 UTC': stored in the gradebook; later "
        "timestamps are flagged late (nbgrader computes the late penalty when grading)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would be collected; write nothing")

    p = sub.add_parser("grade", help="autograde the collected submissions through nbgrader, in parallel")
    p.add_argument("assignment")
    p.add_argument(
        "--workers",
        type=int,
        help="submissions graded at once (default: c.Autograder.workers, else one per CPU core)",
    )
    p.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    p.add_argument("--force", action="store_true", help="grade again even submissions graded before unchanged")
    p.add_argument("--retry-failed", action="store_true", help="try again submissions that failed before")
    p.add_argument(
        "--standin",
        action="store_true",
        help="grade on the course's stand-in datasets (testing the "
        "course only: scores are not valid for a real class)",
    )
    p.add_argument("--no-canary", action="store_true", help="do not grade the instructor's solution first")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786, or the JSON file "
        "of `dask scheduler --scheduler-file`); "
        "default: a local cluster of --workers on this machine (autograder/CLUSTER.md)",
    )
    p.add_argument(
        "--trust-submissions",
        action="store_true",
        help="where the sandbox (bubblewrap) is unavailable, grade anyway with the grader's own rights: only for "
        "submissions you trust",
    )

    p = sub.add_parser("feedback", help="per-student HTML feedback that never shows hidden tests")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", default=[], help="only this student (repeatable)")

    p = sub.add_parser("export", help="grades as CSV and JSON (one row per student)")
    p.add_argument("assignment", nargs="*", help="assignments to export (default: every graded assignment)")
    p.add_argument("--out", default="exports", help="folder for the files (default: exports/)")

    p = sub.add_parser("gradescope", help="a Gradescope autograder (zip) that grades with this grader")
    p.add_argument("assignment")
    p.add_argument("--out", default="dist", help="folder for <assignment>-gradescope.zip (default: dist/)")
    p.add_argument(
        "--standin",
        action="store_true",
        help="grade on the course's stand-in datasets and fetch no real ones (testing the bundle only: scores "
        "are not valid for a real class)",
    )
    p.add_argument(
        "--hidden-visibility",
        default="after_published",
        choices=("after_published", "after_due_date", "hidden", "visible"),
        help="when students see the tests that have hidden parts (Gradescope's visibility; default: "
        "after_published). Tests without hidden parts are always visible",
    )
    p.add_argument(
        "--trust-submissions",
        action="store_true",
        help="where bubblewrap does not work in Gradescope's container, grade WITHOUT the sandbox: student code "
        "can then read the hidden tests (every result says so). Default: refuse to grade there",
    )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    # nbgrader's gradebook runs the `alembic` command: the one installed beside this Python.
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    try:
        course = Course.open(args.course, db_url=args.db)
        commands = {
            "collect": _collect,
            "grade": _grade,
            "feedback": _feedback,
            "export": _export,
            "gradescope": _gradescope,
        }
        return commands[args.command](course, args)
    except CourseError as error:
        err.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: what finished is saved; run the same command again to go on")
        return 130


# --------------------------------------------------------------------------------------------------- grade
def _grade(course: Course, args) -> int:
    assignment = args.assignment
    course.check_assignment(assignment)
    standin = args.standin or course.settings.standin_data
    if standin:
        err.print(
            "[bold yellow]STAND-IN DATA:[/] grading on the course's stand-in datasets, not the real ones. "
            "Use this to test the course; these scores are not valid grades."
        )
    students = course.students_submitted(assignment)
    if args.student:
        missing = [s for s in args.student if s not in students]
        if missing:
            raise CourseError(
                f"no submission of {assignment} for {', '.join(missing)} in submitted/; run "
                f"`autograder collect {assignment} EXPORT` first"
            )
        students = list(args.student)
    if not students:
        raise CourseError(
            f"nothing to grade: submitted/ has no folder <student>/{assignment}/. Collect the class's notebooks "
            f"first: `autograder collect {assignment} EXPORT` (EXPORT: the LMS's zip or a folder)."
        )
    bad = [s for s in students if not grading.slug_ok(s)]
    if bad:
        raise CourseError(f"student ids must be letters, digits and ._@+- only: {bad}; rename those folders")

    start = time.monotonic()
    trusted = args.trust_submissions or course.settings.trust_submissions
    workers = args.workers or course.workers
    with grading.Cluster(workers, args.scheduler, log=err.print) as cluster:
        if args.scheduler:
            err.print(f"grading on the Dask cluster at {args.scheduler} ({cluster.describe()})")
        isolate = grading.isolation(
            course, trusted, log=lambda text: err.print(f"[bold red]{text}[/]", soft_wrap=True), cluster=cluster
        )
        template = grading.prepare(course, assignment, standin, isolate)
        todo, skipped, failed_earlier = grading.plan(course, template, students, args.force, args.retry_failed)
        if skipped:
            err.print(
                f"{len(skipped)} submission(s) graded before and unchanged: kept (use --force to grade again)"
            )
        if failed_earlier:
            err.print(
                f"{len(failed_earlier)} submission(s) failed before and are unchanged: not retried "
                "(--retry-failed to try again)"
            )
        check = course.settings.canary and not args.no_canary
        if todo or check:
            cluster.send(template)
        if check:
            grading.canary(course, template, log=err.print, cluster=cluster)
        results = _grade_with_progress(course, assignment, template, todo, workers, cluster)
    _summary(course, assignment, results, skipped, time.monotonic() - start)
    return 0


def _grade_with_progress(course, assignment, template, todo, workers, cluster):
    where = "on the cluster" if cluster.remote else f"with {workers} worker(s)"
    err.print(f"grading {len(todo)} submission(s) of {assignment} {where}")

    results = []
    if todo:
        if err.is_terminal:
            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            ]
            with Progress(*columns, console=err) as bar:
                task = bar.add_task(assignment, total=len(todo))
                results = grading.grade_batch(
                    course,
                    template,
                    todo,
                    workers,
                    lambda r: bar.update(task, advance=1, description=r.student),
                    cluster,
                )
        else:
            done, batch_start = [], time.monotonic()

            def line(result):
                done.append(result)
                elapsed = time.monotonic() - batch_start
                eta = elapsed / len(done) * (len(todo) - len(done))
                state = f"{result.score:g}/{result.max_score:g}" if result.status == grading.GRADED else "FAILED"
                err.print(
                    f"[{len(done)}/{len(todo)}] {result.student}: {state} "
                    f"({result.seconds:.0f} s; elapsed {elapsed:.0f} s, ETA {eta:.0f} s)"
                )

            results = grading.grade_batch(course, template, todo, workers, line, cluster)
    return results


def _summary(course, assignment, results, skipped, seconds):
    everyone = grading.records(course, assignment)
    graded = [r for r in everyone.values() if r.status == grading.GRADED]
    failed = [r for r in results if r.status == grading.FAILED]
    manual = [r for r in results if r.needs_manual]
    attention = [r for r in results if r.status == grading.FAILED or r.repairs or r.notes or r.needs_manual]
    if attention:
        table = Table(title="Submissions that need a look", show_lines=False)
        for column in ("student", "status", "score", "what happened"):
            table.add_column(column)
        for r in sorted(attention, key=lambda r: r.student):
            score = f"{r.score:g}/{r.max_score:g}" if r.status == grading.GRADED else "-"
            what = [r.reason] if r.reason else []
            what += (
                r.repairs
                + r.notes
                + ([f"needs manual grading: {', '.join(r.needs_manual)}"] if r.needs_manual else [])
            )
            table.add_row(r.student, r.status, score, "; ".join(what))
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
    per = f" ({seconds / len(results):.1f} s per submission)" if results else ""
    table.add_row(
        str(len(results) - len(failed)),
        str(len(failed)),
        str(len(manual)),
        str(len(skipped)),
        f"{mean:.2f} / {top:g}" if graded else "-",
        f"{seconds:.0f} s{per}",
    )
    out.print(table)
    if any((course.state(assignment) / "logs" / f"{r.student}.log").exists() for r in failed):
        logs = (course.state(assignment) / "logs").relative_to(course.root)
        out.print(f"nbgrader's log of each failed submission: {logs}/<student>.log")


def _collect(course: Course, args) -> int:
    from . import collect

    return collect.run(course, args, out, err)


def _feedback(course: Course, args) -> int:
    from . import feedback

    return feedback.run(course, args, out, err)


def _export(course: Course, args) -> int:
    from . import export

    return export.run(course, args, out, err)


def _gradescope(course: Course, args) -> int:
    from . import gradescope

    return gradescope.run(course, args, out, err)


if __name__ == "__main__":
    sys.exit(main())
