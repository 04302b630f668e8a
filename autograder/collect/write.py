"""Filing the chosen notebooks under ``submitted/<student>/<assignment>/``, with nbgrader's ``timestamp.txt``, and
the due date that makes a submission late.

Nothing is lost: the same export collected twice changes nothing; a different notebook for a student replaces the
one in ``submitted/`` and the old one is kept under ``.autograder/<assignment>/replaced/``. A ``--due`` without a
time zone is taken as UTC.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import pathlib
import re

from ..course import Course, CourseError
from ..intake import duration
from ..notebooks import atomic_write
from .choose import Candidate
from .lms import parse_time

NEW, UPDATED, UNCHANGED, KEPT_NEWER = "new", "updated", "unchanged", "kept newer"


# ------------------------------------------------------------------------------------------------ times
def utc_text(moment: datetime.datetime) -> str:
    """nbgrader's timestamp format (what ``nbgrader.utils.parse_utc`` reads)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def parse_due(text: str) -> datetime.datetime:
    """``--due``: a naive UTC datetime. A date alone means the end of that day."""
    if re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", text):
        text = text.strip() + " 23:59:59"
    try:
        return parse_time(text)
    except ValueError as err:
        raise CourseError(
            f"--due {text!r} is not a date and time I can read ({err}). Write it like '2026-10-01 23:59 UTC', "
            "'2026-10-01T23:59:00+02:00', '2026-10-01 23:59 Europe/Berlin' or '2026-10-01' (end of that day, UTC)."
        ) from None


def gradebook_due(course: Course, assignment: str) -> datetime.datetime | None:
    """The assignment's due date in the course gradebook (None when there is none, or no gradebook yet)."""
    url = course.db_url
    if url.startswith("sqlite:///") and not pathlib.Path(url[len("sqlite:///") :]).exists():
        return None
    from nbgrader.api import MissingEntry

    with course.gradebook() as gradebook:
        try:
            return gradebook.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def store_due(course: Course, assignment: str, due: datetime.datetime) -> None:
    """Put the due date in the course gradebook, where nbgrader's late-submission machinery reads it."""
    with course.gradebook() as gradebook:
        gradebook.update_or_create_assignment(assignment, duedate=due)


def late_by(timestamp: datetime.datetime | None, due: datetime.datetime | None, marked: bool):
    """(late, how late as text, seconds late or None) of a submission at ``timestamp``, due at ``due``, that the
    LMS may have ``marked`` late."""
    if due is not None and timestamp is not None and timestamp > due:
        seconds = (timestamp - due).total_seconds()
        return True, duration(seconds), seconds
    return marked, "marked late by the LMS" if marked else "", None


# ------------------------------------------------------------------------------------------------- writing
def _inside(path: pathlib.Path, folder: pathlib.Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


@dataclasses.dataclass
class Plan:
    """What collecting one student's notebook does."""

    candidate: Candidate
    status: str
    late: bool
    late_by: str = ""
    old_timestamp: str | None = None
    late_seconds: float | None = None  # the export's time past the due date, when both are known


def plan(course: Course, assignment: str, chosen: Candidate, due: datetime.datetime | None) -> Plan:
    from nbgrader.utils import parse_utc

    folder = course.submitted(chosen.student, assignment)
    if not _inside(folder, course.root / "submitted"):  # the id checks make this impossible; refuse regardless
        raise CourseError(f"refusing to write outside submitted/: {folder}")
    target, stamp_file = folder / f"{assignment}.ipynb", folder / "timestamp.txt"
    late, late_text, late_seconds = late_by(chosen.timestamp, due, chosen.late_marker)
    old_stamp = stamp_file.read_text(encoding="utf-8").strip() if stamp_file.exists() else None
    new_stamp = utc_text(chosen.timestamp) if chosen.timestamp else None
    if not target.exists():
        status = NEW
    else:
        same_bytes = hashlib.sha256(target.read_bytes()).hexdigest() == chosen.sha256
        if same_bytes and (new_stamp is None or new_stamp == old_stamp):
            status = UNCHANGED
        else:
            status = UPDATED
            older = None
            if old_stamp and chosen.timestamp:
                try:
                    older = chosen.timestamp < parse_utc(old_stamp)
                except (ValueError, OverflowError):
                    older = None
            if older and not same_bytes:
                status = KEPT_NEWER
                chosen.notes.append(f"submitted/ holds a later one ({old_stamp}): kept it")
    return Plan(chosen, status, late, late_text, old_stamp, late_seconds)


def write(course: Course, assignment: str, item: Plan, data: bytes, now: datetime.datetime) -> None:
    """File one student's notebook (and timestamp.txt); keep what it replaces."""
    c = item.candidate
    folder = course.submitted(c.student, assignment)
    target, stamp_file = folder / f"{assignment}.ipynb", folder / "timestamp.txt"
    if item.status in (UNCHANGED, KEPT_NEWER):
        return
    if item.status == UPDATED:
        replaced = course.state(assignment) / "replaced"
        base = f"{c.student}-{now.strftime('%Y%m%dT%H%M%SZ')}"
        n = 1
        while (replaced / f"{base}.ipynb").exists() or (replaced / f"{base}.timestamp.txt").exists():
            n += 1
            base = f"{c.student}-{now.strftime('%Y%m%dT%H%M%SZ')}-{n}"
        atomic_write(replaced / f"{base}.ipynb", target.read_bytes(), fsync=True)
        if item.old_timestamp is not None:
            atomic_write(replaced / f"{base}.timestamp.txt", stamp_file.read_bytes(), fsync=True)
    if hashlib.sha256(data).hexdigest() != c.sha256:
        raise CourseError(f"{c.path} changed in the export while it was being collected; run the command again")
    atomic_write(target, data, fsync=True)
    if c.timestamp is not None:
        atomic_write(stamp_file, utc_text(c.timestamp), fsync=True)
    elif stamp_file.exists() and item.status == UPDATED:
        stamp_file.unlink()  # it dated the notebook just replaced (kept beside it under replaced/)
