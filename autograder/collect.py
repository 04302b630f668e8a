"""``autograder collect ASSIGNMENT EXPORT``: file an LMS export's notebooks where nbgrader reads them.

Students download their notebook from Colab and upload it to the course's LMS; the instructor downloads the LMS's
export of one assignment (a zip, or a folder) and runs this command, which files each student's notebook as
``submitted/<student>/<assignment>/<assignment>.ipynb`` (with nbgrader's ``timestamp.txt`` beside it when the
export says when it was submitted).

* File names are matched with nbgrader's own ``FileNameCollectorPlugin`` (the plugin of ``nbgrader zip_collect``):
  a regular expression with the named group ``student_id`` and, optionally, ``timestamp``, ``late`` and ``uid``
  (the LMS's own number for the person), applied to each file's path inside the export, ``/``-separated. The
  built-in patterns are in ``PATTERNS``; a course adds its own in ``c.Autograder.lms_patterns``; ``--pattern``
  gives one on the command line. ``--lms auto`` picks the pattern that fits the export (``choose_pattern``).
* Only notebooks are taken. Any other file is listed as skipped and never written anywhere. Zip members are read
  in memory (at most ``MAX_NOTEBOOK_BYTES`` each): nothing from the export is extracted to disk but the chosen
  notebooks, written under names this module makes, so a member named ``../../x.ipynb`` cannot escape.
* Nothing is lost: the same export collected twice changes nothing; a different notebook for a student replaces
  the one in ``submitted/`` and the old one is kept under ``.autograder/<assignment>/replaced/``.
* The report is printed and saved as ``.autograder/<assignment>/collect.json``.

Times without a time zone (Blackboard's file names, a ``--due`` without one) are taken as UTC.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import pathlib
import re
import unicodedata
import warnings
import zipfile
import zlib

from rich.markup import escape
from rich.table import Table

from . import grading
from . import submission as submissions
from .course import Course, CourseError

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024  # a Colab notebook with outputs is a few MB; more is not a notebook to grade
MAX_FILES = 100_000  # entries of an export; an LMS export of one assignment has a few per student
MAX_ID_LENGTH = 100
NEW, UPDATED, UNCHANGED, KEPT_NEWER = "new", "updated", "unchanged", "kept newer"
SYSTEM_FOLDERS = {"__MACOSX"}  # macOS's resource forks in zips made by Finder

_ANY_FOLDERS = r"(?:[^/]+/)*"  # the export's own folder(s), when someone zipped the folder of an export
_BLACKBOARD_TIME = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}"


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A named file-name pattern of an LMS export."""

    name: str
    regex: str
    example: str = ""
    full_names: bool = False  # student_id is a person's full name: the student id is a slug of it


PATTERNS = {
    p.name: p
    for p in (
        Pattern(
            "canvas",
            _ANY_FOLDERS
            + r"(?P<student_id>[^/_]+)(?P<late>(?i:_late))?_(?P<uid>\d+)_\d+_(?P<file_id>[^/]+)\.ipynb\Z",
            "lovelaceada_LATE_4711_982301_a2_conv_arithmetic-1.ipynb",
        ),
        Pattern(
            "moodle",
            r"(?:[^/]+/)*?(?P<student_id>[^/]+?)_(?P<uid>\d+)_assignsubmission_file(?:_/|_|/)"
            + _ANY_FOLDERS
            + r"(?P<file_id>[^/]+)\.ipynb\Z",
            "Ada Lovelace_123456_assignsubmission_file_/a2_conv_arithmetic.ipynb",
            full_names=True,
        ),
        Pattern(
            "blackboard",
            _ANY_FOLDERS
            + r"[^/]*_(?P<student_id>[^_/]+)_attempt_(?P<timestamp>"
            + _BLACKBOARD_TIME
            + r")(?:_(?P<file_id>[^/]+))?\.ipynb\Z",
            "A2 Conv Arithmetic_alovelace_attempt_2026-10-01-23-59-00_a2_conv_arithmetic.ipynb",
        ),
        Pattern(
            "folders",
            r"(?P<student_id>[^/]+)/" + _ANY_FOLDERS + r"(?P<file_id>[^/]+)\.ipynb\Z",
            "alovelace/a2_conv_arithmetic.ipynb",
        ),
        Pattern("files", r"(?P<student_id>[^/]+)\.ipynb\Z", "alovelace.ipynb"),
    )
}
BUILTIN_ORDER = ("canvas", "moodle", "blackboard")  # then the course's own patterns, then folders, files
GENERIC_ORDER = ("folders", "files")

