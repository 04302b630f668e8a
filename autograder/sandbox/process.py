"""Start and talk to a student's sandboxed process (the grader's side). The design is in ``autograder/SANDBOX.md``.

The sandbox is bubblewrap (``bwrap``, Debian package ``bubblewrap``): new mount, PID, network, IPC and UTS
namespaces; a root file system holding only the system libraries, the Python environment, the course helpers
(``cnnbook``) and the training splits of the datasets (``datasets``), all read-only, and a size-limited ``tmpfs``
as the only writable place; no network device but loopback. Run by root, the student's code is switched to an
unprivileged user of its own (one per grading slot, so two sandboxes never share a process count) with no
capabilities; run by anyone else, bubblewrap maps the user into a user namespace with no capabilities. The runner
applies CPU, memory, process, file-size and open-file limits before it runs any student code, and the grader's
watchdog enforces wall time per cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from ..processes import die_with_parent
from . import wire
from .datasets import INSIDE, masked_data_folders, training_splits
from .isolation import PACKAGE, bwrap, bwrap_prefix, python_binds

HERE = pathlib.Path(__file__).resolve().parent
SIDE = "/grader/autograder/sandbox"  # where the sandbox sees this package's student-side files
STUDENT_SIDE = ("__init__.py", "runner.py", "wire.py", "codec.py", "zygote.py")
RUNNER = f"{SIDE}/runner.py"
ZYGOTE = f"{SIDE}/zygote.py"
# What the warm sandbox (zygote.py) keeps, as root of its namespaces, to isolate each submission's process: new
# namespaces and mounts, the switch to the slot's user, dropping the bounding set, signalling the submission, and
# bringing up the loopback of the submission's own network namespace. Its children drop them all.
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_NET_ADMIN")
INTERRUPT_GRACE = 10  # seconds an interrupted runner has to answer before it is killed
MAX_REPLY_HEADER = 64 << 20  # bytes of JSON in one message from the student's process
MAX_REPLY = 1 << 30  # bytes of data in one message from the student's process
PYTHON_FLAGS = ("-s", "-B", "-X", "utf8")


class SandboxStopped(Exception):
    """The student's process is gone (a limit, a crash, or its own exit); the message says which."""


@dataclasses.dataclass
class Limits:
    """Resource limits of one submission's process (``c.Autograder.sandbox_limits`` overrides them by name)."""

    cpu_seconds: int = 1200  # CPU time of the student's process, all cells together
    memory_mb: int = 6144  # address space (TensorFlow reserves much more than it uses)
    processes: int = 256  # processes and threads of the sandbox's user (TensorFlow starts dozens of threads)
    file_mb: int = 256  # largest file it may write
    open_files: int = 512
    tmp_mb: int = 512  # its writable space (/tmp, its home)
    output_chars: int = 100_000  # kept per output stream per cell
    outputs_per_cell: int = 30  # outputs kept per cell (the grader cuts the rest)
    cell_output_kb: int = 2048  # bytes of outputs kept per cell, all outputs together
    notebook_output_kb: int = 16384  # bytes of student outputs kept per notebook
    wire_mb: int = 4096  # bytes the grader reads from the student's process in all, per submission

    def for_runner(self) -> dict:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_mb << 20,
            "processes": self.processes,
            "file_bytes": self.file_mb << 20,
            "open_files": self.open_files,
        }

    @classmethod
    def from_settings(cls, values: dict) -> Limits:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sandbox limits {unknown}; known: {sorted(known)}")
        return cls(**{k: int(v) for k, v in values.items()})


