"""Grade a class's submissions through nbgrader, several at once, without ever corrupting the gradebook.

How a batch runs (``grade``):

1. The assignment is put in the course gradebook (``nbgrader generate_assignment`` with the student version written
   to a scratch folder, so ``release/`` is left alone), and a *template* course is made once: a gradebook holding
   only this assignment, and the student version to repair submissions against.
2. Unless disabled, the instructor's own solution is graded first (the *canary*). If it does not get full marks,
   the grading environment is broken (a dataset missing under strict data, a library too old) and the batch is
   refused before any student gets a wrong grade.
3. Each submission is read and repaired (``autograder.submission``), then graded by ``nbgrader autograde`` in its
   own throw-away course directory with its own copy of the template gradebook, as a separate process group with
   a wall-clock limit. That process is forked from a template process that imported nbgrader and TensorFlow once
   (``autograder.warm``), so it starts warm but from a clean state every time. N of these run at once. A
   submission that cannot be graded gets a status and a reason; the batch goes on.
4. Only the main process writes the course gradebook, one finished submission at a time, in one transaction each:
   it sets the automatic scores and comments and never touches manual grades. Then the submission's record is
   written (``.autograder/<assignment>/records/<student>.json``, atomically). A record whose fingerprint (the
   submitted bytes, the timestamp, the assignment's source and the grading settings) still matches means "graded,
   nothing changed": a re-run skips it, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

import nbformat
from sqlalchemy.exc import SAWarning

from . import submission as submissions
from . import warm
from .course import Course, CourseError
from .processes import die_with_parent, kill_tree
from .sandbox import private_view

CANARY = "instructor-solution"
GRADED, FAILED = "graded", "failed"


# ------------------------------------------------------------------------------------------------ records
@dataclasses.dataclass
class Result:
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

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def save(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: pathlib.Path) -> Result | None:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None


def record_path(course: Course, assignment: str, student: str) -> pathlib.Path:
    return course.state(assignment) / "records" / f"{student}.json"


def records(course: Course, assignment: str) -> dict[str, Result]:
    folder = course.state(assignment) / "records"
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        result = Result.load(path)
        if result is not None:
            out[result.student] = result
    return out


# ------------------------------------------------------------------------------------------- environment
def grading_env(standin: bool) -> dict[str, str]:
    """The environment of every nbgrader process and kernel: fixed seeds, quiet TensorFlow, no GUI backends, and
    strict data (a missing dataset is an error) unless stand-ins were asked for explicitly. Built on the machine
    that runs nbgrader (a cluster worker builds its own), from that machine's Python environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNBOOK_", "JPY_", "NBGRADER_"))}
    env.update(
        PATH=f"{_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONHASHSEED="0",
        CNNBOOK_SEED="42",
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="3",
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
    )
    if standin:
        env["CNNBOOK_STANDIN"] = "1"
    else:
        env["CNNBOOK_STRICT_DATA"] = "1"
    return env


def _bin_dir() -> pathlib.Path:
    """Where this Python environment's commands (nbgrader, alembic) are."""
    return pathlib.Path(sys.executable).parent


