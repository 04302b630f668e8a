"""Choosing each student's notebook: the candidates a pattern gives, their resubmission numbers and times, how
each looks against the assignment, and which one is taken when a student has several.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import pathlib
import re

from .. import submission as submissions
from ..course import Course
from ..notebooks import grade_id, nbgrader_meta
from .lms import Export, Matching, Member, Refused, id_problem, parse_time, student_id


@dataclasses.dataclass
class Candidate:
    """A notebook of the export that a pattern gave to a student."""

    member: Member
    student: str
    raw_id: str
    uid: str = ""
    timestamp: datetime.datetime | None = None
    late_marker: bool = False
    attempt: int = 0  # resubmission number: Canvas's name-1.ipynb, a browser's name (1).ipynb
    exact_name: bool = False  # named <assignment>.ipynb
    notes: list[str] = dataclasses.field(default_factory=list)
    sha256: str = ""
    readable: bool = True
    unreadable: str = ""  # why, when not readable
    looks_right: bool = False

    @property
    def path(self) -> str:
        return self.member.path

    def rank(self) -> tuple:
        """Higher is preferred: a notebook of this assignment, then the latest, the highest resubmission, the
        one named exactly <assignment>.ipynb, the last by name."""
        return (
            self.looks_right,
            self.timestamp or datetime.datetime.min,
            self.attempt,
            self.exact_name,
            self.path,
        )


def _file_name(groups: dict, path: str) -> str:
    name = (groups.get("file_id") or "").strip()
    return name if name else pathlib.PurePosixPath(path).stem


def attempt(name: str, assignment: str) -> tuple[int, bool]:
    """(resubmission number, named exactly like the assignment) from a notebook's name without .ipynb."""
    found = re.fullmatch(r"(.*?)(?:-(\d{1,3})| \((\d{1,3})\))", name)
    base, number = (found.group(1), int(found.group(2) or found.group(3))) if found else (name, 0)
    return number, base == assignment


def candidates(matching: Matching, export: Export, assignment: str) -> tuple[list[Candidate], list[Refused]]:
    members = {m.path: m for m in export.files}
    out, refused = [], []
    for path, groups in sorted(matching.found.items()):
        raw = groups["student_id"]
        candidate = Candidate(
            members[path], student_id(raw, matching.pattern.full_names), raw, uid=(groups.get("uid") or "")
        )
        candidate.late_marker = bool((groups.get("late") or "").strip())
        candidate.attempt, candidate.exact_name = attempt(_file_name(groups, path), assignment)
        stamp = (groups.get("timestamp") or "").strip()
        if stamp:
            try:
                candidate.timestamp = parse_time(stamp)
            except ValueError:
                candidate.notes.append(f"time {stamp!r} in the file name not understood: no timestamp")
        if not candidate.student and candidate.uid and matching.pattern.full_names:
            candidate.student = f"participant_{candidate.uid}"
            candidate.notes.append(f"the name {raw!r} has no letters a folder name can keep: filed by its LMS id")
        out.append(candidate)

    # Two people (two LMS ids) whose names give the same student id: keep them apart with the LMS id.
    by_student: dict[str, list[Candidate]] = {}
    for c in out:
        by_student.setdefault(c.student, []).append(c)
    for student, group in by_student.items():
        uids = sorted({c.uid for c in group if c.uid})
        if len(uids) > 1:
            for c in group:
                c.student = f"{student}-{c.uid}" if c.uid else student
                c.notes.append(
                    f"{len(uids)} people give the id {student!r} (LMS ids {', '.join(uids)}): filed as {c.student}"
                )
    kept = []
    for c in out:
        problem = id_problem(c.student)
        if problem:
            refused.append(Refused(c.path, f"the pattern {problem}"))
        else:
            kept.append(c)
    return kept, refused


def graded_cell_ids(course: Course, assignment: str) -> set[str]:
    """The grade ids of the assignment's test and solution cells (the cells only this assignment has)."""
    import nbformat

    nb = nbformat.read(course.source_notebook(assignment), as_version=4)
    ids = set()
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade_id") and (meta.get("grade") or meta.get("solution")):
            ids.add(meta["grade_id"])
    return ids


def inspect(candidate: Candidate, data: bytes, wanted: set[str], assignment: str) -> None:
    candidate.sha256 = hashlib.sha256(data).hexdigest()
    try:
        nb, _ = submissions.read(data, "the notebook")
    except submissions.Unreadable as err:
        candidate.readable = False
        candidate.unreadable = str(err)
        what = str(err).removesuffix(": " + submissions.REDOWNLOAD).split(";")[0]
        candidate.notes.append(f"unreadable: {what} (collected anyway; grading will report it)")
        return
    ids = {grade_id(c) for c in nb.cells}
    candidate.looks_right = bool(ids & wanted)
    if not candidate.looks_right:
        candidate.notes.append(f"does not look like {assignment}: none of its graded cells (collected anyway)")


def take_one(group: list[Candidate], assignment: str) -> tuple[Candidate, dict | None]:
    """The notebook of one student to collect: the best of ``group`` by ``Candidate.rank``. With several, also
    what the report lists of them (``student``, ``taken``, ``why``, ``ignored``); the taken one gets a note."""
    group = sorted(group, key=Candidate.rank)
    chosen = group[-1]
    if len(group) == 1:
        return chosen, None
    ignored = [c.path for c in reversed(group[:-1])]
    why = _why(chosen, group[-2], assignment)
    chosen.notes.append(f"{len(group)} notebooks: took {chosen.path} ({why}); ignored {', '.join(ignored)}")
    return chosen, {"student": chosen.student, "taken": chosen.path, "why": why, "ignored": ignored}


def _why(chosen: Candidate, runner_up: Candidate, assignment: str) -> str:
    """Which rule of ``Candidate.rank`` put ``chosen`` before the next best."""
    rules = (
        f"the one that looks like {assignment}",
        "the latest",
        "the highest resubmission number",
        f"named {assignment}.ipynb",
        "the last by name",
    )
    return next((rule for rule, a, b in zip(rules, chosen.rank(), runner_up.rank()) if a != b), rules[-1])
