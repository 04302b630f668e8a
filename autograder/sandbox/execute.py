"""nbgrader's ``Execute`` step, split in two: the student's code runs in the sandbox, the tests run in the grader.

``grade`` puts :class:`SandboxedExecute` in place of nbgrader's ``Execute`` preprocessor. It walks the notebook
twice:

1. **The student's side, first and to the end.** Every *student cell* (a solution cell, or any cell the student
   added) and every *given cell* (read-only instructor code: imports, data, helpers; nbgrader has restored its
   source) runs in the sandboxed process, in notebook order; each reports its outputs and the *names* it defined
   (plain JSON only: the grader may still be root here). No student cell runs after this pass, so nothing the
   student's code saw during the tests (a hidden test's inputs) can be printed into the notebook by a later cell.
   If a cell kills the process, a fresh sandbox runs the cells before it again, and the tests after that cell
   fail with the reason, as they would have in a notebook run from top to bottom.
   Then the grader drops root (see below) and asks for the values of the names it accepts: data by value,
   functions and other objects as references (:class:`autograder.sandbox.wire.Proxy`).
2. **The grader's side.** Given cells run again and *test cells* (nbgrader's autograder tests, hidden ones
   included) run, in order, in the grader's own Python, NumPy and Keras. Calling a student function sends the
   arguments to the sandbox and brings the result back as plain data, so every comparison, every ``assert`` and
   the pass/fail verdict happen where the student's code never ran. nbgrader's ``SaveAutoGrades`` then reads the
   verdicts from the cell outputs as usual.

What the student's side sends is checked here, never trusted:

* **Names.** A student's name enters the tests' namespace only if it is an identifier that is not a builtin
  (``isinstance``, ``zip``, ``len``...), not private (``_x``, ``__builtins__``) and not bound by any given or test
  cell of the notebook (``np``, ``graded_accuracy``...); every refused name is listed in the notebook's metadata
  (``autograder.refused_names``) and in the grading record.
* **Outputs.** At most ``outputs_per_cell`` outputs and ``cell_output_kb`` per cell, ``notebook_output_kb`` per
  notebook, text cut at ``output_chars``; rich outputs keep only inert types (plain text, PNG, JPEG): HTML,
  JavaScript, SVG, Markdown and made-up types are dropped.
* **The wire.** See :class:`autograder.sandbox.process.SandboxChannel`: malformed or oversized messages stop the
  sandbox with that reason; the grader lends the student's code nothing but the functions a test passes (call
  only), and takes every such loan back when the test cell ends.

Run by root, the grader's process drops to an unprivileged user of its own once the sandbox has started
(:func:`autograder.sandbox.isolation.drop_privileges`), so that even a hole in the above could not write the
course.

``keras.utils.set_random_seed`` called by a test also seeds the student's process, so seeded runs (the graded
training of a4) stay reproducible.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import pathlib
import sys
import time
import traceback

from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Dict, Integer, Unicode

from .cells import GIVEN, STUDENT, TEST, bound_names, cell_kind, hidden_lines, instructor_cells, refusal
from .isolation import drop_privileges, drop_problem, prepare_for_drop
from .process import Limits, Sandbox, SandboxStopped
from .wire import RemoteError

_CURRENT: list[Sandbox | None] = [None]  # the sandbox of the notebook being graded (one at a time per process)


def error_output(err: BaseException, where: str, hidden: set[int] = frozenset()) -> dict:
    """An nbformat error output for an exception raised while running a cell in the grader. Only frames of the
    cell itself are shown (by line number; the hidden test lines are not printed), then the student's own
    traceback when the error came from their code. An error the student's code raised during a hidden test keeps
    only its type: its message could carry the hidden test's inputs out to the feedback."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<")]
    lines = [f"{where}, line {f.lineno}" for f in frames[-3:]]
    try:
        message = str(err)
    except Exception:  # noqa: BLE001
        message = "?"
    name = getattr(err, "type_name", None) or type(err).__name__
    text = getattr(err, "traceback_text", "")
    from_student = isinstance(err, RemoteError) or bool(text)
    if from_student and frames and frames[-1].lineno in hidden:
        message = "raised by your code during a hidden test (its message is not shown: it could reveal the test)"
        text = ""
    trace = ["Traceback (grader side):", *lines, f"{name}: {message}"]
    if text:
        trace += ["", "Raised in your code:", text[-6000:]]
    return new_output("error", ename=str(name)[:200], evalue=message[:4000], traceback=trace)