def run_nbgrader(args: list[str], cwd: pathlib.Path, env: dict, timeout: float | None, log, warm_start=False):
    """Run ``nbgrader ARGS`` as its own process group; kill the whole group (kernel included) on timeout.
    Returns the exit status, or None when it ran out of time. ``warm_start``: fork it from a template process
    that has nbgrader and TensorFlow imported already (``autograder.warm``), when one can run here."""
    if warm_start:
        template = warm.template_for(env, log=_warn_once)
        if template is not None:
            try:
                pid = template.start(args, str(cwd), env, str(log))
            except OSError as err:
                _warn_once(f"warm start failed ({err}): starting nbgrader afresh")
            else:
                try:
                    status = template.wait(pid, timeout)
                except OSError:  # the template died, and the child with it
                    status = 1
                if status is None:
                    kill_tree(pid)
                    with contextlib.suppress(OSError):
                        template.wait(pid, 30)
                return status
    command = [str(_bin_dir() / "nbgrader"), *args]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_grading_child if sys.platform.startswith("linux") else None,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The kernel runs in a session of its own (jupyter_client starts it so): kill the whole tree.
            kill_tree(process.pid)
            return None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _grading_child() -> None:
    """In nbgrader's process before it execs: die with the grader, and (root) take the private view of the file
    system it keeps once it drops root (``autograder.sandbox.private_view``)."""
    die_with_parent()
    if os.geteuid() == 0:
        private_view()


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"autograder: {message}", file=sys.stderr, flush=True)


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ template
@dataclasses.dataclass
class Template:
    assignment: str
    folder: pathlib.Path  # a course directory holding config + gradebook.db with only this assignment
    student_version: nbformat.NotebookNode
    key: str  # changes when the source, the config or the grading settings change
    points: dict[str, float]
    env: dict[str, str]
    isolate: bool = True  # False only when the submissions were declared trusted and there is no sandbox
    standin: bool = False

    def shipped(self) -> Shipped:
        """What a worker, on this machine or another, needs of the template: plain data, no paths."""
        return Shipped(
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
class Shipped:
    """The template as a worker receives it (sent once per batch to every worker of a cluster)."""

    assignment: str
    key: str
    points: dict[str, float]
    config: str  # the course's nbgrader_config.py
    gradebook: bytes  # a SQLite gradebook holding only this assignment
    student_version: dict
    isolate: bool
    standin: bool


def isolation(course: Course, trusted: bool, log=print, cluster: Cluster | None = None) -> bool:
    """Whether submissions run in the sandbox. Without a working sandbox (here, or on any worker of a remote
    cluster: that is where student code runs), refuse unless told they are trusted."""
    from .sandbox import isolation_problem

    problem = cluster.sandbox_problem() if cluster is not None and cluster.remote else isolation_problem()
    if problem is None:
        return True
    if not trusted:
        raise CourseError(
            f"student code cannot be isolated on this machine: {problem}. Grading untrusted code without the "
            "sandbox would let a submission read the hidden tests, change other grades or reach the network, so "
            "nothing was graded. Install bubblewrap (`make sandbox` on Debian), or, only if every submission is "
            "trusted (your own test notebooks), pass --trust-submissions."
        )
    log(
        "WARNING: NO SANDBOX. Student code runs with the grader's own rights, files and network "
        f"({problem}). Only for trusted submissions (--trust-submissions)."
    )
    return False


@contextlib.contextmanager
def _locked(path: pathlib.Path):
    """An exclusive lock on ``path`` (a file), held by this process until the block ends: two grading commands
    on one course never rebuild the same assignment's template at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite(path: pathlib.Path) -> str:
    return f"--CourseDirectory.db_url=sqlite:///{path}"


def prepare(course: Course, assignment: str, standin: bool, isolate: bool = True) -> Template:
    """Make sure the course gradebook knows the assignment, and build the template used by every worker."""
    course.check_assignment(assignment)
    state = course.state(assignment)
    state.mkdir(parents=True, exist_ok=True)
    with _locked(state / "prepare.lock"):
        return _prepare(course, assignment, standin, isolate, state)


def _prepare(course: Course, assignment: str, standin: bool, isolate: bool, state: pathlib.Path) -> Template:
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
    key = _sha256(source, config, settings)
    env = grading_env(standin)

    # The course gradebook: (re)generate the assignment there when its source changed since the last time.
    marker = state / "source.sha256"
    in_gradebook = True
    with course.gradebook() as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            in_gradebook = False
    source_key = _sha256(source, config, course.db_url.encode())
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

    folder = state / "template"
    if not (folder / "key").exists() or (folder / "key").read_text() != key:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "source" / assignment).mkdir(parents=True)
        shutil.copy(course.root / "nbgrader_config.py", folder / "nbgrader_config.py")
        shutil.copy(course.source_notebook(assignment), folder / "source" / assignment / f"{assignment}.ipynb")
        status = run_nbgrader(
            ["generate_assignment", assignment, "--force", _sqlite(folder / "gradebook.db")],
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
    points = {}
    for cell in nbformat.read(course.source_notebook(assignment), as_version=4).cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return Template(assignment, folder, student_version, key, points, env, isolate, standin)


# ----------------------------------------------------------------------------------------- one submission
def find_notebook(course: Course, student: str, assignment: str) -> tuple[pathlib.Path | None, str]:
    folder = course.submitted(student, assignment)
    expected = folder / f"{assignment}.ipynb"
    if expected.exists():
        return expected, ""
    found = sorted(folder.glob("*.ipynb"))
    if len(found) == 1:
        return found[0], f"graded {found[0].name} (expected the name {assignment}.ipynb)"
    return None, ""


def _stamp(course: Course, student: str, assignment: str) -> bytes:
    stamp = course.submitted(student, assignment) / "timestamp.txt"
    return stamp.read_bytes() if stamp.exists() else b""


def fingerprint(course: Course, template: Template, student: str, data: bytes | None = None) -> str:
    """What a record must match to count as "graded, nothing changed": the submitted bytes (read here unless
    given), the timestamp, and the template key (source, config, grading settings)."""
    if data is None:
        path, _ = find_notebook(course, student, template.assignment)
        data = path.read_bytes() if path else b""
    return _sha256(data, _stamp(course, student, template.assignment), template.key.encode())


def _cell_errors(nb) -> dict[str, str]:
    """grade id -> 'Name: message' of the error a graded cell raised."""
    out = {}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        for output in cell.get("outputs", []) if grade_id else []:
            if output.get("output_type") == "error":
                out[grade_id] = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return out


def _sandbox_stopped(nb) -> str:
    """The message of the first 'the sandbox stopped' error (the student's process died: a limit, its own exit)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") == "SandboxStopped":
                return str(output.get("evalue", ""))
    return ""


def _executor_notes(nb) -> list[str]:
    """What the sandboxed executor reported in the notebook's metadata: the student's names it refused to hand to
    the tests, and a grader process that had to keep root."""
    info = nb.metadata.get("autograder", {})
    notes = []
    refused = info.get("refused_names") or {}
    if refused:
        shown = ", ".join(f"{name} ({why})" for name, why in sorted(refused.items())[:12])
        more = f" and {len(refused) - 12} more" if len(refused) > 12 else ""
        notes.append(f"names from the student's code not given to the tests: {shown}{more}")
    if str(info.get("privileges", "")).startswith("kept root"):
        notes.append(f"the grader's test process {info['privileges']}")
    return notes


def _first_error(nb) -> str:
    """'cell N: Name: message' of the first cell that raised, graded or not (the cause of what follows)."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
                return f"cell {index}: {message}"
    return ""


def _failure_reason(log_text: str) -> str:
    if "DeadKernelError" in log_text or "Kernel died" in log_text or "kernel died" in log_text:
        return (
            "the Python kernel died while running the notebook (the code used too much memory or ended the "
            "process, e.g. exit() or os._exit())"
        )
    errors = [line.split("]", 1)[-1].strip() for line in log_text.splitlines() if "[AutogradeApp | ERROR]" in line]
    detail = next((e for e in reversed(errors) if not e.startswith("There was an error")), "")
    return f"nbgrader could not grade it: {detail or 'see the log'}"


def sandbox_steps() -> list[str]:
    """nbgrader's autograde steps with its Execute replaced by the sandboxed one (autograder.sandboxed)."""
    return [
        "autograder.sandboxed.SandboxedExecute",
        "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor",
        "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades",
        "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata",
    ]


def sandbox_config(job: Job, slot: int) -> str:
    """The lines added to a worker's nbgrader_config.py: its own SQLite gradebook (whatever database the course
    uses), and nbgrader's Execute step replaced by the sandboxed one (autograder.sandboxed). Trusted submissions
    (no sandbox here, ``--trust-submissions``) keep stock nbgrader's kernel."""
    lines = (
        "\n# Added by the grader for this submission only.\nc.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
    )
    if not job.template.isolate:
        return lines
    return lines + (
        f"c.Autograde.autograde_preprocessors = {sandbox_steps()!r}\n"
        f"c.SandboxedExecute.slot = {int(slot)!r}\n"
        f"c.SandboxedExecute.timeout = {job.cell_timeout!r}\n"
        f"c.SandboxedExecute.limits = {dict(job.limits)!r}\n"
    )


@dataclasses.dataclass
class Job:
    """One submission to grade: everything a worker needs, as plain data (it may run on another machine)."""

    student: str
    notebook: bytes
    timestamp: str | None
    template: Shipped
    submission_timeout: int
    cell_timeout: int
    limits: dict
    fingerprint: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    scratch: str | None = None  # where the work folder goes (None: the worker's temporary directory)
    warm_start: bool = True  # fork nbgrader from a warm template process (autograder.warm) where one can run

    @property
    def assignment(self) -> str:
        return self.template.assignment


@dataclasses.dataclass
class Outcome:
    """What a worker sends back: the result, the autograded folder's files and the gradebook rows to write."""

    result: Result
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)  # autograded/<student>/<a>/, by path
    grades: dict[str, tuple[float | None, bool]] = dataclasses.field(default_factory=dict)  # auto, needs manual
    comments: dict[str, str | None] = dataclasses.field(default_factory=dict)
    penalty: float | None = None
    timestamp: str | None = None  # the submission's timestamp as nbgrader parsed it (ISO 8601)
    log: str = ""  # nbgrader's log of this submission
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # graded cell -> 'Name: message'
    first_error: str = ""


def job_for(course: Course, template: Template, shipped: Shipped, student: str) -> Job | Result:
    """The job of one student's submission, or a failed result when there is nothing to grade."""
    path, note = find_notebook(course, student, template.assignment)
    if path is None:
        result = Result(student, template.assignment, FAILED, points=dict(template.points))
        result.reason = f"no notebook in submitted/{student}/{template.assignment}/"
        return result
    data = path.read_bytes()
    return Job(
        student=student,
        notebook=data,
        timestamp=_stamp(course, student, template.assignment).decode(errors="replace").strip() or None,
        template=shipped,
        submission_timeout=course.settings.submission_timeout,
        cell_timeout=course.cell_timeout,
        limits=dict(course.settings.sandbox_limits),
        fingerprint=fingerprint(course, template, student, data),
        notes=[note] if note else [],
        warm_start=course.settings.warm_start,
    )


def _where() -> str:
    """This machine's name, and the address of the Dask worker running this task (when one is)."""
    try:
        from distributed import get_worker

        return f"{socket.gethostname()} {get_worker().address}"
    except (ImportError, ValueError):
        return socket.gethostname()


SLOTS = 256  # grading slots per machine: the sandbox's user ids (61000 + slot) never collide below this


@contextlib.contextmanager
def _slot():
    """A grading slot no other grading on this machine holds (a lock file per slot, so worker processes of a
    cluster that share a machine never share a sandbox user)."""
    folder = pathlib.Path(tempfile.gettempdir()) / "autograder-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    for slot in range(1, SLOTS + 1):
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


def grade_job(job: Job) -> Outcome:
    """Grade one submission in a scratch course of its own with ``nbgrader autograde`` (the student's code in the
    sandbox). Runs wherever the job was sent: in the grader's process, or on a Dask worker on another machine.
    Needs only this package, nbgrader and bubblewrap there; never the course directory or its gradebook."""
    start = time.monotonic()
    template = job.template
    result = Result(job.student, job.assignment, FAILED, points=dict(template.points), notes=list(job.notes))
    result.fingerprint = job.fingerprint
    result.worker = _where()
    outcome = Outcome(result)
    try:
        nb, result.repairs = submissions.prepare(
            job.notebook, nbformat.from_dict(template.student_version), f"{job.student}'s notebook"
        )
    except submissions.Unreadable as err:
        result.reason = str(err)
        result.seconds = time.monotonic() - start
        return outcome

    if job.scratch:
        pathlib.Path(job.scratch).mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"{job.student}-", dir=job.scratch))
    try:
        with _slot() as slot:
            _grade_in(job, nb, work, slot, outcome)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.monotonic() - start
    return outcome


