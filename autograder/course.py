"""A grading course directory: where things live, and the grader's settings.

A course directory is an nbgrader course directory (``nbgrader_config.py``, ``source/<assignment>/``); this
repository's root is one. The grader adds ``.autograder/`` (its records, logs and scratch space; never edit it by
hand) and writes ``submitted/``, ``autograded/``, ``feedback/``, ``exports/`` and the gradebook as nbgrader does.

The grader's own settings sit in the same ``nbgrader_config.py`` under ``c.Autograder``::

    c.Autograder.submission_timeout = 1800   # seconds of wall time for one submission, all cells together
    c.Autograder.workers = 2                 # submissions graded at once (default: the number of CPU cores)
    c.Autograder.standin_data = False        # True only for testing the course: grade on stand-in datasets
    c.Autograder.lms_patterns = {"mylms": r"(?P<student_id>[^/]+)/(?P<file_id>[^/]+)\\.ipynb"}
    c.Autograder.sandbox_limits = {"memory_mb": 8192}   # see autograder/SANDBOX.md for the limits and defaults
    c.Autograder.trust_submissions = False   # True: grade WITHOUT the sandbox where it is missing (trusted only)
    c.Autograder.warm_start = True           # fork each grading from a fork server (grading/forkserver.py)
    c.Autograder.warm_sandbox = True         # fork each sandbox from the slot's warm sandbox (sandbox/zygote.py)

The per-cell time limit is nbgrader's own ``c.Execute.timeout``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from traitlets import Bool, Dict, Integer
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "nbgrader_config.py"


class CourseError(Exception):
    """Something about the course directory or the command is wrong; the message says what to do."""


class Autograder(Configurable):
    """Settings of the course's grader (``c.Autograder.*`` in ``nbgrader_config.py``)."""

    submission_timeout = Integer(
        1800, help="Wall-clock seconds one submission may take to grade, all cells together."
    ).tag(config=True)
    workers = Integer(0, help="Submissions graded at once; 0 means one per CPU core.").tag(config=True)
    standin_data = Bool(
        False,
        help="Grade on the course's stand-in datasets instead of the real ones (testing the course only).",
    ).tag(config=True)
    lms_patterns = Dict(
        {}, help="Extra LMS export file-name patterns for `collect`, by name (regular expressions)."
    ).tag(config=True)
    sandbox_limits = Dict(
        {},
        help="Overrides of the sandbox's limits by name (cpu_seconds, memory_mb, processes, file_mb, open_files, "
        "tmp_mb, output_chars); see autograder/SANDBOX.md.",
    ).tag(config=True)
    trust_submissions = Bool(
        False,
        help="Grade without the sandbox when it is unavailable (only for submissions you trust).",
    ).tag(config=True)
    canary = Bool(
        True,
        help="Before a batch, grade the instructor's own solution and refuse the batch unless it gets full marks.",
    ).tag(config=True)
    warm_start = Bool(
        True,
        help="Fork each submission's nbgrader from a process with nbgrader and TensorFlow already imported "
        "(autograder/grading/forkserver.py); False: start nbgrader afresh for each submission.",
    ).tag(config=True)
    warm_sandbox = Bool(
        True,
        help="Fork each submission's sandboxed process from the grading slot's warm sandbox, which has the "
        "student's libraries imported (autograder/sandbox/zygote.py), with a fresh /tmp, PID, mount and network "
        "namespace of its own; False, or where a warm sandbox cannot isolate: start a cold sandbox each time.",
    ).tag(config=True)


@dataclasses.dataclass
class Course:
    root: pathlib.Path
    config: Config
    settings: Autograder

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, db_url: str | None = None) -> Course:
        """The course at ``root``; ``db_url`` (``--db``) replaces the gradebook of ``nbgrader_config.py``."""
        root = pathlib.Path(root or os.getcwd()).resolve()
        if not (root / CONFIG_FILE).exists():
            raise CourseError(
                f"{root} is not a course directory: it has no {CONFIG_FILE}. Run the command from the course "
                "directory (the repository root) or pass --course DIR."
            )
        config = PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()
        if db_url:
            if "://" not in db_url:
                raise CourseError(
                    f"--db {db_url!r} is not a database URL; write it like "
                    "postgresql://USER:PASSWORD@HOST:5432/DATABASE or sqlite:////absolute/path/gradebook.db"
                )
            config.CourseDirectory.db_url = db_url
        return cls(root, config, Autograder(config=config))

    # ---------------------------------------------------------------------------------------------- paths
    @property
    def db_url(self) -> str:
        url = self.config.get("CourseDirectory", {}).get("db_url")
        return url or f"sqlite:///{self.root / 'gradebook.db'}"

    @property
    def course_id(self) -> str:
        return self.config.get("CourseDirectory", {}).get("course_id") or "default_course"

    def gradebook(self):
        """nbgrader's gradebook of the course (a context manager)."""
        from nbgrader.api import Gradebook

        return Gradebook(self.db_url, self.course_id)

    def source_notebook(self, assignment: str) -> pathlib.Path:
        return self.root / "source" / assignment / f"{assignment}.ipynb"

    def submitted(self, student: str, assignment: str) -> pathlib.Path:
        return self.root / "submitted" / student / assignment

    def autograded(self, student: str, assignment: str) -> pathlib.Path:
        return self.root / "autograded" / student / assignment

    def feedback(self, student: str, assignment: str) -> pathlib.Path:
        return self.root / "feedback" / student / assignment

    def state(self, assignment: str) -> pathlib.Path:
        """The grader's own records for one assignment."""
        return self.root / ".autograder" / assignment

    def assignments(self) -> list[str]:
        return sorted(p.parent.name for p in (self.root / "source").glob("*/*.ipynb") if p.stem == p.parent.name)

    def check_assignment(self, assignment: str) -> None:
        if not self.source_notebook(assignment).exists():
            known = ", ".join(self.assignments()) or "none"
            raise CourseError(
                f"no assignment {assignment!r} in {self.root / 'source'} (there is no "
                f"source/{assignment}/{assignment}.ipynb). Assignments of this course: {known}."
            )

    def students_submitted(self, assignment: str) -> list[str]:
        folder = self.root / "submitted"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / assignment).is_dir())

    @property
    def cell_timeout(self) -> int:
        return int(self.config.get("Execute", {}).get("timeout", 30))

    @property
    def workers(self) -> int:
        return self.settings.workers or os.cpu_count() or 1
