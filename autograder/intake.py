"""What the LMS export said of each student of an assignment: written by ``collect``, read by ``grade``'s report,
``feedback`` and ``export``, so that every student of the export has a row (those without a notebook too) and the
LMS's late mark reaches the grade files and the feedback pages.

One JSON file per student, ``.autograder/<assignment>/intake/<student>.json`` (written atomically): how the
student's notebook was collected (``collected``), or why there is none (``missing``: no notebook in the export;
``unreadable``: a notebook the export could not give, e.g. over the size limit), the file it came from, the
submission time the export gave, and the LMS's own late mark (Canvas's ``LATE`` in the file name).

Lateness (``lateness``) is decided in one place: nbgrader's seconds late (the gradebook's submission timestamp
against the due date, with the student's extension) when the gradebook has them, else the seconds the collect
measured (the export's time against the due date), else the LMS's mark, which has no time.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from .course import Course
from .notebooks import atomic_write
from .records import by_student

COLLECTED, MISSING, UNREADABLE = "collected", "missing", "unreadable"


@dataclasses.dataclass
class Intake:
    """One student of one LMS export."""

    student: str
    assignment: str
    status: str  # collected | missing | unreadable
    reason: str = ""  # why there is no notebook (missing, unreadable), for the instructor
    file: str = ""  # the notebook's path in the export
    export: str = ""  # the export it came from
    lms: str = ""  # the file-name pattern that read it (canvas, moodle, ...)
    name_in_export: str = ""  # the student's name or login as the export spells it
    lms_late: bool = False  # the LMS marked the submission late (Canvas: LATE in the file name)
    timestamp: str | None = None  # the submission time the export gave (nbgrader's UTC format)
    due: str | None = None  # the due date when it was collected
    late_seconds: float | None = None  # timestamp - due, when both were known and it was late
    collected_at: str = ""

    def save(self, course: Course) -> None:
        data = json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)
        atomic_write(intake_path(course, self.assignment, self.student), data)

    @classmethod
    def load(cls, path: pathlib.Path) -> Intake | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fields = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in fields})
        except (OSError, ValueError, TypeError):
            return None


def intake_path(course: Course, assignment: str, student: str) -> pathlib.Path:
    return course.state(assignment) / "intake" / f"{student}.json"


def intakes(course: Course, assignment: str) -> dict[str, Intake]:
    """Every student the collected exports of ``assignment`` named (unreadable files are left out)."""
    return by_student(course.state(assignment) / "intake", Intake.load)


# -------------------------------------------------------------------------------------------------- lateness
def duration(seconds: float) -> str:
    """``4 min``, ``1 h 16 min``, ``2 d 0 h``."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 1)} min"


@dataclasses.dataclass(frozen=True)
class Late:
    """Whether a submission is late, by how much when that is known, and who says so."""

    late: bool = False
    seconds: float | None = None
    reason: str = ""  # "1 h 16 min after the due date", "marked late by the LMS"


def lateness(intake: Intake | None, gradebook_seconds: float | None = None) -> Late:
    """The submission's lateness: nbgrader's seconds late (``gradebook_seconds``, None when the gradebook has no
    submission), else what the collect measured, else the LMS's mark."""
    lms = bool(intake and intake.lms_late)
    seconds = gradebook_seconds if gradebook_seconds is not None else (intake.late_seconds if intake else None)
    if seconds is not None and seconds > 0:
        reason = f"{duration(seconds)} after the due date"
        return Late(True, float(seconds), reason + (" (also marked late by the LMS)" if lms else ""))
    if lms:
        return Late(True, None, "marked late by the LMS")
    return Late()


def gradebook_seconds_late(course: Course, assignment: str) -> dict[str, float]:
    """student -> nbgrader's seconds late, for every submission of ``assignment`` in the course gradebook."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gradebook:
        try:
            submissions = gradebook.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        return {s.student_id: float(s.total_seconds_late or 0.0) for s in submissions}