def _grade_in(job: Job, nb, work: pathlib.Path, slot: int, outcome: Outcome) -> None:
    from nbgrader.api import Gradebook

    result, template, student, assignment = outcome.result, job.template, job.student, job.assignment
    (work / "submitted" / student / assignment).mkdir(parents=True)
    (work / "nbgrader_config.py").write_text(template.config + sandbox_config(job, slot), encoding="utf-8")
    (work / "gradebook.db").write_bytes(template.gradebook)
    nbformat.write(nb, work / "submitted" / student / assignment / f"{assignment}.ipynb")
    if job.timestamp:
        (work / "submitted" / student / assignment / "timestamp.txt").write_text(job.timestamp)
    limit = job.submission_timeout
    log = work / "nbgrader.log"
    status = run_nbgrader(
        ["autograde", assignment, "--student", student],
        work,
        grading_env(template.standin),
        limit,
        log,
        warm_start=job.warm_start,
    )
    outcome.log = log.read_text(errors="replace") if log.exists() else ""
    graded = work / "autograded" / student / assignment / f"{assignment}.ipynb"
    if status is None:
        result.reason = f"grading took longer than the limit of {limit} s for one submission (submission_timeout)"
        return
    if status != 0 or not graded.exists():
        result.reason = _failure_reason(outcome.log)
        return

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        for grade in notebook.grades:
            outcome.grades[grade.name] = (grade.auto_score, bool(grade.needs_manual_grade))
            if grade.name in template.points:
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
    outcome.errors, outcome.first_error = _cell_errors(autograded), _first_error(autograded)
    for grade_id, error in outcome.errors.items():
        if error.startswith(("CellTimeoutError", "TimeLimit")):
            result.notes.append(f"cell {grade_id!r} was stopped at the per-cell limit of {job.cell_timeout} s")
    stopped = _sandbox_stopped(autograded)
    if stopped:
        result.notes.append(stopped)
    result.notes.extend(_executor_notes(autograded))
    if not template.isolate:
        result.notes.append("graded WITHOUT the sandbox (--trust-submissions)")
    result.status = GRADED
    result.graded_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------ the gradebook
