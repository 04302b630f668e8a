"""nbgrader's ``Execute`` step, split in two: the student's code runs in the sandbox, the tests run in the grader.

``grade`` puts :class:`SandboxedExecute` in place of nbgrader's ``Execute`` preprocessor. It walks the notebook
once, in order:

* a **student cell** (a solution cell, or any cell the student added) runs in the sandboxed process; the names it
  defines come back: data by value, functions and other objects as references (:class:`autograder.wire.Proxy`);
* a **given cell** (read-only instructor code: imports, data, helpers; nbgrader has already restored its source)
  runs in the sandbox, so the student's code sees it, and again in the grader, so the tests see the grader's own
  copy. Names a given cell defines are the instructor's: a student cell that redefines them (say
  ``PARAMETER_BUDGET = 10**9``) changes only the student's side;
* a **test cell** (nbgrader's autograder tests, hidden ones included) runs only in the grader, in the grader's own
  Python, NumPy and Keras. Calling a student function sends the arguments to the sandbox and brings the result
  back as plain data, so every comparison, every ``assert`` and the pass/fail verdict happen where the student's
  code never ran. A cell passes when its code finishes; nbgrader's ``SaveAutoGrades`` then reads the verdicts
  from the cell outputs as usual.

``keras.utils.set_random_seed`` called by a test also seeds the student's process, so seeded runs (the graded
training of a4) stay reproducible.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import sys
import traceback

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Integer

from .sandbox import Limits, Sandbox, SandboxStopped

STUDENT, GIVEN, TEST = "student", "given", "test"
_CURRENT: list[Sandbox | None] = [None]  # the sandbox of the notebook being graded (one at a time per process)


def instructor_cells(resources, course_id: str) -> dict[str, tuple[str, str]]:
    """grade id -> (kind, source) of the instructor's cells of this notebook, from the gradebook: the only cells
    that may run in the grader. A cell of the submission counts as one of them only if its id and its source
    match (nbgrader has restored the source of each one it knows); metadata alone proves nothing, since the
    student can write any metadata."""
    from nbgrader.api import Gradebook

    info = resources.get("nbgrader", {})
    out: dict[str, tuple[str, str]] = {}
    with Gradebook(info["db_url"], course_id) as gradebook:
        notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        graded = {cell.name for cell in notebook.grade_cells}
        solution = {cell.name for cell in notebook.solution_cells}
        for cell in notebook.source_cells:
            if cell.cell_type != "code" or cell.name in solution:
                continue
            if cell.name in graded:
                out[cell.name] = (TEST, cell.source)
            elif cell.locked:
                out[cell.name] = (GIVEN, cell.source)
    return out


def cell_kind(cell, known: dict[str, tuple[str, str]]) -> str:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    grade_id = meta.get("grade_id")
    if meta.get("solution") or grade_id not in known:
        return STUDENT
    kind, source = known[grade_id]
    return kind if cell.source == source else STUDENT


def error_output(err: BaseException, where: str) -> dict:
    """An nbformat error output for an exception raised while running a cell in the grader. Only frames of the
    cell itself are shown (by line number; the hidden test lines are not printed), then the student's own
    traceback when the error came from their code."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<")]
    lines = [f"{where}, line {f.lineno}" for f in frames[-3:]]
    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = "?"
    name = getattr(err, "type_name", None) or type(err).__name__
    text = getattr(err, "traceback_text", "")
    trace = ["Traceback (grader side):", *lines, f"{name}: {message}"]
    if text:
        trace += ["", "Raised in your code:", text[-6000:]]
    return new_output("error", ename=name, evalue=message[:4000], traceback=trace)


