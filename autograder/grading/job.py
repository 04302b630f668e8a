"""One submission: the job a worker receives (plain data; it may run on another machine) and ``grade_job``, which
grades it with ``nbgrader autograde`` in a scratch course of its own, the student's code in the sandbox."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import pathlib
import shutil
import socket
import tempfile
import time

import nbformat

from .. import submission as submissions
from ..course import Course
from ..records import FAILED, GRADED, Record
from ..sandbox import datasets, warm
from .nbgrader_run import grading_env, run_nbgrader, warn_once
from .prepare import GradingSetup, WorkerKit, sha256
from .readout import cell_errors, executor_notes, failure_reason, first_error, sandbox_stopped


def find_notebook(course: Course, student: str, assignment: str) -> tuple[pathlib.Path | None, str]:
    folder = course.submitted(student, assignment)
    expected = folder / f"{assignment}.ipynb"
    if expected.exists():
        return expected, ""
    found = sorted(folder.glob("*.ipynb"))
    if len(found) == 1:
        return found[0], f"graded {found[0].name} (expected the name {assignment}.ipynb)"
    return None, ""


def stamp(course: Course, student: str, assignment: str) -> bytes:
    stamp = course.submitted(student, assignment) / "timestamp.txt"
    return stamp.read_bytes() if stamp.exists() else b""


def fingerprint(course: Course, setup: GradingSetup, student: str, data: bytes | None = None) -> str:
    """What a record must match to count as "graded, nothing changed": the submitted bytes (read here unless
    given), the timestamp, and the setup key (source, config, grading settings)."""
    if data is None:
        path, _ = find_notebook(course, student, setup.assignment)
        data = path.read_bytes() if path else b""
    return sha256(data, stamp(course, student, setup.assignment), setup.key.encode())


def sandbox_steps() -> list[str]:
    """nbgrader's autograde steps with its Execute replaced by the sandboxed one (autograder.sandbox.execute)."""
    return [
        "autograder.sandbox.execute.SandboxedExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]


def sandbox_config(job: Job, slot: int, zygote: str | None = None) -> str:
    """The lines added to a worker's nbgrader_config.py: its own SQLite gradebook (whatever database the course
    uses), and nbgrader's Execute step replaced by the sandboxed one (autograder.sandbox.execute). Trusted
    submissions (no sandbox here, ``--trust-submissions``) keep stock nbgrader's kernel."""
    lines = (
        "\n# Added by the grader for this submission only.\nc.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
    )
    if not job.kit.isolate:
        return lines
    return lines + (
        f"c.Autograde.autograde_preprocessors = {sandbox_steps()!r}\n"
        f"c.SandboxedExecute.slot = {int(slot)!r}\n"
        f"c.SandboxedExecute.timeout = {job.cell_timeout!r}\n"
        f"c.SandboxedExecute.limits = {dict(job.limits)!r}\n"
        f"c.SandboxedExecute.zygote = {zygote or ''!r}\n"
    )


@dataclasses.dataclass
class Job:
    """One submission to grade: everything a worker needs, as plain data (it may run on another machine)."""

    student: str
    notebook: bytes
    timestamp: str | None
    kit: WorkerKit
    submission_timeout: int
    cell_timeout: int
    limits: dict
    fingerprint: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    scratch: str | None = None  # where the work folder goes (None: the worker's temporary directory)
    warm_start: bool = True  # fork nbgrader from a fork server (grading.forkserver) where one can run
    warm_sandbox: bool = True  # fork the sandbox from the slot's warm sandbox (sandbox.warm) where one can isolate

    @property
    def assignment(self) -> str:
        return self.kit.assignment


@dataclasses.dataclass
class JobOutput:
    """What a worker sends back: the record, the autograded folder's files and the gradebook rows to write."""

    record: Record
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # autograded/<student>/<a>/, by path
    grades: dict[str, tuple[float | None, bool]] = dataclasses.field(default_factory=dict)  # auto, needs manual
    comments: dict[str, str | None] = dataclasses.field(default_factory=dict)
    penalty: float | None = None
    timestamp: str | None = None  # the submission's timestamp as nbgrader parsed it (ISO 8601)
    log: str = ""  # nbgrader's log of this submission
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # graded cell -> 'Name: message'
    first_error: str = ""


def job_for(course: Course, setup: GradingSetup, kit: WorkerKit, student: str) -> Job | Record:
    """The job of one student's submission, or a failed result when there is nothing to grade."""
    path, note = find_notebook(course, student, setup.assignment)
    if path is None:
        result = Record(student, setup.assignment, FAILED, points=dict(setup.points))
        result.reason = f"no notebook in submitted/{student}/{setup.assignment}/"
        return result
    data = path.read_bytes()
    return Job(
        student=student,
        notebook=data,
        timestamp=stamp(course, student, setup.assignment).decode(errors="replace").strip() or None,
        kit=kit,
        submission_timeout=course.settings.submission_timeout,
        cell_timeout=course.cell_timeout,
        limits=dict(course.settings.sandbox_limits),
        fingerprint=fingerprint(course, setup, student, data),
        notes=[note] if note else [],
        warm_start=course.settings.warm_start,
        warm_sandbox=course.settings.warm_sandbox,
    )


def where() -> str:
    """This machine's name, and the address of the Dask worker running this task (when one is)."""
    try:
        from distributed import get_worker

        return f"{socket.gethostname()} {get_worker().address}"
    except (ImportError, ValueError):
        return socket.gethostname()


SLOTS = 256  # grading slots per machine: the sandbox's user ids (61000 + slot) never collide below this


@contextlib.contextmanager
def grading_slot():
    """A grading slot no other grading on this machine holds (a lock file per slot, so worker processes of a
    cluster that share a machine never share a sandbox user); first the slots this process has warm sandboxes
    for."""
    folder = pathlib.Path(tempfile.gettempdir()) / "autograder-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    preferred = warm.slots()
    for slot in [*preferred, *(s for s in range(1, SLOTS + 1) if s not in preferred)]:
        handle = open(folder / f"{slot}.lock", "a+")  # noqa: SIM115 (held until the grading ends)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        try:
            yield slot
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise RuntimeError(f"all {SLOTS} grading slots of this machine are busy")


def grade_job(job: Job) -> JobOutput:
    """Grade one submission in a scratch course of its own with ``nbgrader autograde`` (the student's code in the
    sandbox). Runs wherever the job was sent: in the grader's process, or on a Dask worker on another machine.
    Needs only this package, nbgrader and bubblewrap there; never the course directory or its gradebook."""
    start = time.monotonic()
    kit = job.kit
    result = Record(job.student, job.assignment, FAILED, points=dict(kit.points), notes=list(job.notes))
    result.fingerprint = job.fingerprint
    result.worker = where()
    outcome = JobOutput(result)
    try:
        nb, result.repairs = submissions.prepare(
            job.notebook, nbformat.from_dict(kit.student_version), f"{job.student}'s notebook"
        )
    except submissions.Unreadable as err:
        result.reason = str(err)
        result.seconds = time.monotonic() - start
        return outcome

    if job.scratch:
        pathlib.Path(job.scratch).mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"{job.student}-", dir=job.scratch))
    try:
        with grading_slot() as slot:
            grade_in(job, nb, work, slot, outcome)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return outcome