RETRIES = 8  # attempts of one gradebook transaction that another grader's transaction got in the way of


def _retrying(what: str, attempt):
    """Run ``attempt()`` again when the database refused it because another writer got there first (a row
    created at the same moment, a lock, a serialization failure); raise after RETRIES attempts."""
    from nbgrader.api import InvalidEntry  # nbgrader's word for a refused insert (a row that already exists)
    from sqlalchemy.exc import IntegrityError, OperationalError

    for n in range(RETRIES):
        try:
            return attempt()
        except (IntegrityError, OperationalError, InvalidEntry) as err:
            if n == RETRIES - 1:
                raise CourseError(
                    f"the gradebook refused {what} {RETRIES} times ({type(err).__name__}: {err}); "
                    "is another program holding it? Run the same command again: what finished is saved."
                ) from err
            time.sleep(0.2 * (n + 1))


def _write_gradebook(course: Course, outcome: Outcome) -> list[str]:
    """One transaction: this submission's automatic scores, comments, timestamp and late penalty. Manual grades
    are never overwritten. Returns the grade ids whose manual grades were kept."""
    from nbgrader.api import MissingEntry
    from nbgrader.utils import parse_utc

    result = outcome.result
    assignment, student = result.assignment, result.student
    with course.gradebook() as gradebook, warnings.catch_warnings():
        # nbgrader's add_submission makes SQLAlchemy warn about its autoflush order; the rows are right.
        warnings.simplefilter("ignore", SAWarning)
        try:
            gradebook.update_or_create_student(student)
            try:
                submitted = gradebook.find_submission(assignment, student)
            except MissingEntry:
                submitted = gradebook.add_submission(assignment, student)
            submitted.timestamp = parse_utc(outcome.timestamp) if outcome.timestamp else None
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            kept = []
            for grade in notebook.grades:
                score, needs_manual = outcome.grades.get(grade.name, (None, True))
                grade.auto_score = score
                if grade.manual_score is not None:
                    kept.append(grade.name)
                    grade.needs_manual_grade = False
                else:
                    grade.needs_manual_grade = bool(needs_manual)
            for comment in notebook.comments:
                comment.auto_comment = outcome.comments.get(comment.name)
            notebook.late_submission_penalty = outcome.penalty
            gradebook.db.commit()
        except BaseException:
            gradebook.db.rollback()
            raise
    return kept


