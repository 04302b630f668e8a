"""``autograder export [ASSIGNMENT ...]``: the grades as CSV and JSON, one row per student.

Scores come from nbgrader's gradebook, so grades an instructor entered by hand (formgrader) count; the grader's
records add the status (graded, failed, needs manual grading), the reason a submission failed and the repairs made
to it. Per assignment:

- ``exports/<assignment>.csv``: student, status, one column per part of the assignment (the source notebook's
  ``## Part X: title (N points)`` headings group the graded cells below them; an assignment without such
  headings gets one column per graded cell), total (after any late penalty), max, late (``yes`` when the
  submission is late: after the due date, or marked late by the LMS), late_seconds (seconds past the due date,
  when known) and notes (why a submission failed or is missing, repairs, who says it is late). A failed
  submission's scores are blank.
- ``exports/<assignment>.json``: the same and more (every graded cell's automatic and manual score).

Every student of the collected LMS exports has a row (``autograder.intake``): status ``missing`` (the export held
no notebook of theirs) or ``unreadable`` (it held one that could not be read), with the reason, and ``not graded``
for a notebook collected but not graded yet.

and ``exports/grades.csv``: one row per student, one column per exported assignment's total.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
import re

import nbformat
from rich.table import Table

from .course import Course, CourseError
from .intake import COLLECTED, MISSING, UNREADABLE, intakes, lateness
from .notebooks import atomic_write, nbgrader_meta
from .notebooks import points as graded_points
from .records import FAILED, GRADED, records

PART = re.compile(r"^## Part ([A-Z]): (.+) \((\d+) points?\)\s*$", re.MULTILINE)
NEEDS_MANUAL = "needs manual grading"
NOT_IN_GRADEBOOK = "not in gradebook"
NOT_GRADED = "not graded"
FIXED = ["student", "status"]
TAIL = ["total", "max", "late", "late_seconds", "notes"]


@dataclasses.dataclass
class Column:
    """A group of graded cells exported as one score."""

    name: str  # "Part A", or a grade id when the notebook has no parts
    title: str
    grade_ids: list[str]
    points: float

    @property
    def header(self) -> str:
        return f"{self.name} ({self.points:g})"


def columns(source_nb) -> list[Column]:
    """The score columns of an assignment, from its source notebook (graded cells in notebook order)."""
    parts: list[Column] = []
    loose: list[Column] = []  # graded cells above the first part heading
    current = None
    for cell in source_nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "markdown":
            for letter, title, _ in PART.findall(cell.source):
                current = Column(f"Part {letter}", title.strip(), [], 0.0)
                parts.append(current)
        if meta.get("grade") or meta.get("task"):
            points = float(meta.get("points") or 0.0)
            if current is None:
                loose.append(Column(meta["grade_id"], "", [meta["grade_id"]], points))
            else:
                current.grade_ids.append(meta["grade_id"])
                current.points += points
    return loose + [p for p in parts if p.grade_ids]


def _iso(utc_text: str | None) -> str | None:
    """nbgrader's ``2026-10-01 23:59:00.000000 UTC`` as ISO 8601, like the gradebook's timestamps here."""
    from nbgrader.utils import parse_utc

    return parse_utc(utc_text).isoformat() if utc_text else None


def _number(value) -> str:
    return "" if value is None else f"{float(value):g}"


def assignment_data(course: Course, assignment: str) -> dict:
    """Everything exported for one assignment, as JSON-ready data (what ``<assignment>.json`` holds)."""
    from nbgrader.api import MissingEntry

    source = nbformat.read(course.source_notebook(assignment), as_version=4)
    cols = columns(source)
    points = graded_points(source, with_tasks=True)
    max_score = sum(points.values())
    recorded = records(course, assignment)
    collected = intakes(course, assignment)
    students = []
    with course.gradebook() as gradebook:
        try:
            submissions = {s.student_id: s for s in gradebook.find_assignment(assignment).submissions}
        except MissingEntry:
            submissions = {}
        for student in sorted(set(recorded) | set(submissions) | set(collected)):
            record, submitted, intake = recorded.get(student), submissions.get(student), collected.get(student)
            seconds = float(submitted.total_seconds_late or 0.0) if submitted is not None else None
            late = lateness(intake, seconds)
            entry = {
                "student": student,
                "status": "",
                "total": None,
                "max": max_score,
                "parts": {col.header: None for col in cols},
                "tests": {},
                "late": late.late,
                "late_seconds": late.seconds,
                "late_reason": late.reason,
                "late_penalty": None,
                "timestamp": _iso(intake.timestamp) if intake else None,
                "reason": record.reason if record else "",
                "repairs": list(record.repairs) if record else [],
                "notes": list(record.notes) if record else [],
                "graded_at": record.graded_at if record else "",
                "collected_from": intake.file if intake else "",
            }
            notebook = None
            if submitted is not None and not (record and record.status == FAILED):
                try:
                    notebook = gradebook.find_submission_notebook(assignment, assignment, student)
                except MissingEntry:
                    notebook = None
            if record is None and submitted is None:
                entry["status"] = intake.status if intake.status != COLLECTED else NOT_GRADED
                entry["reason"] = intake.reason or f"collected, not graded: run `autograder grade {assignment}`"
            elif record is not None and record.status == FAILED:
                entry["status"] = FAILED
            elif notebook is None:
                entry["status"] = NOT_IN_GRADEBOOK
                entry["notes"].append(
                    f"graded, but the gradebook holds no scores for it: run `autograder grade {assignment} "
                    f"--force --student {student}`"
                )
            else:
                grades = {g.name: g for g in notebook.grades}
                for gid, available in points.items():
                    grade = grades.get(gid)
                    entry["tests"][gid] = {
                        "score": float(grade.score) if grade else 0.0,
                        "points": available,
                        "auto_score": grade.auto_score if grade else None,
                        "manual_score": grade.manual_score if grade else None,
                        "extra_credit": grade.extra_credit if grade else None,
                        "needs_manual_grade": bool(grade.needs_manual_grade) if grade else True,
                    }
                manual = [gid for gid, t in entry["tests"].items() if t["needs_manual_grade"]]
                entry["status"] = NEEDS_MANUAL if manual else GRADED
                if manual:
                    entry["notes"].append(f"needs manual grading: {', '.join(manual)}")
                for col in cols:
                    entry["parts"][col.header] = sum(entry["tests"][gid]["score"] for gid in col.grade_ids)
                penalty = float(submitted.late_submission_penalty or 0.0)
                entry["late_penalty"] = penalty
                entry["total"] = sum(t["score"] for t in entry["tests"].values()) - penalty
                if penalty:
                    entry["notes"].append(f"late penalty of {penalty:g} points taken from the total")
                entry["timestamp"] = submitted.timestamp.isoformat() if submitted.timestamp else None
            if late.late:
                entry["notes"].append(f"late: {late.reason}")
            students.append(entry)
    return {
        "assignment": assignment,
        "max": max_score,
        "columns": [
            {"header": c.header, "name": c.name, "title": c.title, "points": c.points, "tests": c.grade_ids}
            for c in cols
        ],
        "points": points,
        "students": students,
    }


def csv_rows(data: dict) -> list[list[str]]:
    """The rows of ``<assignment>.csv`` (header first) for ``assignment_data``'s data."""
    headers = [c["header"] for c in data["columns"]]
    rows = [FIXED + headers + TAIL]
    for s in data["students"]:
        seconds = "" if s["late_seconds"] is None else f"{s['late_seconds']:.0f}"
        notes = [s["reason"]] if s["reason"] else []
        notes += s["repairs"] + s["notes"]
        rows.append(
            [s["student"], s["status"]]
            + [_number(s["parts"][h]) for h in headers]
            + [_number(s["total"]), _number(s["max"]), "yes" if s["late"] else "", seconds, "; ".join(notes)]
        )
    return rows


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def exported_assignments(course: Course, asked: list[str]) -> list[str]:
    if asked:
        for assignment in asked:
            course.check_assignment(assignment)
        return list(dict.fromkeys(asked))
    found = [a for a in course.assignments() if records(course, a)]
    if not found:
        raise CourseError(
            "nothing has been graded yet, so there is nothing to export: run `autograder grade ASSIGNMENT` first"
        )
    return found