_QUIET = logging.getLogger("autograder.collect.names")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
_QUIET.disabled = True  # the plugin warns about every file a pattern does not match


# ------------------------------------------------------------------------------------------------- the export
@dataclasses.dataclass
class Member:
    """One file of the export: its path inside the export (``/``-separated) and its size in bytes."""

    path: str
    size: int
    key: object = None  # the ZipInfo, or the file's path on disk


@dataclasses.dataclass
class Refused:
    file: str
    reason: str


class Export:
    """An LMS export (a zip file or a folder), read without extracting it."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.files: list[Member] = []
        self.refused: list[Refused] = []  # unsafe names, links, encrypted members
        self.ignored = 0  # __MACOSX, dot-files
        self._zip: zipfile.ZipFile | None = None
        if not self.path.exists():
            raise CourseError(
                f"the export {self.path} does not exist. Download the LMS's export of the assignment (all "
                "submissions, as a zip) and give its path, or the path of a folder holding the notebooks."
            )
        if self.path.is_dir():
            self._walk()
        elif zipfile.is_zipfile(self.path):
            try:
                self._zip = zipfile.ZipFile(self.path)
                infos = self._zip.infolist()
            except (zipfile.BadZipFile, OSError, ValueError) as err:
                raise CourseError(
                    f"{self.path} is a damaged zip file ({err}); download the export from the LMS again"
                ) from None
            if len(infos) > MAX_FILES:
                raise CourseError(f"{self.path} has {len(infos)} entries: not the export of one assignment")
            for info in infos:
                if not info.is_dir():
                    self._add(info.filename, info.file_size, info, encrypted=bool(info.flag_bits & 0x1))
        elif self.path.suffix.lower() == ".zip":
            raise CourseError(
                f"{self.path} is not a valid zip file (damaged, or the download did not finish); download the "
                "export from the LMS again"
            )
        else:
            raise CourseError(
                f"{self.path} is neither a zip file nor a folder. Give the LMS's export of the assignment (the "
                "zip of all submissions) or a folder holding the students' notebooks."
            )

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Export:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _walk(self) -> None:
        count = 0
        for folder, subfolders, names in os.walk(self.path, followlinks=False):
            keep = []
            for sub in sorted(subfolders):
                full = pathlib.Path(folder, sub)
                if sub in SYSTEM_FOLDERS or sub.startswith("."):
                    self.ignored += 1
                elif full.is_symlink():
                    self.refused.append(Refused(self._relative(full) + "/", "a symbolic link: not followed"))
                else:
                    keep.append(sub)
            subfolders[:] = keep
            for name in sorted(names):
                count += 1
                if count > MAX_FILES:
                    raise CourseError(f"{self.path} holds more than {MAX_FILES} files: that is not an export")
                full = pathlib.Path(folder, name)
                if full.is_symlink():
                    self.refused.append(Refused(self._relative(full), "a symbolic link: not followed"))
                    continue
                self._add(self._relative(full), full.lstat().st_size, full)

    def _relative(self, full: pathlib.Path) -> str:
        return full.relative_to(self.path).as_posix()

    def _add(self, name: str, size: int, key, encrypted: bool = False) -> None:
        name = name.replace("\\", "/")  # zips made on Windows by some tools
        parts = name.split("/")
        if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
            self.refused.append(Refused(name, "unsafe path (absolute, or with '..'): not read"))
            return
        parts = [p for p in parts if p not in ("", ".")]
        if not parts:
            return
        if any(p in SYSTEM_FOLDERS or p.startswith(".") for p in parts):
            self.ignored += 1
            return
        path = "/".join(parts)
        if encrypted:
            self.refused.append(Refused(path, "encrypted in the zip: not read"))
            return
        self.files.append(Member(path, size, key))

    def read(self, member: Member) -> bytes:
        """The member's bytes; raises ``ValueError`` (with the reason) when it is too large or unreadable."""
        too_large = (
            f"{member.size / 1e6:.0f} MB, over the limit of {MAX_NOTEBOOK_BYTES // 2**20} MB for a notebook: "
            "not read (clear the notebook's outputs and resubmit)"
        )
        if member.size > MAX_NOTEBOOK_BYTES:
            raise ValueError(too_large)
        try:
            if self._zip is not None:
                with self._zip.open(member.key) as stream:
                    data = stream.read(MAX_NOTEBOOK_BYTES + 1)
            else:
                with open(member.key, "rb") as stream:
                    data = stream.read(MAX_NOTEBOOK_BYTES + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as err:
            raise ValueError(f"cannot be read from the export ({err})") from None
        if len(data) > MAX_NOTEBOOK_BYTES:  # the zip's header lied about the size
            raise ValueError(too_large)
        return data

    def common_folder(self) -> str | None:
        """The one top-level folder that holds every file of the export, if there is one."""
        tops = {m.path.split("/", 1)[0] if "/" in m.path else None for m in self.files}
        if len(tops) == 1 and None not in tops:
            return tops.pop()
        return None


# ----------------------------------------------------------------------------------------------- patterns
def patterns(course: Course, lms: str = "auto", regex: str | None = None) -> list[Pattern]:
    """The patterns to try, in order of preference."""
    if regex:
        if lms not in ("auto", None):
            raise CourseError("give either --lms or --pattern, not both")
        return [_checked(Pattern("--pattern", regex), "--pattern")]
    configured = []
    for name, text in dict(course.settings.lms_patterns).items():
        if name in PATTERNS:
            raise CourseError(
                f"c.Autograder.lms_patterns names a pattern {name!r}, which is built in; give it another name"
            )
        configured.append(_checked(Pattern(str(name), str(text)), f"c.Autograder.lms_patterns[{name!r}]"))
    everything = [PATTERNS[n] for n in BUILTIN_ORDER] + configured + [PATTERNS[n] for n in GENERIC_ORDER]
    if lms in ("auto", None):
        return everything
    for pattern in everything:
        if pattern.name == lms:
            return [pattern]
    known = ", ".join(p.name for p in everything)
    raise CourseError(f"unknown --lms {lms!r}: use auto or one of {known} (or --pattern REGEX)")


def _checked(pattern: Pattern, where: str) -> Pattern:
    try:
        compiled = re.compile(pattern.regex)
    except re.error as err:
        raise CourseError(f"{where} is not a valid regular expression: {err}") from None
    if "student_id" not in compiled.groupindex:
        raise CourseError(
            f"{where} has no named group student_id; write it as e.g. "
            r"'(?P<student_id>[^/]+)/.*\.ipynb' (the other groups are optional: timestamp, late, uid)"
        )
    return pattern


@dataclasses.dataclass
class Matching:
    """What one pattern makes of the export's notebooks."""

    pattern: Pattern
    found: dict[str, dict]  # path in the export -> the pattern's groups
    stripped: str = ""  # the top-level folder left out of every path before matching, if any

    @property
    def score(self) -> tuple[int, int]:
        return len(self.found), len({g["student_id"] for g in self.found.values()})


def match(pattern: Pattern, paths: list[str], common_folder: str | None = None) -> Matching:
    """Match every path with nbgrader's ``FileNameCollectorPlugin``. When the whole export sits in one folder
    (someone zipped the export's folder), the paths are also tried without it; the better of the two counts."""
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    plugin = FileNameCollectorPlugin(named_regexp=pattern.regex, valid_ext=[".ipynb"], log=_QUIET)
    best = None
    for prefix in [""] + ([common_folder + "/"] if common_folder else []):
        found = {}
        for path in paths:
            groups = plugin.collect(path[len(prefix) :])
            if groups and (groups.get("student_id") or "").strip():
                found[path] = groups
        candidate = Matching(pattern, found, prefix.rstrip("/"))
        if best is None or candidate.score > best.score:
            best = candidate
    return best


def choose_pattern(tried: list[Matching], notebooks: int) -> Matching:
    """The pattern for ``--lms auto``. The generic layouts (``folders``, ``files``) match almost any export, so an
    LMS's pattern (built in or the course's) that matches at least half the notebooks is taken first: the one
    matching the most, the first on a tie. Otherwise the pattern matching the most notebooks wins; between the
    generic layouts, on a tie, the one giving more students (a zipped folder of ``<student>.ipynb`` files is
    ``files`` under one top folder, which ``folders`` would read as a single student)."""

    def generic(m: Matching) -> bool:
        return m.pattern.name in GENERIC_ORDER

    specific = [(i, m) for i, m in enumerate(tried) if not generic(m) and 2 * len(m.found) >= notebooks]
    if specific:
        return max(specific, key=lambda item: (len(item[1].found), -item[0]))[1]
    return max(enumerate(tried), key=lambda item: (item[1].score[0], item[1].score[1], -item[0]))[1]


# ------------------------------------------------------------------------------------------- student ids
def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def student_id(raw: str, full_name: bool = False) -> str:
    """A folder name from what the pattern gave: lowercase, spaces to ``_``, accents dropped. A full name
    (Moodle) becomes a slug: ``Ada  Lovelace-Byron`` -> ``ada_lovelace_byron``."""
    text = _ascii(raw.strip()).lower()
    if full_name:
        return re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    return re.sub(r"\s+", "_", text)


def id_problem(student: str) -> str:
    """Why ``student`` cannot be a folder under submitted/ ('' when it can)."""
    if not student:
        return "gives an empty student id"
    if len(student) > MAX_ID_LENGTH:
        return f"gives a student id longer than {MAX_ID_LENGTH} characters"
    if student == grading.CANARY:
        return f"gives the student id {student!r}, which the grader keeps for the instructor's solution"
    if not grading.slug_ok(student):
        return (
            f"gives the student id {student!r}, which is not a safe folder name (letters, digits and ._@+- only, "
            "starting with a letter or digit); collect it with a --pattern that captures a plain id"
        )
    return ""


# ------------------------------------------------------------------------------------------------ times
def utc_text(moment: datetime.datetime) -> str:
    """nbgrader's timestamp format (what ``nbgrader.utils.parse_utc`` reads)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def parse_time(text: str) -> datetime.datetime:
    """A naive UTC datetime from Blackboard's ``2026-10-01-23-59-00`` or any form dateutil reads (with an
    optional time zone: ``UTC``, ``+02:00``, ``Europe/Berlin``); raises ``ValueError``."""
    import dateutil.parser
    import dateutil.tz

    text = text.strip()
    parts = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[-_ T](\d{2})[-_:](\d{2})[-_:](\d{2})", text)
    if parts:
        return datetime.datetime(*map(int, parts.groups()))
    zone = None
    head, _, tail = text.rpartition(" ")
    if head and re.fullmatch(r"[A-Za-z][A-Za-z_]*(?:/[A-Za-z_]+)*", tail) and tail.upper() not in ("AM", "PM"):
        zone = dateutil.tz.UTC if tail.upper() in ("UTC", "GMT", "Z") else dateutil.tz.gettz(tail)
        if zone is None:
            raise ValueError(f"unknown time zone {tail!r}")
        text = head
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dateutil only warns about a time zone it does not know
        try:
            moment = dateutil.parser.parse(text)
        except (ValueError, OverflowError, Warning) as err:
            raise ValueError(str(err)) from None
    if zone is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment


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


def _course_id(course: Course) -> str:
    return course.course_id


def gradebook_due(course: Course, assignment: str) -> datetime.datetime | None:
    """The assignment's due date in the course gradebook (None when there is none, or no gradebook yet)."""
    url = course.db_url
    if url.startswith("sqlite:///") and not pathlib.Path(url[len("sqlite:///") :]).exists():
        return None
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(url, _course_id(course)) as gradebook:
        try:
            return gradebook.find_assignment(assignment).duedate
        except MissingEntry:
            return None