def _swap_in(staged: pathlib.Path, target: pathlib.Path) -> None:
    """Replace the folder ``target`` by ``staged``; a reader sees the old folder or the new one, and another
    grading command swapping in the same student's folder at the same moment makes this one try again."""
    for _ in range(RETRIES):
        old = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.old")
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, old)
        try:
            os.replace(staged, target)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    raise CourseError(f"could not replace {target}: another program keeps writing it")


def save(course: Course, outcome: Outcome) -> None:
    """Write one finished submission into the course: autograded notebook, gradebook (one transaction; manual
    grades untouched), then its record. Called from the grading command's main thread only; several grading
    commands may write one course gradebook at once (PostgreSQL, or SQLite's own locking)."""
    result = outcome.result
    assignment, student = result.assignment, result.student
    if result.status == GRADED:
        target = course.autograded(student, assignment)
        staged = target.with_name(f".{assignment}.{os.getpid()}.new")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name, data in outcome.files.items():
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            (staged / name).write_bytes(data)
        _swap_in(staged, target)
        kept = _retrying(f"the grades of {student}", lambda: _write_gradebook(course, outcome))
        if kept:
            result.notes.append(f"kept the manual grades of {', '.join(kept)}")
    if outcome.log:
        logs = course.state(assignment) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{student}.log").write_text(outcome.log, encoding="utf-8")
    result.save(record_path(course, assignment, student))


