"""Reading an LMS export: its files (a zip or a folder, never extracted), the LMS's file-name patterns, which
pattern fits, and the student id each notebook's name gives.

* File names are matched with nbgrader's own ``FileNameCollectorPlugin`` (the plugin of ``nbgrader zip_collect``):
  a regular expression with the named group ``student_id`` and, optionally, ``timestamp``, ``late``, ``uid`` (the
  LMS's own number for the person) and ``upload_id`` (the LMS's number for the uploaded file, higher for a later
  upload), applied to each file's path inside the export, ``/``-separated. The built-in patterns are in
  ``PATTERNS``; a course adds its own in ``c.Autograder.lms_patterns``; ``--pattern`` gives one on the command
  line. ``--lms auto`` picks the pattern that fits the export (``choose_pattern``).
* Only notebooks are taken: ``.ipynb`` in any case, and ``.ipynb.txt`` / ``.ipynb.json`` (a notebook a browser or
  an editor saved with one more extension); ``notebook_name`` says which. Any other file is listed as skipped and
  never written anywhere, but a built-in pattern's ``person`` expression still reads whose it is, so that a
  student who uploaded only a PDF is reported as having no notebook. Zip members are read in memory (at most
  ``MAX_NOTEBOOK_BYTES`` each): nothing from the export is extracted to disk but the chosen notebooks, written
  under names the collect stage makes, so a member named ``../../x.ipynb`` cannot escape.

Times without a time zone (Blackboard's file names) are taken as UTC.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import pathlib
import re
import unicodedata
import warnings
import zipfile
import zlib

from .. import grading
from ..course import Course, CourseError

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024  # a Colab notebook with outputs is a few MB; more is not a notebook to grade
MAX_FILES = 100_000  # entries of an export; an LMS export of one assignment has a few per student
MAX_ID_LENGTH = 100
SYSTEM_FOLDERS = {"__MACOSX"}  # macOS's resource forks in zips made by Finder

_ANY_FOLDERS = r"(?:[^/]+/)*"  # the export's own folder(s), when someone zipped the folder of an export
_BLACKBOARD_TIME = r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}"
_CANVAS_PERSON = r"(?P<student_id>[^/_]+)(?P<late>(?i:_late))?_(?P<uid>\d+)"
_MOODLE_PERSON = r"(?:[^/]+/)*?(?P<student_id>[^/]+?)_(?P<uid>\d+)_assignsubmission_"
_BLACKBOARD_PERSON = r"[^/]*_(?P<student_id>[^_/]+)_attempt_(?P<timestamp>" + _BLACKBOARD_TIME + ")"
NOTEBOOK_ENDINGS = (".ipynb", ".ipynb.txt", ".ipynb.json")  # in any case: A2.IPYNB, a2.ipynb.txt


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A named file-name pattern of an LMS export."""

    name: str
    regex: str
    example: str = ""
    full_names: bool = False  # student_id is a person's full name: the student id is a slug of it
    person: str = ""  # matched against the other files: whose they are (student_id, uid, late, timestamp)


PATTERNS = {
    p.name: p
    for p in (
        # <sortable name>[_LATE]_<user id>_<attachment id>_<display name>; a file uploaded again under the same
        # name gets -1, -2 before its extension; a text entry is <name>[_LATE]_<user id>_text.html.
        Pattern(
            "canvas",
            _ANY_FOLDERS + _CANVAS_PERSON + r"_(?P<upload_id>\d+)_(?P<file_id>[^/]+)\.ipynb\Z",
            "lovelaceada_LATE_4711_982301_a2_conv_arithmetic-1.ipynb",
            person=_ANY_FOLDERS + _CANVAS_PERSON + r"_(?:\d+_[^/]+|text\.html|link\.html)\Z",
        ),
        # <full name>_<participant id>_assignsubmission_file/<name> (Moodle 3.1 and later; older ones wrote
        # ..._file_/<name>; without "download submissions in folders": ..._file_<name>).
        Pattern(
            "moodle",
            _MOODLE_PERSON + r"file(?:_/|_|/)" + _ANY_FOLDERS + r"(?P<file_id>[^/]+)\.ipynb\Z",
            "Ada Lovelace_123456_assignsubmission_file/a2_conv_arithmetic.ipynb",
            full_names=True,
            person=_MOODLE_PERSON + r"[a-z]+(?:_/|_|/)",
        ),
        # <assignment>_<username>_attempt_<time>_<name>, and the receipt ..._<time>.txt
        Pattern(
            "blackboard",
            _ANY_FOLDERS + _BLACKBOARD_PERSON + r"(?:_(?P<file_id>[^/]+))?\.ipynb\Z",
            "A2 Conv Arithmetic_alovelace_attempt_2026-10-01-23-59-00_a2_conv_arithmetic.ipynb",
            person=_ANY_FOLDERS + _BLACKBOARD_PERSON + r"(?:_[^/]+)?\.[^/.]+\Z",
        ),
        Pattern(
            "folders",
            r"(?P<student_id>[^/]+)/" + _ANY_FOLDERS + r"(?P<file_id>[^/]+)\.ipynb\Z",
            "alovelace/a2_conv_arithmetic.ipynb",
            person=r"(?P<student_id>[^/]+)/",
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


def notebook_name(path: str) -> str | None:
    """``path`` as the patterns see it when the file is a notebook by its name (``.ipynb`` in any case, or with
    ``.txt`` or ``.json`` after it): ending in ``.ipynb``. None for any other file."""
    lower = path.lower()
    for ending in NOTEBOOK_ENDINGS:
        if lower.endswith(ending) and len(path) > len(ending) and not path[: -len(ending)].endswith("/"):
            return path[: -len(ending)] + ".ipynb"
    return None


def match(pattern: Pattern, paths: list[str], common_folder: str | None = None) -> Matching:
    """Match every notebook's path (as ``notebook_name`` gives it) with nbgrader's ``FileNameCollectorPlugin``.
    When the whole export sits in one folder (someone zipped the export's folder), the paths are also tried
    without it; the better of the two counts."""
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    plugin = FileNameCollectorPlugin(named_regexp=pattern.regex, valid_ext=[".ipynb"], log=_QUIET)
    best = None
    for prefix in [""] + ([common_folder + "/"] if common_folder else []):
        found = {}
        for path in paths:
            name = notebook_name(path)
            groups = plugin.collect(name[len(prefix) :]) if name and name.startswith(prefix) else None
            if groups and (groups.get("student_id") or "").strip():
                found[path] = groups
        candidate = Matching(pattern, found, prefix.rstrip("/"))
        if best is None or candidate.score > best.score:
            best = candidate
    return best


def owners(matching: Matching, paths: list[str]) -> dict[str, dict]:
    """Whose the files ``paths`` (not notebooks, or notebooks the pattern did not match) are, by the pattern's
    ``person`` expression: path -> its groups (student_id, and uid, late, timestamp when the LMS gives them)."""
    if not matching.pattern.person:
        return {}
    prefix = matching.stripped + "/" if matching.stripped else ""
    person = re.compile(matching.pattern.person)
    found = {}
    for path in paths:
        hit = person.match(path[len(prefix) :]) if path.startswith(prefix) else None
        if hit and (hit.groupdict().get("student_id") or "").strip():
            found[path] = hit.groupdict()
    return found


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
