"""The ``collect`` command: ``collect_export``, its keyword API, and ``run``, which the command line calls."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib

from .. import grading
from ..course import Course, CourseError
from ..intake import COLLECTED, MISSING, UNREADABLE, Intake
from ..notebooks import atomic_write
from .choose import Candidate, candidates, graded_cell_ids, inspect, take_one
from .lms import Export, choose_pattern, match, notebook_name, owners, patterns
from .report import Report, print_report
from .write import KEPT_NEWER, NEW, UPDATED, Plan, gradebook_due, late_by, parse_due, plan, store_due, utc_text
from .write import write as write_notebook


def collect_export(
    course: Course,
    assignment: str,
    export_path: str | os.PathLike,
    *,
    lms: str = "auto",
    pattern: str | None = None,
    due: str | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> Report:
    """File the notebooks of an LMS export (a zip or a folder) of ``assignment`` under ``submitted/``; returns the
    report (also saved as ``collect.json`` unless ``dry_run``, which writes nothing). Every student the export
    names gets a row, those without a notebook too; what it says of each (late marks included) is kept for the
    later steps (``autograder.intake``). ``lms``: the file-name pattern's name (``auto``: the one that fits);
    ``pattern``: a regular expression instead; ``due``: the due date as text (stored in the gradebook; without it,
    the gradebook's). Raises ``CourseError`` on a wrong export, pattern or date, and, unless ``force``, when most
    students' notebooks do not look like the assignment (the export of another one)."""
    course.check_assignment(assignment)
    if not grading.slug_ok(assignment):
        raise CourseError(f"assignment names are letters, digits and ._@+- only, not {assignment!r}")
    tried_patterns = patterns(course, lms, pattern)
    due_date = parse_due(due) if due else None
    stored_due = gradebook_due(course, assignment)
    if due_date is None:
        due_date = stored_due
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

    with Export(export_path) as export:
        notebooks = [m.path for m in export.files if notebook_name(m.path)]
        others = [m.path for m in export.files if not notebook_name(m.path)]
        if not notebooks:
            listed = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise CourseError(
                f"the export {export.path} holds no notebook (.ipynb)"
                + (f"; its {len(others)} file(s): {listed}" if others else " at all")
                + ". Is it the export of the right assignment?"
            )
        tried = [match(p, notebooks, export.common_folder()) for p in tried_patterns]
        best = choose_pattern(tried, len(notebooks))
        if not best.found:
            names = ", ".join(p.name for p in tried_patterns)
            examples = "; ".join(notebooks[:3])
            raise CourseError(
                f"no notebook of {export.path} matched a file-name pattern (tried: {names}). Its notebooks are "
                f"named like: {examples}. Pass --lms NAME, or --pattern REGEX with a named group student_id "
                r"matched against the path inside the export, e.g. --pattern '(?P<student_id>[^/]+)/.*\.ipynb'."
            )
        report = Report(
            assignment,
            str(export.path),
            best.pattern.name,
            best.pattern.regex,
            utc_text(due_date) if due_date else None,
            ("--due" if due else "gradebook") if due_date else "",
            dry_run,
            now.isoformat(timespec="seconds") + "Z",
            patterns_tried={m.pattern.name: len(m.found) for m in tried},
            top_folder_left_out=best.stripped,
        )
        report.not_notebooks = sorted(others)
        report.unmatched = sorted(p for p in notebooks if p not in best.found)
        report.refused = [dataclasses.asdict(r) for r in export.refused]
        found, other_files, refused = candidates(best, export, assignment, owners(best, others))
        report.refused += [dataclasses.asdict(r) for r in refused]

        wanted = graded_cell_ids(course, assignment)
        by_student: dict[str, list[Candidate]] = {}
        unreadable: dict[str, list[Candidate]] = {}
        for c in found:
            try:
                data = export.read(c.member)
            except ValueError as err:
                report.refused.append({"file": c.path, "reason": str(err)})
                c.unreadable = f"{c.path}: {err}"
                unreadable.setdefault(c.student, []).append(c)
                continue
            inspect(c, data, wanted, assignment)
            by_student.setdefault(c.student, []).append(c)

        plans = []
        for student in sorted(by_student):
            chosen, several = take_one(by_student[student], assignment)
            if several:
                report.several.append(several)
            plans.append(plan(course, assignment, chosen, due_date))
        if not force:
            _refuse_another_assignment(course, assignment, export.path, [p.candidate for p in plans])

        if not dry_run:
            if due and due_date != stored_due:
                store_due(course, assignment, due_date)
            for item in plans:
                if item.status in (NEW, UPDATED):
                    write_notebook(course, assignment, item, export.read(item.candidate.member), now)
        for item in plans:
            report.students[item.candidate.student] = _collected_row(item)
        absent: dict[str, list[Candidate]] = {}
        for c in other_files + [c for group in unreadable.values() for c in group]:
            if c.student not in by_student:
                absent.setdefault(c.student, []).append(c)
        for student, files in sorted(absent.items()):
            report.students[student] = _absent_row(course, assignment, files, due_date)
        report.students = dict(sorted(report.students.items()))
    if not dry_run:
        _keep_intakes(course, report)
        state = course.state(assignment)
        atomic_write(state / "collect.json", json.dumps(dataclasses.asdict(report), indent=1), fsync=True)
    return report


def _collected_row(item: Plan) -> dict:
    c = item.candidate
    return {
        "file": c.path,
        "status": item.status,
        "reason": c.unreadable,
        "timestamp": utc_text(c.timestamp) if c.timestamp else None,
        "late": item.late,
        "late_by": item.late_by,
        "late_seconds": item.late_seconds,
        "marked_late_by_lms": c.late_marker,
        "name_in_export": c.raw_id,
        "sha256": c.sha256,
        "readable": c.readable,
        "unreadable": c.unreadable,
        "looks_like_assignment": c.looks_right,
        "notes": c.notes,
    }


def _absent_row(course: Course, assignment: str, files: list[Candidate], due) -> dict:
    """The row of a student the export names but gives no notebook to collect: none at all (missing), or only
    ones it could not read (unreadable)."""
    files = sorted(files, key=lambda c: not c.notebook)  # the notebook that could not be read first
    broken = [c for c in files if c.notebook]
    names = ", ".join(pathlib.PurePosixPath(c.path).name for c in files)
    if broken:
        status = UNREADABLE
        reason = "the notebook could not be read from the export: " + "; ".join(c.unreadable for c in broken)
    else:
        status = MISSING
        reason = (
            f"no notebook (.ipynb) in the export, only: {names}; ask the student to submit the notebook itself "
            "(Colab: File > Download > Download .ipynb)"
        )
    stamps = [c.timestamp for c in files if c.timestamp]
    timestamp = max(stamps) if stamps else None
    late, late_text, late_seconds = late_by(timestamp, due, any(c.late_marker for c in files))
    notes = [reason]
    if (course.submitted(files[0].student, assignment) / f"{assignment}.ipynb").exists():
        notes.append("submitted/ keeps the notebook collected before")
    return {
        "file": files[0].path,
        "status": status,
        "reason": reason,
        "timestamp": utc_text(timestamp) if timestamp else None,
        "late": late,
        "late_by": late_text,
        "late_seconds": late_seconds,
        "marked_late_by_lms": any(c.late_marker for c in files),
        "name_in_export": files[0].raw_id,
        "sha256": "",
        "readable": False,
        "unreadable": reason if status == UNREADABLE else "",
        "looks_like_assignment": False,
        "notes": notes,
    }


def _keep_intakes(course: Course, report: Report) -> None:
    """What the export said of each student, for grade's report, feedback and export. A student whose notebook
    in submitted/ did not come from this export (kept newer, or absent from it) keeps what was said before."""
    for student, row in report.students.items():
        if row["status"] == KEPT_NEWER:
            continue
        if row["status"] in (MISSING, UNREADABLE):
            if (course.submitted(student, report.assignment) / f"{report.assignment}.ipynb").exists():
                continue
            status = row["status"]
        else:
            status = COLLECTED
        Intake(
            student,
            report.assignment,
            status,
            reason=row["reason"] if status != COLLECTED else "",
            file=row["file"],
            export=report.export,
            lms=report.pattern,
            name_in_export=row["name_in_export"],
            lms_late=row["marked_late_by_lms"],
            timestamp=row["timestamp"],
            due=report.due,
            late_seconds=row["late_seconds"],
            collected_at=report.collected_at,
        ).save(course)


def _refuse_another_assignment(course: Course, assignment: str, export, chosen: list[Candidate]) -> None:
    """Raise when most students' (readable) notebooks have none of the assignment's graded cells."""
    readable = [c for c in chosen if c.readable]
    wrong = [c for c in readable if not c.looks_right]
    if not readable or 2 * len(wrong) <= len(readable):
        return
    likely = {}
    for other in course.assignments():
        if other != assignment:
            ids = graded_cell_ids(course, other)
            likely[other] = sum(bool(c.grade_ids & ids) for c in wrong)
    guess = max(likely, key=likely.get) if likely and 2 * max(likely.values()) > len(wrong) else ""
    raise CourseError(
        f"{len(wrong)} of the {len(readable)} students' notebooks in {export} do not look like {assignment} (they "
        f"have none of its graded cells){f', they look like {guess}' if guess else ''}: is it the export of "
        f"another assignment? Nothing was collected. Collect it for the assignment it belongs to "
        f"(autograder collect {guess or 'ASSIGNMENT'} {export}), or pass --force to collect these notebooks into "
        f"{assignment} anyway."
    )


def run(course: Course, args, out, err) -> int:
    """The ``collect`` subcommand: its arguments to ``collect_export``, the report printed on ``out``."""
    report = collect_export(
        course,
        args.assignment,
        args.export,
        lms=args.lms,
        pattern=args.pattern,
        due=args.due,
        dry_run=args.dry_run,
        force=args.force,
    )
    print_report(report, out)
    if not any(row["status"] not in (MISSING, UNREADABLE) for row in report.students.values()):
        raise CourseError(
            "no notebook could be collected: every matched file was refused (see 'Not collected' above)"
        )
    return 0