def store_due(course: Course, assignment: str, due: datetime.datetime) -> None:
    """Put the due date in the course gradebook, where nbgrader's late-submission machinery reads it."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, _course_id(course)) as gradebook:
        gradebook.update_or_create_assignment(assignment, duedate=due)


def _late_by(delta: datetime.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 1)} min"


# ------------------------------------------------------------------------------------------- candidates
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


def _attempt(name: str, assignment: str) -> tuple[int, bool]:
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
        candidate.attempt, candidate.exact_name = _attempt(_file_name(groups, path), assignment)
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
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
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
    ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells}
    candidate.looks_right = bool(ids & wanted)
    if not candidate.looks_right:
        candidate.notes.append(f"does not look like {assignment}: none of its graded cells (collected anyway)")


# ------------------------------------------------------------------------------------------------- writing
def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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


def plan(course: Course, assignment: str, chosen: Candidate, due: datetime.datetime | None) -> Plan:
    from nbgrader.utils import parse_utc

    folder = course.submitted(chosen.student, assignment)
    if not _inside(folder, course.root / "submitted"):  # the id checks make this impossible; refuse regardless
        raise CourseError(f"refusing to write outside submitted/: {folder}")
    target, stamp_file = folder / f"{assignment}.ipynb", folder / "timestamp.txt"
    late = chosen.late_marker
    late_by = "marked late by the LMS" if chosen.late_marker else ""
    if due is not None and chosen.timestamp is not None and chosen.timestamp > due:
        late, late_by = True, _late_by(chosen.timestamp - due)
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
    return Plan(chosen, status, late, late_by, old_stamp)


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
        _atomic_write(replaced / f"{base}.ipynb", target.read_bytes())
        if item.old_timestamp is not None:
            _atomic_write(replaced / f"{base}.timestamp.txt", stamp_file.read_bytes())
    if hashlib.sha256(data).hexdigest() != c.sha256:
        raise CourseError(f"{c.path} changed in the export while it was being collected; run the command again")
    _atomic_write(target, data)
    if c.timestamp is not None:
        _atomic_write(stamp_file, utc_text(c.timestamp).encode())
    elif stamp_file.exists() and item.status == UPDATED:
        stamp_file.unlink()  # it dated the notebook just replaced (kept beside it under replaced/)


# -------------------------------------------------------------------------------------------------- the run
@dataclasses.dataclass
class Report:
    assignment: str
    export: str
    pattern: str
    regex: str
    due: str | None
    due_from: str  # "--due" or "gradebook" ("" without a due date)
    dry_run: bool
    collected_at: str
    students: dict[str, dict] = dataclasses.field(default_factory=dict)
    several: list[dict] = dataclasses.field(default_factory=list)  # student, taken, ignored
    unmatched: list[str] = dataclasses.field(default_factory=list)  # notebooks the pattern gave to no student
    not_notebooks: list[str] = dataclasses.field(default_factory=list)
    refused: list[dict] = dataclasses.field(default_factory=list)  # file, reason
    patterns_tried: dict[str, int] = dataclasses.field(default_factory=dict)
    top_folder_left_out: str = ""  # the export's one top folder, when paths matched without it

    def counts(self) -> dict[str, int]:
        out = {NEW: 0, UPDATED: 0, UNCHANGED: 0, KEPT_NEWER: 0}
        for row in self.students.values():
            out[row["status"]] += 1
        return out


def collect(
    course: Course, assignment: str, export_path, lms="auto", regex=None, due_text=None, dry_run=False
) -> Report:
    """Collect an export; returns the report (also saved as collect.json unless ``dry_run``)."""
    course.check_assignment(assignment)
    if not grading.slug_ok(assignment):
        raise CourseError(f"assignment names are letters, digits and ._@+- only, not {assignment!r}")
    tried_patterns = patterns(course, lms, regex)
    due = parse_due(due_text) if due_text else None
    stored_due = gradebook_due(course, assignment)
    if due is None:
        due = stored_due
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
            utc_text(due) if due else None,
            ("--due" if due_text else "gradebook") if due else "",
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
            group = sorted(by_student[student], key=Candidate.rank)
            chosen = group[-1]
            if len(group) > 1:
                ignored = [c.path for c in reversed(group[:-1])]
                why = _why(chosen, group[-2], assignment)
                report.several.append({"student": student, "taken": chosen.path, "why": why, "ignored": ignored})
                chosen.notes.append(
                    f"{len(group)} notebooks: took {chosen.path} ({why}); ignored {', '.join(ignored)}"
                )
            plans.append(plan(course, assignment, chosen, due))

        if not dry_run:
            if due_text and due != stored_due:
                store_due(course, assignment, due)
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
        _atomic_write(state / "collect.json", json.dumps(dataclasses.asdict(report), indent=1).encode())
    return report


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


# ----------------------------------------------------------------------------------------------- printing
def _print(report: Report, out) -> None:
    tried = ", ".join(f"{name} {n}" for name, n in report.patterns_tried.items())
    out.print(
        escape(
            f"{report.export}: file names read as a {report.pattern} export "
            + (f"inside its top folder {report.top_folder_left_out}/ " if report.top_folder_left_out else "")
            + f"(notebooks matched per pattern: {tried})"
        ),
        soft_wrap=True,
    )
    if report.due_from == "--due":
        stored = "not stored: dry run" if report.dry_run else "stored in the gradebook"
        out.print(escape(f"due {report.due} ({stored}); later submissions are late"), soft_wrap=True)
    elif report.due:
        out.print(escape(f"due {report.due} (from the gradebook); later submissions are late"), soft_wrap=True)
    verb = "would be collected (dry run: nothing written)" if report.dry_run else "collected"
    table = Table(title=f"{report.assignment}: {len(report.students)} student(s) {verb}")
    for column in ("student", "file in the export", "status", "submitted (UTC)", "late"):
        table.add_column(column, overflow="fold")
    for student, row in report.students.items():
        stamp = row["timestamp"][:19] if row["timestamp"] else "-"
        late = f"yes ({row['late_by']})" if row["late"] else ""
        table.add_row(*map(escape, (student, row["file"], row["status"], stamp, late)))
    out.print(table)
    for student, row in report.students.items():
        for note in row["notes"]:
            out.print(escape(f"  {student}: {note}"), soft_wrap=True)
    skipped = _skipped(report)
    if skipped:
        table = Table(title="Not collected")
        table.add_column("file in the export", overflow="fold")
        table.add_column("why", overflow="fold")
        for path, why in skipped:
            table.add_row(escape(path), escape(why))
        out.print(table)
    counts = report.counts()
    late = sum(1 for row in report.students.values() if row["late"])
    parts = [f"{counts[NEW]} new", f"{counts[UPDATED]} updated", f"{counts[UNCHANGED]} unchanged"]
    if counts[KEPT_NEWER]:
        parts.append(f"{counts[KEPT_NEWER]} kept newer")
    verb = "would be collected" if report.dry_run else "collected"
    out.print(
        f"{len(report.students)} student(s) {verb}: {', '.join(parts)}; {late} late; "
        f"{len(skipped)} file(s) skipped",
        soft_wrap=True,
    )
    if report.dry_run:
        out.print(
            escape(f"Next: run it again without --dry-run, then autograder grade {report.assignment}"),
            soft_wrap=True,
        )
    else:
        out.print(escape(f"Next: autograder grade {report.assignment}"), soft_wrap=True)


def _skipped(report: Report) -> list[tuple[str, str]]:
    rows = [(p, "not a notebook") for p in report.not_notebooks]
    rows += [(p, "matched no student (the file-name pattern did not match)") for p in report.unmatched]
    rows += [(r["file"], r["reason"]) for r in report.refused]
    rows += [(p, f"another notebook of {s['student']}") for s in report.several for p in s["ignored"]]
    return sorted(rows)


def run(course: Course, args, out, err) -> int:
    """The ``collect`` subcommand."""
    report = collect(
        course,
        args.assignment,
        args.export,
        lms=args.lms,
        regex=args.pattern,
        due_text=args.due,
        dry_run=args.dry_run,
    )
    _print(report, out)
    if not report.students:
        raise CourseError(
            "no notebook could be collected: every matched file was refused (see 'Not collected' above)"
        )
    return 0
