"""The student's side of grading: runs inside the sandbox, as an unprivileged user with no network.

Started by ``autograder.sandbox.process`` as ``python /grader/autograder/sandbox/runner.py``, with the wire on two
inherited file descriptors (named in ``AUTOGRADER_FDS``: requests in, replies out), this file, ``wire.py``,
``codec.py`` and the package's ``__init__.py`` bound read-only under ``/grader/autograder/sandbox`` (nothing of the
grader's own side), and nothing of the course in reach. It applies its resource limits before anything else, then
answers requests:

* ``run_cell``: run a cell's code in an IPython shell, capture its outputs, and report the names it (re)defined
  or removed (names only);
* ``values``: the current values of the names the grader accepted, by value (data) or by reference (functions and
  other objects, and what is too large);
* ``call`` / ``getattr`` / ``getitem`` / ``len`` on a reference: what the grader's tests do with the student's
  functions; the result travels back by value;
* ``seed``: seed Python, NumPy and Keras (the tests' ``keras.utils.set_random_seed`` reaches the student's
  process).

Nothing here decides a grade; the replies are data, and the grader checks them with its own code.
"""

import base64
import json
import os
import resource
import signal
import sys
import types

if __name__ == "__main__":  # run as a file in the sandbox: the folder above the package on the path, not this one
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from autograder.sandbox import wire  # noqa: E402

SKIP = {"In", "Out", "get_ipython", "exit", "quit"}
BY_VALUE_BLOBS = 512 << 20  # bytes of arrays and weights one cell's names may send by value, all names together
BY_VALUE_JSON = 32 << 20  # bytes of numbers, text and containers (the reply's JSON) they may send by value


class TimeLimit(BaseException):
    """Raised in the student's code when the grader interrupts it at the per-cell time limit (a BaseException, so
    that ``except Exception`` in their code does not swallow it; if something does, the grader kills the
    process)."""


_GUARD = [0]  # > 0 while the runner itself reads or writes the wire: an interrupt then waits


def _interrupt(signum, frame):
    if _GUARD[0] == 0:
        raise TimeLimit("stopped: this ran past the grader's time limit for one cell")


class _Guarded:
    def __enter__(self):
        _GUARD[0] += 1

    def __exit__(self, *exc):
        _GUARD[0] -= 1


class RunnerChannel(wire.Channel):
    """The runner's end of the wire: writing a message is never interrupted half-way."""

    def send(self, header, blobs=None):
        with _Guarded():
            super().send(header, blobs)


def apply_limits(limits: dict) -> None:
    pairs = {
        "cpu_seconds": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "processes": resource.RLIMIT_NPROC,
        "file_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
    }
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for key, which in pairs.items():
        value = limits.get(key)
        if value:
            resource.setrlimit(which, (int(value), int(value)))


def _text(value, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + f"\n... [output cut at {limit} characters by the grader]\n"
    return text


class Runner:
    def __init__(self, channel: wire.Channel, output_chars: int):
        from IPython.core.interactiveshell import InteractiveShell

        self.channel = channel
        self.output_chars = output_chars
        self.shell = InteractiveShell.instance()
        self.errors: list[dict] = []
        self.shell._showtraceback = self._record_error  # errors become nbformat error outputs, not printed text
        channel.extra_ops.update(run_cell=self.run_cell, values=self.values, seed=self.seed, assign=self.assign)

    def _record_error(self, etype, evalue, stb):
        self.errors.append(
            {
                "output_type": "error",
                "ename": getattr(etype, "__name__", str(etype)),
                "evalue": _text(evalue, 2000),
                "traceback": [_text(line, 4000) for line in stb][-40:],
            }
        )

    def _snapshot(self) -> dict:
        return {k: id(v) for k, v in self.shell.user_ns.items() if not k.startswith("_")}

    def run_cell(self, header, args, kwargs):
        from IPython.utils.capture import capture_output

        code = str(header.get("code", ""))
        before = self._snapshot()
        self.errors = []
        with capture_output(stdout=True, stderr=True, display=True) as captured:
            result = self.shell.run_cell(code, store_history=False)
        outputs = []
        if captured.stdout:
            outputs.append(
                {"output_type": "stream", "name": "stdout", "text": _text(captured.stdout, self.output_chars)}
            )
        if captured.stderr:
            outputs.append(
                {"output_type": "stream", "name": "stderr", "text": _text(captured.stderr, self.output_chars)}
            )
        for rich in captured.outputs[:50]:
            data = {}
            for mime, content in dict(rich.data or {}).items():
                if isinstance(content, bytes):
                    content = base64.b64encode(content).decode()
                elif not isinstance(content, str):
                    content = json.dumps(content, default=str)
                data[str(mime)] = _text(content, 4 * self.output_chars)
            outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
        outputs.extend(self.errors)
        failed = bool(self.errors) or not result.success
        if failed and not self.errors:
            err = result.error_in_exec or result.error_before_exec
            outputs.append({"output_type": "error", "ename": type(err).__name__, "evalue": _text(err, 2000),
                            "traceback": []})  # fmt: skip
        reply = {"outputs": outputs, "error": failed}
        if header.get("report"):  # the names only: the grader asks for the values it accepts (``values``)
            after = self._snapshot()
            reply["defined"] = [
                name
                for name, ident in after.items()
                if name not in SKIP
                and before.get(name) != ident
                and not isinstance(self.shell.user_ns[name], types.ModuleType)
            ]
            reply["removed"] = [name for name in before if name not in after]
        return reply

    def values(self, header, args, kwargs):
        """The current values of the names the grader asks for: data by value, the rest (functions, objects too
        large for the reply's budget) as references."""
        budget = wire.Budget(BY_VALUE_BLOBS, BY_VALUE_JSON)
        names = args[0] if args and isinstance(args[0], list) else []
        return {
            name: wire.ValueOrReference(self.shell.user_ns[name], budget)
            for name in names
            if isinstance(name, str) and name in self.shell.user_ns
        }

    def assign(self, header, args, kwargs):
        """Rebind names of the student's namespace: a test that puts a reference function in place of one of the
        student's (``globals().update(add_backward=...)``) reaches the student's code that calls it by name."""
        values = args[0] if args else {}
        if isinstance(values, dict):
            self.shell.user_ns.update({k: v for k, v in values.items() if isinstance(k, str)})
        return None

    def seed(self, header, args, kwargs):
        import random

        value = int(header.get("seed", 0))
        random.seed(value)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(value)
        try:
            import keras

            keras.utils.set_random_seed(value)
        except ImportError:
            pass
        return None


def main() -> None:
    apply_limits(json.loads(os.environ.pop("AUTOGRADER_LIMITS", "{}")))
    read_fd, write_fd = (int(fd) for fd in os.environ.pop("AUTOGRADER_FDS").split(","))
    os.set_inheritable(read_fd, False)  # the student's subprocesses do not get the wire
    os.set_inheritable(write_fd, False)
    reader = os.fdopen(read_fd, "rb", buffering=1 << 16)
    writer = os.fdopen(write_fd, "wb", buffering=1 << 16)
    channel = RunnerChannel(reader, writer)
    runner = Runner(channel, int(os.environ.pop("AUTOGRADER_OUTPUT_CHARS", "100000")))
    signal.signal(signal.SIGINT, _interrupt)
    channel.send({"op": "hello", "pid": os.getpid(), "uid": os.getuid()})
    while True:
        try:
            with _Guarded():
                header, blobs = wire.read_message(reader)
        except wire.WireError:
            return
        if header.get("op") == "bye":
            return
        channel.serve(header, blobs)
        del runner.errors[:]


if __name__ == "__main__":
    main()