class SandboxedExecute(NbGraderPreprocessor):
    """Run a submission with the student's code sandboxed and the tests in the grader (see the module doc)."""

    slot = Integer(0, help="Grading slot: the sandbox's user id when the grader runs as root.").tag(config=True)
    limits = Dict({}, help="Overrides of autograder.sandbox.Limits, by name.").tag(config=True)
    timeout = Integer(30, help="Wall-clock seconds per cell (nbgrader's Execute.timeout).").tag(config=True)
    startup_timeout = Integer(120, help="Seconds the sandbox may take to start.").tag(config=True)

    def preprocess(self, nb, resources):
        limits = Limits.from_settings(self.limits)
        log = os.path.join(os.getcwd(), "sandbox.log")
        sandbox = Sandbox(dict(os.environ), limits, self.slot, log=log)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        given: set[str] = set()
        self._sandbox = sandbox
        self._namespace = namespace
        self._synced: dict[str, object] = {}  # the student's names as last seen on both sides
        _CURRENT[0] = sandbox
        try:
            sandbox.start(self.startup_timeout)
            sandbox.channel.before_call = self._push_rebinds
        except (SandboxStopped, OSError) as err:
            self.log.error("the sandbox did not start: %s", err)
            sandbox.stopped = sandbox.stopped or f"The sandbox did not start: {err}"
        course_id = self.config.get("CourseDirectory", {}).get("course_id") or "default_course"
        known = instructor_cells(resources, course_id)
        try:
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                cell.outputs = []
                cell.execution_count = index + 1
                kind = cell_kind(cell, known)
                where = f"cell {index + 1}"
                if kind in (STUDENT, GIVEN):
                    self._run_student(cell, kind, namespace, given, where)
                if kind in (GIVEN, TEST):
                    self._run_grader(cell, kind, namespace, given, where)
        finally:
            _CURRENT[0] = None
            sandbox.close()
        return nb, resources

    # --------------------------------------------------------------------------------------- student side
    def _run_student(self, cell, kind, namespace, given, where) -> None:
        sandbox = self._sandbox
        try:
            reply = sandbox.run_cell(cell.source, report=kind == STUDENT, timeout=self.timeout, doing=where)
        except SandboxStopped as err:
            cell.outputs.append(new_output("error", ename="SandboxStopped", evalue=str(err), traceback=[str(err)]))
            return
        except Exception as err:  # noqa: BLE001 (the runner itself failed to answer: a reply it could not encode)
            cell.outputs.append(error_output(err, where))
            return
        for output in reply.get("outputs", []):
            cell.outputs.append(_checked_output(output))
        for name, value in dict(reply.get("defined", {})).items():
            if isinstance(name, str) and name not in given:
                namespace[name] = value
                self._synced[name] = value
        for name in reply.get("removed", []):
            if isinstance(name, str) and name not in given:
                namespace.pop(name, None)
                self._synced.pop(name, None)

    def _push_rebinds(self) -> None:
        """Before each request to the student's process: names of theirs that a test rebound in the grader (a
        reference function in place of theirs, as a1's hidden tests do) are rebound on their side too."""
        changes = {}
        for name, synced in self._synced.items():
            current = self._namespace.get(name, synced)
            if current is not synced:
                changes[name] = current
        if changes:
            self._synced.update(changes)
            self._sandbox.channel.remote("assign", args=(changes,))

    # --------------------------------------------------------------------------------------- grader side
    def _run_grader(self, cell, kind, namespace, given, where) -> None:
        before = {k: id(v) for k, v in namespace.items()}
        out, err_out = io.StringIO(), io.StringIO()
        failure = None
        try:
            code = compile(cell.source, f"<{where}>", "exec")
            with (
                self._sandbox.limit(self.timeout),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err_out),
            ):
                exec(code, namespace)  # noqa: S102 (instructor code from the gradebook, run in the grader)
        except BaseException as err:  # noqa: BLE001 (any failure of a test is that test's failure)
            if isinstance(err, KeyboardInterrupt):
                raise
            failure = err
        _mirror_seeding()
        if kind == GIVEN:
            given.update(k for k, v in namespace.items() if before.get(k) != id(v))
            if failure is not None:
                self.log.info("given %s failed in the grader: %r", where, failure)
            return
        if out.getvalue():
            cell.outputs.append(new_output("stream", name="stdout", text=out.getvalue()[:100_000]))
        if err_out.getvalue():
            cell.outputs.append(new_output("stream", name="stderr", text=err_out.getvalue()[:100_000]))
        if failure is not None:
            if isinstance(failure, SandboxStopped):
                message = str(failure)
                cell.outputs.append(
                    new_output("error", ename="SandboxStopped", evalue=message, traceback=[message])
                )
            else:
                cell.outputs.append(error_output(failure, where))


def _mirror_seeding() -> None:
    """Once the tests have Keras, make their ``keras.utils.set_random_seed`` seed the student's side too."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "utils") or getattr(keras.utils.set_random_seed, "_mirrored", False):
        return
    original = keras.utils.set_random_seed

    def set_random_seed(seed):
        original(seed)
        if _CURRENT[0] is not None:
            _CURRENT[0].request("seed", "seeding", seed=int(seed))

    set_random_seed._mirrored = True
    keras.utils.set_random_seed = set_random_seed


def _checked_output(output) -> dict:
    """An output the student's process reported, rebuilt from its plain fields (no other keys pass)."""
    if not isinstance(output, dict):
        return new_output("stream", name="stdout", text=str(output)[:1000])
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return new_output("stream", name=name, text=str(output.get("text", "")))
    if kind == "error":
        trace = output.get("traceback") or []
        return new_output(
            "error",
            ename=str(output.get("ename", "Error")),
            evalue=str(output.get("evalue", "")),
            traceback=[str(line) for line in trace] if isinstance(trace, list) else [str(trace)],
        )
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    return new_output("display_data", data={str(k): str(v) for k, v in data.items()})