# ------------------------------------------------------------------------------------------- the process
class SandboxChannel(wire.Channel):
    """The grader's end of the wire (``wire.Channel`` with ``grader=True``): reads under the caps, and turns every
    failure of the connection into :class:`SandboxStopped` with the precise reason: a process that is gone says
    how it ended; one that sent something malformed or too large is killed, and says that."""

    def __init__(self, sandbox: Sandbox, reader, writer):
        super().__init__(reader, writer, grader=True, max_header=MAX_REPLY_HEADER, max_message=MAX_REPLY)
        self.sandbox = sandbox

    def remote(self, op, key=None, args=(), kwargs=None, **fields):
        sandbox = self.sandbox
        doing = sandbox.doing
        if sandbox.stopped or not sandbox.alive():
            raise SandboxStopped(sandbox.why_stopped(doing))
        try:
            return super().remote(op, key, args, kwargs, **fields)
        except (wire.PeerGone, BrokenPipeError) as err:
            raise SandboxStopped(sandbox.why_stopped(doing)) from err
        except wire.WireError as err:
            if sandbox.alive():
                sandbox.fail(doing, f"it sent a malformed or oversized message ({err}) and was stopped")
            raise SandboxStopped(sandbox.why_stopped(doing)) from err
        except OSError as err:
            raise SandboxStopped(sandbox.why_stopped(doing)) from err


class CountingReader:
    """The pipe from the student's process, refusing to read more than ``cap`` bytes in all."""

    def __init__(self, raw, cap: int):
        self.raw, self.cap, self.total = raw, cap, 0

    def read(self, n: int) -> bytes:
        if self.total + n > self.cap:
            raise wire.WireError(f"more than {self.cap >> 20:,} MB from the student's process in all (wire_mb)")
        data = self.raw.read(n)
        self.total += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


