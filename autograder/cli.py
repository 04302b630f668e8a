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
import contextlib
import logging
import os
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import grading
from .course import Course, CourseError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _flag(*names, **options) -> argparse.ArgumentParser:
    """A parent parser holding one flag that several commands share."""
    holder = argparse.ArgumentParser(add_help=False)
    holder.add_argument(*names, **options)
    return holder


def parser() -> argparse.ArgumentParser:
    """The command line: shared flags in parent parsers, one sub-command per step."""
    top = argparse.ArgumentParser(
        prog="autograder",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--course", help="the course directory (default: the current directory)")
    top.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get("AUTOGRADER_DB_URL") or None,
        help="the course gradebook's database, e.g. postgresql://grader@db.example.edu/cnn (default: "
        "$AUTOGRADER_DB_URL, else c.CourseDirectory.db_url, else gradebook.db beside nbgrader_config.py)",
    )
    one = _flag("assignment")
    students = _flag("--student", action="append", default=[], help="only this student (repeatable)")
    standin = _flag(
        "--standin",
        action="store_true",
        help="grade on the course's stand-in datasets (testing the course only: scores are not valid for a real "
        "class)",
    )
    trust = _flag(
        "--trust-submissions",
        action="store_true",
        help="where the sandbox (bubblewrap) does not work, grade WITHOUT it, with the grader's own rights: only "
        "for submissions you trust",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "collect", parents=[one], help="file an LMS export's notebooks under submitted/<student>/<assignment>/"
    )
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
        "timestamp, late, uid and upload_id, matched against each file's path inside the export",
    )
    p.add_argument(
        "--due",
        help="due date, e.g. '2026-10-01 23:59 UTC': stored in the gradebook; later "
        "timestamps are flagged late (nbgrader computes the late penalty when grading)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would be collected; write nothing")
    p.add_argument(
        "--force",
        action="store_true",
        help="collect even when most notebooks do not look like the assignment (none of its graded cells)",
    )

    p = sub.add_parser(
        "grade",
        parents=[one, students, standin, trust],
        help="autograde the collected submissions through nbgrader, in parallel",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="submissions graded at once (default: c.Autograder.workers, else one per CPU core)",
    )
    p.add_argument("--force", action="store_true", help="grade again even submissions graded before unchanged")
    p.add_argument("--retry-failed", action="store_true", help="try again submissions that failed before")
    p.add_argument("--no-canary", action="store_true", help="do not grade the instructor's solution first")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="grade on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786, or the JSON file "
        "of `dask scheduler --scheduler-file`); "
        "default: a local cluster of --workers on this machine (autograder/CLUSTER.md)",
    )

    sub.add_parser(
        "feedback", parents=[one, students], help="per-student HTML feedback that never shows hidden tests"
    )

    p = sub.add_parser("export", help="grades as CSV and JSON (one row per student)")
    p.add_argument("assignment", nargs="*", help="assignments to export (default: every graded assignment)")
    p.add_argument("--out", default="exports", help="folder for the files (default: exports/)")

    p = sub.add_parser(
        "gradescope",
        parents=[one, standin, trust],
        help="a Gradescope autograder (zip) that grades with this grader",
    )
    p.add_argument("--out", default="dist", help="folder for <assignment>-gradescope.zip (default: dist/)")
    p.add_argument(
        "--hidden-visibility",
        default="after_published",
        choices=("after_published", "after_due_date", "hidden", "visible"),
        help="when students see the tests that have hidden parts (Gradescope's visibility; default: "
        "after_published). Tests without hidden parts are always visible",
    )
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
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
        logging.disable(logging.CRITICAL)  # the process ends here: nothing more from libraries shutting down
        err.print("interrupted: what finished is saved; run the same command again to go on")
        return 130


# --------------------------------------------------------------------------------------------------- grade
def _grade(course: Course, args) -> int:
    flags = ("workers", "force", "retry_failed", "standin", "scheduler", "trust_submissions")
    report = grading.grade(
        course,
        args.assignment,
        students=args.student,
        check_solution=not args.no_canary,
        **{flag: getattr(args, flag) for flag in flags},
        log=err.print,
        warn=lambda text: err.print(f"[bold red]{text}[/]", soft_wrap=True),
        progress=_progress_bar(args.assignment) if err.is_terminal else None,
    )
    grading.print_report(report, out)
    return 0


def _progress_bar(assignment: str):
    @contextlib.contextmanager
    def around(total: int):
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=err) as bar:
            task = bar.add_task(assignment, total=total)
            yield lambda record: bar.update(task, advance=1, description=record.student)

    return around


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