# --------------------------------------------------------------------------------------------- the canary
def canary(course: Course, template: Template, log=print, cluster: Cluster | None = None) -> Result:
    """Grade the instructor's solution (on the cluster when there is one: its workers are what must be right);
    refuse the batch unless it gets full marks. Cached per template."""
    path = course.state(template.assignment) / "canary.json"
    cached = Result.load(path)
    if cached and cached.fingerprint == template.key and cached.status == GRADED:
        if cached.score == cached.max_score:
            return cached
    log(f"checking the grading environment: grading the instructor's solution of {template.assignment} first")
    job = Job(
        student=CANARY,
        notebook=course.source_notebook(template.assignment).read_bytes(),
        timestamp=None,
        template=cluster.shipped if cluster else template.shipped(),
        submission_timeout=course.settings.submission_timeout,
        cell_timeout=course.cell_timeout,
        limits=dict(course.settings.sandbox_limits),
        fingerprint=template.key,
        warm_start=course.settings.warm_start,
    )
    outcome = cluster.run_one(job) if cluster else grade_job(job)
    result = outcome.result
    result.save(path)
    where = f" on {result.worker}" if cluster and cluster.remote else ""
    if result.status != GRADED:
        raise CourseError(
            f"the instructor's solution of {template.assignment} could not be graded{where} ({result.reason}); "
            "student submissions would fail the same way, so nothing was graded."
        )
    if result.score != result.max_score:
        lost = [
            f"  {gid}: {outcome.errors.get(gid, 'no points')}"
            for gid, pts in result.points.items()
            if result.scores.get(gid, 0.0) != pts
        ]
        first = outcome.first_error
        hint = (
            "A dataset is missing: under strict data (the default) grading uses the real datasets only. Put them "
            "where the notebook loads them from (`python -m cnnbook.data fetch NAME` on a machine with internet "
            "access fills the Keras cache; on a cluster, on every worker), or, to test the course only, pass "
            "--standin."
            if "DataUnavailable" in first or "dataset" in first.lower()
            else "Fix the grading environment (or the source notebook) and run again."
        )
        raise CourseError(
            f"the instructor's solution of {template.assignment} gets {result.score:g} of {result.max_score:g} "
            f"points in this grading environment{where}, so student grades would be wrong; nothing was graded.\n"
            + (f"The first error, the likely cause: {first}\nTests that lost points:\n" if first else "")
            + "\n".join(lost)
            + f"\n{hint}"
        )
    return result


