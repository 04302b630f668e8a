"""The ``collect`` command: ``collect_export``, its keyword API, and ``run``, which the command line calls."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os

from .. import grading
from ..course import Course, CourseError
from ..notebooks import atomic_write
from .choose import Candidate, candidates, graded_cell_ids, inspect, take_one
from .lms import Export, choose_pattern, match, patterns
from .report import Report, print_report
from .write import NEW, UPDATED, gradebook_due, parse_due, plan, store_due, utc_text, write


def collect_export(
    course: Course,
    assignment: str,
    export_path: str | os.PathLike,
    *,
    lms: str = "auto",
    pattern: str | None = None,
    due: str | None = None,
    dry_run: bool = False,
) -> Report:
    """File the notebooks of an LMS export (a zip or a folder) of ``assignment`` under ``submitted/``; returns the
    report (also saved as ``collect.json`` unless ``dry_run``, which writes nothing). ``lms``: the file-name
    pattern's name (``auto``: the one that fits); ``pattern``: a regular expression instead; ``due``: the due date
    as text (stored in the gradebook; without it, the gradebook's). Raises ``CourseError`` on a wrong export,
    pattern or date."""
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
        notebooks = [m.path for m in export.files if m.path.lower().endswith(".ipynb")]
        others = [m.path for m in export.files if not m.path.lower().endswith(".ipynb")]
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
        found, refused = candidates(best, export, assignment)
        report.refused += [dataclasses.asdict(r) for r in refused]

        wanted = graded_cell_ids(course, assignment)
        by_student: dict[str, list[Candidate]] = {}
        for c in found:
            try:
                data = export.read(c.member)
            except ValueError as err:
                report.refused.append({"file": c.path, "reason": str(err)})
                continue
            inspect(c, data, wanted, assignment)
            by_student.setdefault(c.student, []).append(c)

        plans = []
        for student in sorted(by_student):
            chosen, several = take_one(by_student[student], assignment)
            if several:
                report.several.append(several)
            plans.append(plan(course, assignment, chosen, due_date))

        if not dry_run:
            if due and due_date != stored_due:
                store_due(course, assignment, due_date)
            for item in plans:
                if item.status in (NEW, UPDATED):
                    write(course, assignment, item, export.read(item.candidate.member), now)
        for item in plans:
            c = item.candidate
            report.students[c.student] = {
                "file": c.path,
                "status": item.status,
                "timestamp": utc_text(c.timestamp) if c.timestamp else None,
                "late": item.late,
                "late_by": item.late_by,
                "name_in_export": c.raw_id,
                "sha256": c.sha256,
                "readable": c.readable,
                "unreadable": c.unreadable,
                "looks_like_assignment": c.looks_right,
                "notes": c.notes,
            }
    if not dry_run:
        state = course.state(assignment)
        atomic_write(state / "collect.json", json.dumps(dataclasses.asdict(report), indent=1), fsync=True)
    return report


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
    )
    print_report(report, out)
    if not report.students:
        raise CourseError(
            "no notebook could be collected: every matched file was refused (see 'Not collected' above)"
        )
    return 0