def grade_in(job: Job, nb, work: pathlib.Path, slot: int, outcome: JobOutput) -> None:
    from nbgrader.api import Gradebook

    result, kit, student, assignment = outcome.record, job.kit, job.student, job.assignment
    stages, clock = result.stages, time.monotonic()
    (work / "submitted" / student / assignment).mkdir(parents=True)
    env = grading_env(kit.standin)
    zygote = None
    if kit.isolate:  # the sandbox gets the training splits only, built once per worker process
        env[datasets.ENV] = str(datasets.training_splits(env))
        if job.warm_sandbox:
            started = time.monotonic()
            zygote = warm.socket_for(env, slot, log=warn_once)  # started on first use in this slot
            stages["warm_sandbox"] = round(time.monotonic() - started, 3)
    (work / "nbgrader_config.py").write_text(kit.config + sandbox_config(job, slot, zygote), encoding="utf-8")
    (work / "gradebook.db").write_bytes(kit.gradebook)
    nbformat.write(nb, work / "submitted" / student / assignment / f"{assignment}.ipynb")
    if job.timestamp:
        (work / "submitted" / student / assignment / "timestamp.txt").write_text(job.timestamp)
    limit = job.submission_timeout
    log = work / "nbgrader.log"
    stages["prepare"] = round(time.monotonic() - clock - stages.get("warm_sandbox", 0.0), 3)
    clock = time.monotonic()
    status = run_nbgrader(
        ["autograde", assignment, "--student", student],
        work,
        env,
        limit,
        log,
        warm_start=job.warm_start,
    )
    stages["nbgrader"] = round(time.monotonic() - clock, 3)
    clock = time.monotonic()
    outcome.log = log.read_text(errors="replace") if log.exists() else ""
    graded = work / "autograded" / student / assignment / f"{assignment}.ipynb"
    if status is None:
        result.reason = f"grading took longer than the limit of {limit} s for one submission (submission_timeout)"
        return
    if status != 0 or not graded.exists():
        result.reason = failure_reason(outcome.log)
        return

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        for grade in notebook.grades:
            outcome.grades[grade.name] = (grade.auto_score, bool(grade.needs_manual_grade))
            if grade.name in kit.points:
                result.scores[grade.name] = float(grade.auto_score or 0.0)
                if grade.needs_manual_grade:
                    result.needs_manual.append(grade.name)
        outcome.comments = {c.name: c.auto_comment for c in notebook.comments}
        outcome.penalty = notebook.late_submission_penalty
        penalty = float(notebook.late_submission_penalty or 0.0)
        stamp = gradebook.find_submission(assignment, student).timestamp
        outcome.timestamp = stamp.isoformat() if stamp else None
    if penalty:
        result.notes.append(f"late penalty of {penalty:g} points (nbgrader's late-submission plugin)")
    folder = graded.parent
    outcome.files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    autograded = nbformat.read(graded, as_version=4)
    inside = autograded.metadata.get("autograder", {}).get("seconds", {})  # the sandboxed executor's own stages
    stages.update({k: float(v) for k, v in inside.items() if isinstance(v, (int, float))})
    outcome.errors, outcome.first_error = cell_errors(autograded), first_error(autograded)
    for grade_id, error in outcome.errors.items():
        if error.startswith(("CellTimeoutError", "TimeLimit")):
            result.notes.append(f"cell {grade_id!r} was stopped at the per-cell limit of {job.cell_timeout} s")
    stopped = sandbox_stopped(autograded)
    if stopped:
        result.notes.append(stopped)
    result.notes.extend(executor_notes(autograded))
    if not kit.isolate:
        result.notes.append("graded WITHOUT the sandbox (--trust-submissions)")
    result.status = GRADED
    result.graded_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    stages["readout"] = round(time.monotonic() - clock, 3)