# ----------------------------------------------------------------------------------------------- a batch
def plan(course: Course, template: Template, students: list[str], force: bool, retry_failed: bool):
    """Which students to grade now: (to grade, unchanged and graded, unchanged and failed)."""
    todo, skipped, failed_earlier = [], [], []
    for student in students:
        old = Result.load(record_path(course, template.assignment, student))
        unchanged = old is not None and old.fingerprint == fingerprint(course, template, student)
        if force or not unchanged:
            todo.append(student)
        elif old.status == FAILED and not retry_failed:
            failed_earlier.append(student)
        elif old.status == FAILED:
            todo.append(student)
        else:
            skipped.append(student)
    return todo, skipped, failed_earlier


class Cluster:
    """Where submissions are graded: a Dask cluster. ``address`` names a running scheduler (its workers may be
    on other machines); without one, a local cluster of ``workers`` threads in this process, each running one
    nbgrader process at a time. Either way the same tasks (``grade_job``) run, and results come back here."""

    def __init__(self, workers: int, address: str | None = None, log=print):
        from distributed import Client, LocalCluster

        self.remote = bool(address)
        self._local = None
        if address:
            try:
                if pathlib.Path(address).is_file():  # a scheduler file (`dask scheduler --scheduler-file F`)
                    self.client = Client(scheduler_file=address, timeout="10s")
                else:
                    self.client = Client(address, timeout="10s")
            except (OSError, ValueError) as err:
                raise CourseError(
                    f"no Dask scheduler answers at {address} ({err}). Start one (`dask scheduler`) and its "
                    "workers (`dask worker ADDRESS`), or leave out --scheduler to grade on this machine."
                ) from None
            ready = self.client.scheduler_info().get("workers", {})
            if not ready:
                log(f"waiting for a worker to join the scheduler at {address}")
                try:
                    self.client.wait_for_workers(1, timeout=120)
                except Exception:  # noqa: BLE001 (distributed raises TimeoutError or its own)
                    self.client.close()
                    raise CourseError(
                        f"the Dask scheduler at {address} has no workers; start some (`dask worker {address}`, "
                        "see autograder/CLUSTER.md) and run again"
                    ) from None
        else:
            # In this process (the nbgrader runs are processes of their own); the scheduler's and the worker's
            # status servers on loopback only, on ports nobody else uses.
            self._local = LocalCluster(
                n_workers=1,
                threads_per_worker=max(1, workers),
                processes=False,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                worker_dashboard_address="127.0.0.1:0",
            )
            self.client = Client(self._local)
        self.shipped: Shipped | None = None
        self._template = None

    def send(self, template: Template) -> None:
        """Give every worker the template once (not with every submission)."""
        self.shipped = template.shipped()
        self._template = self.client.scatter(self.shipped, broadcast=True, hash=False)

    def sandbox_problem(self) -> str | None:
        """Why some worker cannot run the sandbox (None when all can)."""
        from .sandbox import isolation_problem

        problems = self.client.run(isolation_problem)
        bad = {worker: problem for worker, problem in sorted(problems.items()) if problem}
        if not bad:
            return None
        worker, problem = next(iter(bad.items()))
        return f"{len(bad)} of {len(problems)} Dask worker(s) cannot run it, e.g. {worker}: {problem}"

    def describe(self) -> str:
        """'N workers, M threads' of the cluster now."""
        workers = self.client.scheduler_info().get("workers", {}).values()
        threads = sum(int(w.get("nthreads", 0)) for w in workers)
        return f"{len(workers)} worker(s), {threads} thread(s): submissions graded at once"

    def _job(self, job: Job):
        if self.remote:
            job.scratch = None  # the worker's own temporary directory; the course is not there
        return dataclasses.replace(job, template=None)

    def submit(self, job: Job):
        key = f"grade-{job.assignment}-{job.student}-{uuid.uuid4().hex}"
        return self.client.submit(_run_shipped, self._job(job), self._template, key=key, pure=False)

    def run_one(self, job: Job) -> Outcome:
        return self.submit(job).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._local is not None:
            with contextlib.suppress(Exception):
                self._local.close()
            warm.close_all()  # the local workers' template processes (a remote worker keeps its own)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run_shipped(job: Job, template: Shipped) -> Outcome:
    """The task a Dask worker runs: the job with the template it received once per batch."""
    return grade_job(dataclasses.replace(job, template=template))


