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
   a wall-clock limit. N of these run at once. A submission that cannot be graded gets a status and a reason; the
   batch goes on.
4. Only the main process writes the course gradebook, one finished submission at a time, in one transaction each:
   it sets the automatic scores and comments and never touches manual grades. Then the submission's record is
   written (``.autograder/<assignment>/records/<student>.json``, atomically). A record whose fingerprint (the
   submitted bytes, the timestamp, the assignment's source and the grading settings) still matches means "graded,
   nothing changed": a re-run skips it, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import nbformat
from sqlalchemy.exc import SAWarning

from . import submission as submissions
from .course import Course, CourseError

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

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.points.values())

    def save(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
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
def grading_env(course: Course, standin: bool) -> dict[str, str]:
    """The environment of every nbgrader process and kernel: fixed seeds, quiet TensorFlow, no GUI backends, and
    strict data (a missing dataset is an error) unless stand-ins were asked for explicitly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNBOOK_", "JPY_", "NBGRADER_"))}
    env.update(
        PATH=f"{course.venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
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


def _die_with_parent() -> None:  # runs in the child before exec: SIGKILL it if the grader dies
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_nbgrader(course: Course, args: list[str], cwd: pathlib.Path, env: dict, timeout: float | None, log):
    """Run ``nbgrader ARGS`` as its own process group; kill the whole group (kernel included) on timeout.
    Returns the exit status, or None when it ran out of time."""
    command = [str(course.venv_bin() / "nbgrader"), *args]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The kernel runs in a session of its own (jupyter_client starts it so): kill the whole tree.
            for pid in _descendants(process.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            return None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (Linux: read from /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


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


def isolation(course: Course, trusted: bool, log=print) -> bool:
    """Whether submissions run in the sandbox. Without a working sandbox, refuse unless told they are trusted."""
    from .sandbox import isolation_problem

    problem = isolation_problem()
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


def prepare(course: Course, assignment: str, standin: bool, isolate: bool = True) -> Template:
    """Make sure the course gradebook knows the assignment, and build the template used by every worker."""
    from nbgrader.api import Gradebook, MissingEntry

    course.check_assignment(assignment)
    state = course.state(assignment)
    state.mkdir(parents=True, exist_ok=True)
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
    env = grading_env(course, standin)

    # The course gradebook: (re)generate the assignment there when its source changed since the last time.
    marker = state / "source.sha256"
    in_gradebook = True
    with course.gradebook() as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            in_gradebook = False
    source_key = _sha256(source, config)
    if not in_gradebook or not marker.exists() or marker.read_text() != source_key:
        with tempfile.TemporaryDirectory(prefix="release-", dir=state) as scratch:
            status = run_nbgrader(
                course,
                ["generate_assignment", assignment, "--force", f"--CourseDirectory.release_directory={scratch}"],
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
            course, ["generate_assignment", assignment, "--force"], folder, env, 600, folder / "generate.log"
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
    return Template(assignment, folder, student_version, key, points, env, isolate)


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


def sandbox_config(course: Course, template: Template, slot: int) -> str:
    """The lines added to a worker's nbgrader_config.py: nbgrader's Execute step replaced by the sandboxed one.
    Trusted submissions (no sandbox here, ``--trust-submissions``) keep stock nbgrader's kernel: nothing added."""
    if not template.isolate:
        return ""
    steps = sandbox_steps()
    return (
        "\n# Added by the grader for this submission only.\n"
        f"c.Autograde.autograde_preprocessors = {steps!r}\n"
        f"c.SandboxedExecute.isolate = {template.isolate!r}\n"
        f"c.SandboxedExecute.slot = {int(slot)!r}\n"
        f"c.SandboxedExecute.timeout = {course.cell_timeout!r}\n"
        f"c.SandboxedExecute.limits = {dict(course.settings.sandbox_limits)!r}\n"
    )


def grade_one(
    course: Course,
    template: Template,
    student: str,
    data: bytes | None = None,
    timestamp: str | None = None,
    slot: int = 0,
) -> tuple[Result, pathlib.Path | None]:
    """Grade one submission in a scratch course; returns the result and the scratch folder (or None)."""
    assignment = template.assignment
    start = time.monotonic()
    result = Result(student, assignment, FAILED, points=dict(template.points))
    if data is None:
        path, note = find_notebook(course, student, assignment)
        if path is None:
            result.reason = f"no notebook in submitted/{student}/{assignment}/"
            return result, None
        if note:
            result.notes.append(note)
        data = path.read_bytes()
        timestamp = _stamp(course, student, assignment).decode(errors="replace").strip() or None
        result.fingerprint = fingerprint(course, template, student, data)
    try:
        nb, result.repairs = submissions.prepare(data, template.student_version, f"{student}'s notebook")
    except submissions.Unreadable as err:
        result.reason = str(err)
        result.seconds = time.monotonic() - start
        return result, None

    work = course.state(assignment) / "work" / student
    shutil.rmtree(work, ignore_errors=True)
    (work / "submitted" / student / assignment).mkdir(parents=True)
    shutil.copy(template.folder / "nbgrader_config.py", work / "nbgrader_config.py")
    with open(work / "nbgrader_config.py", "a", encoding="utf-8") as config:
        config.write(sandbox_config(course, template, slot))
    shutil.copy(template.folder / "gradebook.db", work / "gradebook.db")
    nbformat.write(nb, work / "submitted" / student / assignment / f"{assignment}.ipynb")
    if timestamp:
        (work / "submitted" / student / assignment / "timestamp.txt").write_text(timestamp)
    limit = course.settings.submission_timeout
    status = run_nbgrader(
        course, ["autograde", assignment, "--student", student], work, template.env, limit, work / "nbgrader.log"
    )
    log_text = (work / "nbgrader.log").read_text(errors="replace")
    result.seconds = time.monotonic() - start
    graded = work / "autograded" / student / assignment / f"{assignment}.ipynb"
    if status is None:
        result.reason = f"grading took longer than the limit of {limit} s for one submission (submission_timeout)"
        return result, work
    if status != 0 or not graded.exists():
        result.reason = _failure_reason(log_text)
        return result, work

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        for grade in notebook.grades:
            if grade.name in template.points:
                result.scores[grade.name] = float(grade.auto_score or 0.0)
                if grade.needs_manual_grade:
                    result.needs_manual.append(grade.name)
        penalty = float(notebook.late_submission_penalty or 0.0)
    if penalty:
        result.notes.append(f"late penalty of {penalty:g} points (nbgrader's late-submission plugin)")
    autograded = nbformat.read(graded, as_version=4)
    for grade_id, error in _cell_errors(autograded).items():
        if error.startswith(("CellTimeoutError", "TimeLimit")):
            result.notes.append(f"cell {grade_id!r} was stopped at the per-cell limit of {course.cell_timeout} s")
    stopped = _sandbox_stopped(autograded)
    if stopped:
        result.notes.append(stopped)
    if not template.isolate:
        result.notes.append("graded WITHOUT the sandbox (--trust-submissions)")
    result.status = GRADED
    result.graded_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return result, work


# ------------------------------------------------------------------------------------------ the gradebook
def save(course: Course, result: Result, work: pathlib.Path | None) -> None:
    """Write one finished submission into the course: autograded notebook, gradebook (one transaction; manual
    grades untouched), then its record. Called from the main process only."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    assignment, student = result.assignment, result.student
    if result.status == GRADED and work is not None:
        target = course.autograded(student, assignment)
        staged = target.with_name(f".{assignment}.new")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(work / "autograded" / student / assignment, staged)
        old = target.with_name(f".{assignment}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)

        with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as theirs:
            graded = theirs.find_submission_notebook(assignment, assignment, student)
            auto = {g.name: (g.auto_score, g.needs_manual_grade) for g in graded.grades}
            comments = {c.name: c.auto_comment for c in graded.comments}
            penalty = graded.late_submission_penalty
            timestamp = theirs.find_submission(assignment, student).timestamp
        with course.gradebook() as gradebook, warnings.catch_warnings():
            # nbgrader's add_submission makes SQLAlchemy warn about its autoflush order; the rows are right.
            warnings.simplefilter("ignore", SAWarning)
            gradebook.update_or_create_student(student)
            try:
                submitted = gradebook.find_submission(assignment, student)
            except MissingEntry:
                submitted = gradebook.add_submission(assignment, student)
            submitted.timestamp = parse_utc(timestamp) if timestamp else None
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            kept = []
            for grade in notebook.grades:
                score, needs_manual = auto.get(grade.name, (None, True))
                grade.auto_score = score
                if grade.manual_score is not None:
                    kept.append(grade.name)
                    grade.needs_manual_grade = False
                else:
                    grade.needs_manual_grade = bool(needs_manual)
            for comment in notebook.comments:
                comment.auto_comment = comments.get(comment.name)
            notebook.late_submission_penalty = penalty
            gradebook.db.commit()
        if kept:
            result.notes.append(f"kept the manual grades of {', '.join(kept)}")
    if work is not None and (work / "nbgrader.log").exists():
        logs = course.state(assignment) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "nbgrader.log", logs / f"{student}.log")
    result.save(record_path(course, assignment, student))
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------- the canary
def canary(course: Course, template: Template, log=print) -> Result:
    """Grade the instructor's solution; refuse the batch unless it gets full marks. Cached per template."""
    path = course.state(template.assignment) / "canary.json"
    cached = Result.load(path)
    if cached and cached.fingerprint == template.key and cached.status == GRADED:
        if cached.score == cached.max_score:
            return cached
    log(f"checking the grading environment: grading the instructor's solution of {template.assignment} first")
    data = course.source_notebook(template.assignment).read_bytes()
    result, work = grade_one(course, template, CANARY, data=data)
    result.fingerprint = template.key
    errors, first = {}, ""
    if work is not None:
        graded = work / "autograded" / CANARY / template.assignment / f"{template.assignment}.ipynb"
        if graded.exists():
            graded_nb = nbformat.read(graded, as_version=4)
            errors, first = _cell_errors(graded_nb), _first_error(graded_nb)
        shutil.rmtree(work, ignore_errors=True)
    result.save(path)
    if result.status != GRADED:
        raise CourseError(
            f"the instructor's solution of {template.assignment} could not be graded here ({result.reason}); "
            "student submissions would fail the same way, so nothing was graded."
        )
    if result.score != result.max_score:
        lost = [
            f"  {gid}: {errors.get(gid, 'no points')}"
            for gid, pts in result.points.items()
            if result.scores.get(gid, 0.0) != pts
        ]
        hint = (
            "A dataset is missing: under strict data (the default) grading uses the real datasets only. Put them "
            "where the notebook loads them from (`python -m cnnbook.data fetch NAME` on a machine with internet "
            "access fills the Keras cache), or, to test the course only, pass --standin."
            if "DataUnavailable" in first or "dataset" in first.lower()
            else "Fix the grading environment (or the source notebook) and run again."
        )
        raise CourseError(
            f"the instructor's solution of {template.assignment} gets {result.score:g} of {result.max_score:g} "
            "points in this grading environment, so student grades would be wrong; nothing was graded.\n"
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


def grade_batch(course: Course, template: Template, students: list[str], workers: int, progress) -> list[Result]:
    """Grade ``students`` with ``workers`` at once; save each as it finishes (main thread only)."""
    shutil.rmtree(course.state(template.assignment) / "work", ignore_errors=True)  # leftovers of a killed run
    results = []
    import queue

    slots: queue.Queue[int] = queue.Queue()
    for slot in range(max(1, workers)):
        slots.put(slot + 1)

    def in_a_slot(student: str):  # each running submission has its own sandbox user (slot)
        slot = slots.get()
        try:
            return grade_one(course, template, student, slot=slot)
        finally:
            slots.put(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(in_a_slot, student): student for student in students}
        for future in concurrent.futures.as_completed(futures):
            try:
                result, work = future.result()
            except Exception as err:  # noqa: BLE001 (a grader bug must not stop the batch either)
                student = futures[future]
                result = Result(student, template.assignment, FAILED, reason=f"grader error: {err!r}")
                result.fingerprint = ""
                work = None
            save(course, result, work)
            results.append(result)
            progress(result)
    return results


def slug_ok(student: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*", student))