class Sandbox:
    """One student's process, started by :meth:`start`; talk to it through :attr:`channel` and the helpers."""

    def __init__(
        self, env: dict[str, str], limits: Limits, slot: int = 0, log: str | None = None, zygote: str | None = None
    ):
        self.env, self.limits, self.slot = env, limits, slot
        self.log_path = log
        self.zygote = zygote  # the socket of the slot's warm sandbox (autograder.sandbox.warm), or None: cold
        self.mode = "cold"  # how it started: "warm" (forked from the warm sandbox) or "cold" with the reason
        self.keeper: subprocess.Popen | None = None
        self.channel: SandboxChannel | None = None
        self.deadline: float | None = None
        self.interrupted = False
        self.interruptions = 0  # cells or calls stopped at the time limit (the process went on)
        self.runner_pid: int | None = None
        self.exit_code: int | None = None
        self.timed_out = False
        self.stopped: str | None = None
        self.doing = "running"  # what the grader is doing, for the messages (the executor keeps it up to date)
        self._exited = threading.Event()
        self._found = threading.Event()
        self._control = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------------------------------- start
    def command(self) -> list[str]:
        path = bwrap()
        prefix = bwrap_prefix(path, self.slot, self.limits.tmp_mb)
        split = prefix.index("--")
        return prefix[:split] + self._binds() + prefix[split:] + [sys.executable, *PYTHON_FLAGS, RUNNER]

    def zygote_command(self, folder: str) -> list[str]:
        """The warm sandbox's command line: the same sandbox as :meth:`command`'s, with the folder of its socket
        bound at /zygote, run as root of its namespaces with ``ZYGOTE_CAPS`` only (no switch to the slot's user:
        it does that for each submission's process, see ``zygote.py``)."""
        prefix = bwrap_prefix(bwrap(), self.slot, self.limits.tmp_mb)
        split = prefix.index("--")
        caps = ["--cap-drop", "ALL"] + [arg for cap in ZYGOTE_CAPS for arg in ("--cap-add", cap)]
        binds = self._binds() + ["--bind", folder, "/zygote"]
        return prefix[:split] + binds + caps + ["--", sys.executable, *PYTHON_FLAGS, ZYGOTE]

    def _binds(self) -> list[str]:
        binds = python_binds() + ["--perms", "0755", "--dir", "/grader", "--perms", "0755", "--dir", "/data"]
        binds += ["--perms", "0755", "--dir", "/grader/autograder", "--perms", "0755", "--dir", SIDE]
        binds += ["--ro-bind", str(PACKAGE / "__init__.py"), "/grader/autograder/__init__.py"]
        for name in STUDENT_SIDE:  # only what the runner imports: nothing of the grader's own side is in reach
            binds += ["--ro-bind", str(HERE / name), f"{SIDE}/{name}"]
        for folder in masked_data_folders():  # the data a stand-in's test split could be rebuilt from
            binds += ["--tmpfs", folder]
        binds += ["--ro-bind", str(training_splits(self.env)), INSIDE]  # training splits only
        return binds

    def _environment(self, home: str) -> dict[str, str]:
        keep = (
            "PYTHONHASHSEED", "CNNBOOK_SEED", "CNNBOOK_STANDIN", "CNNBOOK_STRICT_DATA", "CNNBOOK_PROFILE",
            "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "NBGRADER_EXECUTION",
        )  # fmt: skip
        env = {k: v for k, v in self.env.items() if k in keep}
        env.update(
            PATH=f"{pathlib.Path(sys.executable).parent}:/usr/bin:/bin",
            HOME=home,
            TMPDIR="/tmp",
            LANG="C.UTF-8",
            MPLBACKEND="module://matplotlib_inline.backend_inline",
            MPLCONFIGDIR=f"{home}/.config/matplotlib",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
            AUTOGRADER_LIMITS=json.dumps(self.limits.for_runner()),
            AUTOGRADER_OUTPUT_CHARS=str(self.limits.output_chars),
        )
        env["CNNBOOK_SEALED_DATA"] = INSIDE
        return env

    def start(self, timeout: float = 120) -> None:
        home = "/tmp/home"
        to_child, from_grader = os.pipe()  # the runner reads requests on to_child
        from_child, to_grader = os.pipe()  # and writes replies on to_grader
        control_read, control_write = os.pipe()  # the grader's commands to the keeper
        status_read, status_write = os.pipe()  # the keeper's reports
        env = self._environment(home)
        env["AUTOGRADER_FDS"] = f"{to_child},{to_grader}"
        spec = {
            "command": self.command(), "env": env, "wire": [to_child, to_grader], "control": control_read,
            "status": status_write, "log": self.log_path, "zygote": self.zygote, "tmp_mb": self.limits.tmp_mb,
        }  # fmt: skip
        keeper_env = {"PATH": "/usr/bin:/bin", "AUTOGRADER_KEEPER": json.dumps(spec)}
        try:
            self.keeper = subprocess.Popen(
                [sys.executable, "-s", "-m", "autograder.sandbox.keeper"],
                env=keeper_env, cwd=str(PACKAGE.parent), stdin=subprocess.DEVNULL,
                pass_fds=(to_child, to_grader, control_read, status_write), start_new_session=True,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            for fd in (to_child, to_grader, control_read, status_write):
                os.close(fd)
        self._control = os.fdopen(control_write, "wb", buffering=0)
        threading.Thread(target=self._reports, args=(status_read,), daemon=True).start()
        reader = CountingReader(os.fdopen(from_child, "rb", buffering=1 << 16), self.limits.wire_mb << 20)
        self.channel = SandboxChannel(self, reader, os.fdopen(from_grader, "wb"))
        threading.Thread(target=self._watchdog, daemon=True).start()
        with self.limit(timeout):
            hello, _ = self._read("starting the sandbox")
        if hello.get("op") != "hello":
            self.kill()
            raise SandboxStopped("the sandbox did not start properly")
        self._command(b"find")
        self._found.wait(10)

    def _reports(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as status:
            for line in iter(status.readline, b""):
                word, _, value = line.decode(errors="replace").strip().partition(" ")
                if word == "mode":
                    kind, _, why = value.partition(" ")
                    self.mode = "warm" if kind == "warm" else f"cold: {json.loads(why)}"
                elif word == "runner":
                    self.runner_pid = int(value) or None
                    self._found.set()
                elif word == "exit":
                    self.exit_code = int(value)
                    self._exited.set()
                elif word == "failed":
                    self.stopped = f"The sandbox did not start: {json.loads(value)}"
                    self.exit_code = 1
                    self._exited.set()
        if not self._exited.is_set():  # the keeper is gone: so is the sandbox (it dies with the keeper)
            self.exit_code = self.exit_code if self.exit_code is not None else -signal.SIGKILL
            self._exited.set()

    def _command(self, command: bytes) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._control.write(command + b"\n")

    def alive(self) -> bool:
        return self.keeper is not None and not self._exited.is_set()

    # ---------------------------------------------------------------------------------------- watchdog
    @contextlib.contextmanager
    def limit(self, seconds: float | None):
        """The per-cell wall-clock limit: when the block takes longer than ``seconds``, the runner is interrupted
        (the cell or call in progress fails with ``TimeLimit`` and grading goes on, as nbgrader interrupts a
        kernel); if it has not answered ``INTERRUPT_GRACE`` seconds later, the process is killed."""
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.interrupted = False
        try:
            yield
        finally:
            self.deadline = None
            self.interrupted = False

    def _watchdog(self) -> None:
        while not self._stop.wait(0.2):
            if not self.alive():
                return
            deadline = self.deadline
            if deadline is None or time.monotonic() <= deadline:
                continue
            if not self.interrupted and self.runner_pid is not None:
                self.interrupted = True
                self.interruptions += 1
                self._command(b"int")
                if self.deadline is not None:
                    self.deadline = time.monotonic() + INTERRUPT_GRACE
                continue
            self.timed_out = True
            self.kill()
            return

    def kill(self) -> None:
        self._command(b"kill")

    def fail(self, doing: str, reason: str) -> None:
        """Stop the sandbox for something it did to the grader (a malformed message, one too large)."""
        if not self.stopped:
            self.stopped = f"The sandbox stopped while {doing}: {reason}. Later cells could not run."
        self.kill()

    # ------------------------------------------------------------------------------------------ talking
    def _read(self, doing: str):
        try:
            return wire.read_message(self.channel.reader, MAX_REPLY_HEADER, MAX_REPLY)
        except wire.WireError as err:
            raise SandboxStopped(self.why_stopped(doing)) from err

    def why_stopped(self, doing: str = "running") -> str:
        if self.stopped:
            return self.stopped
        if self.keeper is None:
            return "the sandbox was not started"
        if not self._exited.wait(5):
            self.kill()
            self._exited.wait(30)
        code = self.exit_code if self.exit_code is not None else -signal.SIGKILL
        signum = -code if code < 0 else (code - 128 if code > 128 else 0)
        if self.timed_out:
            reason = "it ran past the time limit for one cell and was stopped"
        elif signum == signal.SIGXCPU:
            reason = f"it used up its CPU time limit ({self.limits.cpu_seconds} s) and was stopped"
        elif signum == signal.SIGXFSZ:
            reason = f"it wrote a file larger than the limit ({self.limits.file_mb} MB) and was stopped"
        elif signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            reason = (
                f"the process was killed by {signal.Signals(signum).name} (most often: out of memory, the limit "
                f"is {self.limits.memory_mb} MB)"
            )
        else:
            reason = f"the student's process ended by itself (exit status {code})"
        self.stopped = f"The sandbox stopped while {doing}: {reason}. Later cells could not run."
        return self.stopped

    def request(self, op: str, doing: str, **fields):
        """A request to the runner; its reply's value (a 'raise' reply raises here, as the student's error)."""
        self.doing = doing
        return self.channel.remote(op, **fields)

    def run_cell(self, code: str, report: bool, timeout: float | None, doing: str) -> dict:
        with self.limit(timeout):
            return self.request("run_cell", doing, code=code, report=report)

    def close(self) -> None:
        self._stop.set()
        self.kill()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
        if self.keeper is not None:
            try:
                self.keeper.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
                self.keeper.wait()
        if self.channel is not None:
            for stream in (self.channel.reader, self.channel.writer):
                with contextlib.suppress(Exception):
                    stream.close()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