def grade_batch(
    course: Course,
    template: Template,
    students: list[str],
    workers: int,
    progress,
    cluster: Cluster | None = None,
) -> list[Result]:
    """Grade ``students`` on the cluster (a local one of ``workers`` unless given); save each as it finishes,
    here, in this process's main thread."""
    own = cluster is None
    if own:
        cluster = Cluster(workers)
        cluster.send(template)
    results = []
    try:
        with scratch_space(course, template.assignment) as scratch:
            _grade_all(course, template, students, progress, cluster, str(scratch), results)
    finally:
        if own:
            cluster.close()
    return results


@contextlib.contextmanager
def scratch_space(course: Course, assignment: str):
    """This grading command's scratch folder under ``.autograder/<a>/work/``, locked while it runs. Folders of
    commands that are gone (killed) are removed; those of commands still running are left alone."""
    work = course.state(assignment) / "work"
    work.mkdir(parents=True, exist_ok=True)
    for lock in work.glob("run-*.lock"):
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running command's
            shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
            lock.unlink(missing_ok=True)
    for stale in work.iterdir():  # scratch of an older grader without locks
        if not stale.name.startswith("run-"):
            shutil.rmtree(stale, ignore_errors=True)
    lock = work / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        folder = lock.with_suffix("")
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)


def _grade_all(course, template, students, progress, cluster, scratch, results) -> None:
    from distributed import as_completed

    futures = {}
    for student in students:
        job = job_for(course, template, cluster.shipped, student)
        if isinstance(job, Result):
            save(course, Outcome(job))
            results.append(job)
            progress(job)
            continue
        job.scratch = scratch
        futures[cluster.submit(job)] = job
    for future in as_completed(futures):
        job = futures[future]
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 (a grader bug or a lost worker must not stop the batch)
            result = Result(job.student, template.assignment, FAILED, points=dict(template.points))
            result.reason = f"grader error: {err!r}"  # no fingerprint: graded again by the next run
            outcome = Outcome(result)
        save(course, outcome)
        results.append(outcome.result)
        progress(outcome.result)


def slug_ok(student: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*", student))
