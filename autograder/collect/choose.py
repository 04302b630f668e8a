"""Choosing each student's notebook: the candidates a pattern gives, their times, upload numbers and copy numbers,
how each looks against the assignment, and which one is taken when a student has several.

Which of a student's notebooks is the latest is read, in this order, from what the LMS says (Blackboard's attempt
time; Canvas's attachment id, which grows with every upload), then from the numbers that browsers and LMSs add to
a repeated name, read in the order they were added: a browser's second download of ``a2.ipynb`` is
``a2 (1).ipynb`` (Chrome, Edge; Moodle's file picker too) or ``a2(1).ipynb`` (Firefox), and Canvas names a file
uploaded again under a name it already has ``a2-1.ipynb``, so ``a2 (2)-1.ipynb`` (copy numbers 2, 1) came after
``a2 (2).ipynb`` (2) and after ``a2 (1)-1.ipynb`` (1, 1).
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
from .lms import Export, Matching, Member, Refused, id_problem, notebook_name, parse_time, student_id


@dataclasses.dataclass
class Candidate:
    """A notebook of the export that a pattern gave to a student."""

    member: Member
    student: str
    raw_id: str
    uid: str = ""
    timestamp: datetime.datetime | None = None
    late_marker: bool = False
    upload_id: int = -1  # the LMS's number for the uploaded file (Canvas's attachment id), -1 when it gives none
    copies: tuple[int, ...] = ()  # the copy numbers of its name, in the order added: a2 (2)-1.ipynb -> (2, 1)
    exact_name: bool = False  # named <assignment>.ipynb (before any copy number)
    copy_suffix: str = ""  # what the copy numbers add to its name: " (2)-1"
    notebook: bool = True  # False: another file of the export, which only says whose it is
    notes: list[str] = dataclasses.field(default_factory=list)
    sha256: str = ""
    readable: bool = True
    unreadable: str = ""  # why, when not readable
    looks_right: bool = False
    grade_ids: frozenset[str] = frozenset()  # the graded cells it has (any assignment's)

    @property
    def path(self) -> str:
        return self.member.path

    def rank(self) -> tuple:
        """Higher is preferred: a notebook of this assignment, then the latest by the LMS (its submission time,
        then its upload number), then the latest copy by its name, the one named exactly <assignment>.ipynb, the
        last by name."""
        return (
            self.looks_right,
            self.timestamp or datetime.datetime.min,
            self.upload_id,
            self.copies,
            self.exact_name,
            self.path,
        )


_COPY_NUMBER = re.compile(r"(?:-(\d{1,3})| ?\((\d{1,3})\))\Z")  # Canvas's -1; a browser's " (1)" or "(1)"


def _file_name(groups: dict, path: str) -> str:
    name = (groups.get("file_id") or "").strip()
    if not name:
        name = pathlib.PurePosixPath(notebook_name(path) or path).name
    return name[: -len(".ipynb")] if name.lower().endswith(".ipynb") else name


def _base_name(name: str, assignment: str) -> tuple[str, tuple[int, ...]]:
    """A notebook's name (without ``.ipynb``) without its copy numbers, and the numbers in the order added."""
    numbers, base = [], name
    while base != assignment:
        found = _COPY_NUMBER.search(base)
        if not found or found.start() == 0:
            break
        numbers.append(int(found.group(1) or found.group(2)))
        base = base[: found.start()]
    return base, tuple(reversed(numbers))


def attempt(name: str, assignment: str) -> tuple[tuple[int, ...], bool]:
    """(its copy numbers in the order they were added, named like the assignment) from a notebook's name without
    ``.ipynb``: ``a2 (2)-1`` -> ``((2, 1), True)``; ``Copy of a2 (1)`` -> ``((1,), False)``."""
    base, numbers = _base_name(name, assignment)
    return numbers, base == assignment


def copy_label(candidate: Candidate) -> str:
    """What its name adds to the first copy's, e.g. ``'(2)-1'``; for the first copy, ``the name without one``."""
    suffix = candidate.copy_suffix.strip()
    return repr(suffix) if suffix else "the name without one"


def candidates(
    matching: Matching, export: Export, assignment: str, others: dict[str, dict] | None = None
) -> tuple[list[Candidate], list[Candidate], list[Refused]]:
    """The notebooks the pattern gave to a student (refused: those whose student id cannot be a folder), and the
    other files ``others`` (path -> the pattern's groups, from ``owners``) that name a student."""
    members = {m.path: m for m in export.files}
    out, refused = [], []
    everything = [(path, groups, True) for path, groups in sorted(matching.found.items())]
    everything += [(path, groups, False) for path, groups in sorted((others or {}).items())]
    for path, groups, is_notebook in everything:
        raw = groups["student_id"]
        candidate = Candidate(
            members[path], student_id(raw, matching.pattern.full_names), raw, uid=(groups.get("uid") or "")
        )
        candidate.notebook = is_notebook
        candidate.late_marker = bool((groups.get("late") or "").strip())
        name = _file_name(groups, path)
        base, candidate.copies = _base_name(name, assignment)
        candidate.exact_name, candidate.copy_suffix = base == assignment, name[len(base) :]
        if (groups.get("upload_id") or "").isdigit():
            candidate.upload_id = int(groups["upload_id"])
        if is_notebook and path != notebook_name(path):
            candidate.notes.append(f"named {pathlib.PurePosixPath(path).name!r}: read as a notebook")
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
    kept, other = [], []
    for c in out:
        problem = id_problem(c.student)
        if problem and c.notebook:
            refused.append(Refused(c.path, f"the pattern {problem}"))
        elif not problem:
            (kept if c.notebook else other).append(c)
    return kept, other, refused


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
    candidate.grade_ids = frozenset(filter(None, (grade_id(c) for c in nb.cells)))
    candidate.looks_right = bool(candidate.grade_ids & wanted)
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
        "the latest by the LMS's submission time",
        "the latest upload by the LMS's file number",
        f"the latest copy by the number in its name: {copy_label(chosen)} after {copy_label(runner_up)}",
        f"named {assignment}.ipynb",
        "the last by name",
    )
    return next((rule for rule, a, b in zip(rules, chosen.rank(), runner_up.rank()) if a != b), rules[-1])
