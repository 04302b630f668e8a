"""A submission's grading record: what the grader decided for one student and one assignment, kept as JSON in
``.autograder/<assignment>/records/<student>.json`` (written atomically). Read by every later step: ``grade`` (to
skip what is unchanged), ``feedback``, ``export`` and Gradescope's results."""

from __future__ import annotations

import dataclasses
import json
import pathlib

from .course import Course
from .notebooks import atomic_write

GRADED, FAILED = "graded", "failed"


@dataclasses.dataclass
class Record:
    """One submission's outcome; saved as its record."""

    student: str
    assignment: str
    status: str  # graded | failed
    reason: str = ""  # why it failed, for the instructor
    repairs: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    scores: dict[str, float] = dataclasses.field(default_factory=dict)  # test grade id -> automatic score
    points: dict[str, float] = dataclasses.field(default_factory=dict)  # test grade id -> points available
    needs_manual: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    fingerprint: str = ""
    graded_at: str = ""
    worker: str = ""  # where it was graded: the machine, and the Dask worker's address
    stages: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per stage of grading it

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def save(self, path: pathlib.Path) -> None:
        atomic_write(path, json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: pathlib.Path) -> Record | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def record_path(course: Course, assignment: str, student: str) -> pathlib.Path:
    return course.state(assignment) / "records" / f"{student}.json"


def by_student(folder: pathlib.Path, load) -> dict:
    """student -> what ``load`` makes of each ``<student>.json`` in ``folder`` (files it cannot read are left
    out): the records here, and the other per-student files kept beside them (``autograder.intake``)."""
    loaded = (load(path) for path in (sorted(folder.glob("*.json")) if folder.is_dir() else []))
    return {item.student: item for item in loaded if item is not None}


def records(course: Course, assignment: str) -> dict[str, Record]:
    """Every student's record of ``assignment`` (unreadable ones are left out)."""
    return by_student(course.state(assignment) / "records", Record.load)
