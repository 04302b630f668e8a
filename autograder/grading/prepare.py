"""The grading setup of an assignment, made once per command: the assignment in the course gradebook, and a course
directory holding only this assignment (its config, a SQLite gradebook, the student version) from which every
submission is graded; ``WorkerKit`` is what a worker, here or on another machine, receives of it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import pathlib
import shutil
import tempfile

import nbformat

from .. import notebooks
from ..course import Course, CourseError
from .nbgrader_run import grading_env, run_nbgrader


def sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


@dataclasses.dataclass
class GradingSetup:
    """An assignment made ready for grading, on the grading command's machine."""

    assignment: str
    folder: pathlib.Path  # a course directory holding config + gradebook.db with only this assignment
    student_version: nbformat.NotebookNode
    key: str  # changes when the source, the config or the grading settings change
    points: dict[str, float]
    env: dict[str, str]
    isolate: bool = True  # False only when the submissions were declared trusted and there is no sandbox
    standin: bool = False

    def kit(self) -> WorkerKit:
        """What a worker, on this machine or another, needs of the setup: plain data, no paths."""
        return WorkerKit(
            assignment=self.assignment,
            key=self.key,
            points=dict(self.points),
            config=(self.folder / "nbgrader_config.py").read_text(encoding="utf-8"),
            gradebook=(self.folder / "gradebook.db").read_bytes(),
            student_version=json.loads(nbformat.writes(self.student_version)),
            isolate=self.isolate,
            standin=self.standin,
        )


@dataclasses.dataclass
class WorkerKit:
    """The grading setup as a worker receives it (sent once per batch to every worker of a cluster)."""

    assignment: str
    key: str
    points: dict[str, float]
    config: str  # the course's nbgrader_config.py
    gradebook: bytes  # a SQLite gradebook holding only this assignment
    student_version: dict
    isolate: bool
    standin: bool


@contextlib.contextmanager
def locked(path: pathlib.Path):
    """An exclusive lock on ``path`` (a file), held by this process until the block ends: two grading commands
    on one course never rebuild the same assignment's setup at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup_folder(course: Course, assignment: str) -> pathlib.Path:
    """The grading setup's course directory (its config, its gradebook, ``release/`` with the student version)."""
    return course.state(assignment) / "setup"


def sqlite(path: pathlib.Path) -> str:
    return f"--CourseDirectory.db_url=sqlite:///{path}"


def prepare(course: Course, assignment: str, standin: bool, isolate: bool = True) -> GradingSetup:
    """Make sure the course gradebook knows the assignment, and build the grading setup used by every worker."""
    course.check_assignment(assignment)
    state = course.state(assignment)
    state.mkdir(parents=True, exist_ok=True)
    with locked(state / "prepare.lock"):
        return _build(course, assignment, standin, isolate, state)


def _build(course: Course, assignment: str, standin: bool, isolate: bool, state: pathlib.Path) -> GradingSetup:
    from nbgrader.api import Gradebook, MissingEntry

    source = course.source_notebook(assignment).read_bytes()
    config = (course.root / "nbgrader_config.py").read_bytes()
    settings = json.dumps(
        {
            "standin": standin,
            "submission_timeout": course.settings.submission_timeout,
            "isolate": isolate,
            "limits": dict(course.settings.sandbox_limits),
        },
        sort_keys=True,
    ).encode()
    key = sha256(source, config, settings)
    env = grading_env(standin)

    # The course gradebook: (re)generate the assignment there when its source changed since the last time.
    marker = state / "source.sha256"
    in_gradebook = True
    with course.gradebook() as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            in_gradebook = False
    source_key = sha256(source, config, course.db_url.encode())
    if not in_gradebook or not marker.exists() or marker.read_text() != source_key:
        with tempfile.TemporaryDirectory(prefix="release-", dir=state) as scratch:
            status = run_nbgrader(
                [
                    "generate_assignment",
                    assignment,
                    "--force",
                    f"--CourseDirectory.release_directory={scratch}",
                    f"--CourseDirectory.db_url={course.db_url}",
                ],
                course.root,
                env,
                600,
                state / "generate.log",
            )
        if status != 0:
            raise CourseError(
                f"nbgrader could not add {assignment} to the gradebook; see {state / 'generate.log'}. If the "
                "source lost a graded cell that already has grades, restore the cell or remove those submissions."
            )
        marker.write_text(source_key)

    folder = setup_folder(course, assignment)
    if not (folder / "key").exists() or (folder / "key").read_text() != key:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "source" / assignment).mkdir(parents=True)
        shutil.copy(course.root / "nbgrader_config.py", folder / "nbgrader_config.py")
        shutil.copy(course.source_notebook(assignment), folder / "source" / assignment / f"{assignment}.ipynb")
        status = run_nbgrader(
            ["generate_assignment", assignment, "--force", sqlite(folder / "gradebook.db")],
            folder,
            env,
            600,
            folder / "generate.log",
        )
        if status != 0:
            log_file = folder / "generate.log"
            raise CourseError(f"nbgrader generate_assignment failed for {assignment}; see {log_file}")
        (folder / "key").write_text(key)
    # Due date (for lateness) from the course gradebook, every time: it may have been set since.
    with course.gradebook() as gradebook:
        due = gradebook.find_assignment(assignment).duedate
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        gradebook.update_or_create_assignment(assignment, duedate=due)
    student_version = nbformat.read(folder / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    points = notebooks.points(nbformat.read(course.source_notebook(assignment), as_version=4))
    return GradingSetup(assignment, folder, student_version, key, points, env, isolate, standin)