@dataclasses.dataclass
class Exported:
    """What ``export_grades`` wrote."""

    # assignment -> its number of "students", and how many of them are graded, failed, need manual grading, have
    # no notebook to grade (missing, unreadable) or are not graded yet
    counts: dict[str, dict[str, int]]
    files: list[pathlib.Path]  # each assignment's CSV and JSON
    grades: pathlib.Path  # grades.csv


def export_grades(
    course: Course, assignments: list[str] | tuple[str, ...] = (), *, folder: str | pathlib.Path = "exports"
) -> Exported:
    """Write ``<assignment>.csv`` and ``<assignment>.json`` of each assignment (default: every graded one) and
    ``grades.csv`` into ``folder`` (a relative path: in the course directory). Raises ``CourseError`` for an
    unknown assignment, or one with nothing graded."""
    assignments = exported_assignments(course, list(assignments))
    folder = pathlib.Path(folder)
    folder = folder if folder.is_absolute() else course.root / folder
    exported = Exported({}, [], folder / "grades.csv")
    totals: dict[str, dict[str, str]] = {}
    for assignment in assignments:
        data = assignment_data(course, assignment)
        if not data["students"]:
            raise CourseError(
                f"{assignment} has no graded submissions to export: run `autograder grade {assignment}` first"
            )
        atomic_write(folder / f"{assignment}.csv", _csv_text(csv_rows(data)))
        atomic_write(folder / f"{assignment}.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
        for s in data["students"]:
            totals.setdefault(s["student"], {})[assignment] = _number(s["total"])
        exported.counts[assignment] = {"students": len(data["students"])} | {
            status: sum(s["status"] == status for s in data["students"])
            for status in (GRADED, FAILED, NEEDS_MANUAL, NOT_GRADED)
        }
        exported.counts[assignment][MISSING] = sum(s["status"] in (MISSING, UNREADABLE) for s in data["students"])
        exported.files += [folder / f"{assignment}.csv", folder / f"{assignment}.json"]
    rows = [["student", *assignments]]
    rows += [[student, *(totals[student].get(a, "") for a in assignments)] for student in sorted(totals)]
    atomic_write(exported.grades, _csv_text(rows))
    return exported


def print_exported(course: Course, exported: Exported, out) -> None:
    """A table of the exported assignments and the files written, on the console ``out``."""
    table = Table(title="exported grades")
    longest = max((len(a) for a in exported.counts), default=10)
    table.add_column("assignment", no_wrap=True, min_width=longest)
    for column in ("students", "graded", "failed", "needs manual grading", "no notebook", "not graded"):
        table.add_column(column)
    for assignment, count in exported.counts.items():
        table.add_row(
            assignment,
            *(str(count[key]) for key in ("students", GRADED, FAILED, NEEDS_MANUAL, MISSING, NOT_GRADED)),
        )
    out.print(table)
    for path in exported.files:
        out.print(f"wrote {_shown(course, path)}")
    out.print(f"wrote {_shown(course, exported.grades)} (every student's total per assignment)")


def run(course: Course, args, out, err) -> int:
    """The ``export`` subcommand: its arguments to ``export_grades``, what was written printed on ``out``."""
    print_exported(course, export_grades(course, args.assignment, folder=args.out), out)
    return 0


def _shown(course: Course, path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(course.root))
    except ValueError:
        return str(path)