class SandboxedExecute(NbGraderPreprocessor):
    """Run a submission with the student's code sandboxed and the tests in the grader (see the module doc)."""

    slot = Integer(0, help="Grading slot: the sandbox's user id when the grader runs as root.").tag(config=True)
    limits = Dict({}, help="Overrides of autograder.sandbox.Limits, by name.").tag(config=True)
    timeout = Integer(30, help="Wall-clock seconds per cell (nbgrader's Execute.timeout).").tag(config=True)
    startup_timeout = Integer(120, help="Seconds the sandbox may take to start.").tag(config=True)
    zygote = Unicode("", help="The socket of the slot's warm sandbox (autograder.sandbox.warm); empty: cold.").tag(
        config=True
    )
    drop_privileges = Bool(True, help="Run by root: drop to the slot's grader user once the sandbox runs.").tag(
        config=True
    )

    def preprocess(self, nb, resources):
        limits = Limits.from_settings(self.limits)
        self._limits = limits
        self._notebook_bytes = 0
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        self._namespace = namespace
        self._synced: dict[str, object] = {}  # the student's names as last seen on both sides
        notes: dict = {}
        self._notes = notes
        # where the time goes (recorded in the notebook's metadata, then in the record): starting the sandbox,
        # the student's cells in it, the values and the tests in the grader
        seconds = self._seconds = {"sandbox_start": 0.0, "student_cells": 0.0, "tests": 0.0}
        course_id = self.config.get("CourseDirectory", {}).get("course_id") or "default_course"
        known = instructor_cells(resources, course_id)
        owned = set().union(*(bound_names(source) for _, source in known.values()))
        hidden = self.config.get("ClearHiddenTests", {})
        begin = hidden.get("begin_test_delimeter", "BEGIN HIDDEN TESTS")
        end = hidden.get("end_test_delimeter", "END HIDDEN TESTS")
        cells = [(i, c, cell_kind(c, known)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        for index, cell, _ in cells:
            cell.outputs = []
            cell.execution_count = index + 1
        sandbox = self._start()
        try:
            # 1. the student's side, to the end. Only plain data is read here (outputs and names): the grader may
            # still be root, and what the student's process sends as values is read after the drop.
            clock = time.monotonic()
            names, died_at = self._student_pass(sandbox, cells, record=True)
            seconds["student_cells"] += time.monotonic() - clock
            stop = None
            if died_at is not None:  # a cell killed the process: a fresh one replays the cells before it
                stop = sandbox.why_stopped(f"cell {died_at + 1}")
                for index, cell, kind in cells:
                    if index > died_at and kind in (STUDENT, GIVEN):
                        cell.outputs.append(_stopped(stop))
                sandbox.close()
                sandbox = self._start()
                clock = time.monotonic()
                names, _ = self._student_pass(sandbox, [c for c in cells if c[0] < died_at], record=False)
                seconds["student_cells"] += time.monotonic() - clock
                notes["replayed"] = f"cell {died_at + 1} stopped the sandbox: the cells before it ran again"
            clock = time.monotonic()
            if os.geteuid() == 0 and self.drop_privileges:
                notes["privileges"] = self._drop()
            if sandbox.channel is not None:
                sandbox.channel.codec.plain = False
            refused = {str(n)[:80]: why for n in names if (why := refusal(n, owned)) is not None}
            if refused:
                notes["refused_names"] = refused
            accepted = [n for n in names if n not in refused]
            values = self._values(sandbox, accepted) if accepted else {}
            for name, value in values.items():
                if name in accepted:
                    namespace[name] = value
                    self._synced[name] = value
            for index, cell, kind in cells:  # 2. the grader's side: given cells again, and the tests
                if kind not in (GIVEN, TEST):
                    continue
                if died_at is not None and index > died_at:  # after the cell that killed it: as if it stayed dead
                    if kind == TEST:
                        cell.outputs.append(_stopped(stop))
                    continue
                lines = hidden_lines(cell.source, begin, end) if kind == TEST else set()
                self._run_grader(cell, kind, namespace, f"cell {index + 1}", lines)
            seconds["tests"] += time.monotonic() - clock
        finally:
            _CURRENT[0] = None
            sandbox.close()
        notes["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        nb.metadata["autograder"] = notes
        return nb, resources

    def _start(self) -> Sandbox:
        log = os.path.join(os.getcwd(), "sandbox.log")
        sandbox = Sandbox(dict(os.environ), self._limits, self.slot, log=log, zygote=self.zygote or None)
        self._sandbox = sandbox
        _CURRENT[0] = sandbox
        clock = time.monotonic()
        try:
            sandbox.start(self.startup_timeout)
            self._notes["sandbox"] = sandbox.mode
            sandbox.channel.codec.plain = True
            sandbox.channel.before_call = self._push_rebinds
        except (SandboxStopped, OSError) as err:
            self.log.error("the sandbox did not start: %s", err)
            sandbox.stopped = sandbox.stopped or f"The sandbox did not start: {err}"
        self._seconds["sandbox_start"] += time.monotonic() - clock
        return sandbox

    def _student_pass(self, sandbox, cells, record: bool) -> tuple[list[str], int | None]:
        """Run the student and given cells in order; the names the student's cells leave defined, and the index of
        the cell during which the process died (None if it lived). ``record``: keep the cells' outputs."""
        names: dict[str, None] = {}
        for index, cell, kind in cells:
            if kind not in (STUDENT, GIVEN):
                continue
            alive = sandbox.stopped is None and sandbox.alive()
            outputs, defined, removed = self._run_student(cell, kind, f"cell {index + 1}")
            if record:
                cell.outputs.extend(outputs)
            for name in defined:
                names[name] = None
            for name in removed:
                names.pop(name, None)
            if alive and (sandbox.stopped is not None or not sandbox.alive()):
                return list(names), index
        return list(names), None

    def _values(self, sandbox, names: list[str]) -> dict:
        """The values of the accepted names, in one request; if one of them cannot be rebuilt here (a model with
        a custom layer class), name by name, so that only that name goes without its value."""
        doing = "reading the student's answers"
        try:
            values = sandbox.request("values", doing, args=(names,))
            return values if isinstance(values, dict) else {}
        except SandboxStopped:
            return {}
        except Exception:  # noqa: BLE001
            pass
        values = {}
        for name in names:
            try:
                got = sandbox.request("values", doing, args=([name],))
                values.update(got if isinstance(got, dict) else {})
            except SandboxStopped:
                break
            except Exception as err:  # noqa: BLE001
                self.log.warning("the student's %s could not be read: %s", name, err)
        return values

    def _drop(self) -> str:
        problem = drop_problem()
        if problem is not None:
            self.log.warning("the grader's process keeps root: %s", problem)
            return f"kept root: {problem}"
        prepare_for_drop(pathlib.Path(os.getcwd()), self.slot)
        drop_privileges(self.slot, home=os.getcwd())
        return f"dropped to uid {os.getuid()}"

    # --------------------------------------------------------------------------------------- student side
    def _run_student(self, cell, kind, where) -> tuple[list, list[str], list[str]]:
        """Run one cell in the sandbox: its outputs (checked) and the names it defined and removed."""
        sandbox = self._sandbox
        try:
            reply = sandbox.run_cell(cell.source, report=kind == STUDENT, timeout=self.timeout, doing=where)
        except SandboxStopped as err:
            return [_stopped(str(err))], [], []
        except Exception as err:  # noqa: BLE001 (the runner itself failed to answer: a reply it could not encode)
            return [error_output(err, where)], [], []
        if not _runner_reply(reply):
            sandbox.fail(where, f"it answered a cell with a {type(reply).__name__}, not the runner's reply")
            return [_stopped(sandbox.why_stopped(where))], [], []
        defined = [n for n in reply.get("defined", []) if isinstance(n, str)] if kind == STUDENT else []
        removed = [n for n in reply.get("removed", []) if isinstance(n, str)] if kind == STUDENT else []
        return self._checked_outputs(reply.get("outputs", [])), defined, removed

    def _checked_outputs(self, outputs: list) -> list:
        """The outputs the student's process reported, rebuilt from their plain fields and cut to the limits:
        the grader enforces them, whatever the student's process did to its own."""
        limits, kept, used, dropped = self._limits, [], 0, 0
        cell_cap = limits.cell_output_kb << 10
        for output in outputs:
            if len(kept) >= limits.outputs_per_cell:
                dropped += 1
                continue
            output = _checked_output(output, limits.output_chars)
            size = _size(output)
            room = min(cell_cap - used, (limits.notebook_output_kb << 10) - self._notebook_bytes)
            if size > room:
                dropped += 1
                continue
            kept.append(output)
            used += size
            self._notebook_bytes += size
        if dropped:
            text = f"[the grader dropped {dropped} output(s) here: over the limits for a cell or notebook]\n"
            kept.append(new_output("stream", name="stderr", text=text))
        return kept

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
    def _run_grader(self, cell, kind, namespace, where, hidden: set[int]) -> None:
        out, err_out = io.StringIO(), io.StringIO()
        failure = None
        self._sandbox.doing = f"running the tests of {where}"
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
        finally:
            if self._sandbox.channel is not None:
                self._sandbox.channel.revoke()  # functions this cell lent the student's code are taken back
        _mirror_seeding()
        if kind == GIVEN:
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
                cell.outputs.append(error_output(failure, where, hidden))


def _stopped(message: str) -> dict:
    return new_output("error", ename="SandboxStopped", evalue=message, traceback=[message])


def _runner_reply(reply) -> bool:
    """Whether a run_cell reply has the runner's shape: {"outputs": [...], "defined": {...}, "removed": [...]}."""
    return (
        isinstance(reply, dict)
        and isinstance(reply.get("outputs", []), list)
        and isinstance(reply.get("defined", []), list)
        and isinstance(reply.get("removed", []), list)
    )


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


# Rich output types a student's output may keep: they render inert (no script, no markup of the student's).
SAFE_MIME = ("text/plain", "image/png", "image/jpeg")


def _cut(value, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + f"\n... [output cut at {limit:,} characters by the grader]\n"
    return text


def _size(output) -> int:
    return len(json.dumps(output, default=str))


def _checked_output(output, limit: int = 100_000) -> dict:
    """An output the student's process reported, rebuilt from its plain fields (no other keys pass), its text cut
    at ``limit`` characters and its rich data reduced to :data:`SAFE_MIME`."""
    if not isinstance(output, dict):
        return new_output("stream", name="stdout", text=_cut(output, 1000))
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return new_output("stream", name=name, text=_cut(output.get("text", ""), limit))
    if kind == "error":
        trace = output.get("traceback") or []
        trace = trace if isinstance(trace, list) else [trace]
        return new_output(
            "error",
            ename=_cut(output.get("ename", "Error"), 200),
            evalue=_cut(output.get("evalue", ""), 4000),
            traceback=[_cut(line, 4000) for line in trace[-40:]],
        )
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    kept = {mime: _cut(data[mime], 4 * limit) for mime in SAFE_MIME if mime in data}
    if not kept:
        dropped = ", ".join(sorted(str(k)[:40] for k in data)[:5]) or "nothing"
        kept = {"text/plain": f"[an output of type {dropped}: not shown, only text and images are kept]"}
    return new_output("display_data", data=kept)
