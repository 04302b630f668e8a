"""Start and talk to a student's sandboxed process (the grader's side). The design is in ``autograder/SANDBOX.md``.

The sandbox is bubblewrap (``bwrap``, Debian package ``bubblewrap``): new mount, PID, network, IPC and UTS
namespaces; a root file system holding only the system libraries, the Python environment, the course helpers
(``cnnbook``) and the datasets, all read-only, and a size-limited ``tmpfs`` as the only writable place; no network
device but loopback. Run by root, the student's code is switched to an unprivileged user of its own (one per
grading slot, so two sandboxes never share a process count) with no capabilities; run by anyone else, bubblewrap
maps the user into a user namespace with no capabilities. The runner applies CPU, memory, process, file-size and
open-file limits before it runs any student code, and the grader's watchdog enforces wall time per cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

from . import wire

HERE = pathlib.Path(__file__).resolve().parent
INTERRUPT_GRACE = 10  # seconds an interrupted runner has to answer before it is killed
SLOT_UID_BASE = 61000  # sandbox user ids when the grader runs as root: 61000 + slot
ETC_FILES = ("ld.so.cache", "ld.so.conf", "passwd", "group", "nsswitch.conf", "localtime", "fonts", "mime.types")


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


# ------------------------------------------------------------------------------------------- isolation
def bwrap() -> str | None:
    path = os.environ.get("AUTOGRADER_BWRAP")  # tests point this elsewhere to see the refusal
    return path if path is not None else shutil.which("bwrap")


_PROBE: dict[str, str | None] = {}


def isolation_problem() -> str | None:
    """None when the sandbox works here, else why not (checked once per process by starting one)."""
    path = bwrap()
    if path in _PROBE:
        return _PROBE[path]
    problem = None
    if not path or not os.path.exists(path):
        problem = "bubblewrap (bwrap) is not installed; on Debian or Ubuntu: `sudo apt-get install bubblewrap`"
    elif not sys.platform.startswith("linux"):
        problem = "the sandbox needs Linux namespaces"
    else:
        command = _bwrap_prefix(path, slot=0, tmp_mb=16) + ["/usr/bin/true"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
            if done.returncode != 0:
                detail = done.stderr.decode(errors="replace").strip()[:300]
                problem = f"bubblewrap could not start a sandbox here ({detail or f'exit {done.returncode}'})"
        except (OSError, subprocess.SubprocessError) as err:
            problem = f"bubblewrap could not start a sandbox here ({err})"
    _PROBE[path] = problem
    return problem


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = pathlib.Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        path = pathlib.Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _bwrap_prefix(path: str, slot: int, tmp_mb: int) -> list[str]:
    """bwrap and its options up to the command (without the Python environment's binds)."""
    args = [path, "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += _system_binds()
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_mb << 20), "--tmpfs", "/tmp"]
    args += [
        "--dir",
        "/tmp/home",
        "--chmod",
        "1777",
        "/tmp",
        "--chmod",
        "0777",
        "/tmp/home",
        "--chdir",
        "/tmp/home",
    ]
    if os.geteuid() == 0:
        uid = SLOT_UID_BASE + slot
        args += ["--", "/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        args += ["--"]
    return args


def _python_binds() -> list[str]:
    """The Python environment, read-only at its own paths, and the course helpers (only ``cnnbook``)."""
    paths = {pathlib.Path(sys.prefix).resolve(), pathlib.Path(sys.base_prefix).resolve()}
    spec = importlib.util.find_spec("cnnbook")
    if spec is not None and spec.origin:
        paths.add(pathlib.Path(spec.origin).resolve().parent)
    args, made = [], set()
    for path in sorted(paths):
        for parent in reversed(path.parents[:-1]):  # mount points bwrap would otherwise make 0700
            if parent not in made and not str(parent).startswith("/usr"):
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
    if pathlib.Path(sys.prefix) != pathlib.Path(sys.prefix).resolve():
        args += ["--symlink", str(pathlib.Path(sys.prefix).resolve()), sys.prefix]
    return args


def keras_home() -> pathlib.Path | None:
    home = pathlib.Path(os.environ.get("KERAS_HOME") or pathlib.Path.home() / ".keras")
    return home if home.is_dir() else None


# ------------------------------------------------------------------------------------------- the process
class Sandbox:
    """One student's process, started by :meth:`start`; talk to it through :attr:`channel` and the helpers."""

    def __init__(self, env: dict[str, str], limits: Limits, slot: int = 0, log: str | None = None):
        self.env, self.limits, self.slot = env, limits, slot
        self.log_path = log
        self.process: subprocess.Popen | None = None
        self.channel: wire.Channel | None = None
        self.deadline: float | None = None
        self.interrupted = False
        self.interruptions = 0  # cells or calls stopped at the time limit (the process went on)
        self.runner_pid: int | None = None
        self.timed_out = False
        self.stopped: str | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------------------------------- start
    def command(self) -> list[str]:
        runner = ["-s", "-B", "-X", "utf8"]
        path = bwrap()
        prefix = _bwrap_prefix(path, self.slot, self.limits.tmp_mb)
        split = prefix.index("--")
        binds = _python_binds() + ["--perms", "0755", "--dir", "/grader", "--perms", "0755", "--dir", "/data"]
        binds += ["--ro-bind", str(HERE / "sandbox_runner.py"), "/grader/sandbox_runner.py"]
        binds += ["--ro-bind", str(HERE / "wire.py"), "/grader/wire.py"]
        data = keras_home()
        if data is not None:
            binds += ["--ro-bind", str(data), "/data/keras"]
        return prefix[:split] + binds + prefix[split:] + [sys.executable, *runner, "/grader/sandbox_runner.py"]

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
        if keras_home() is not None:
            env["KERAS_HOME"] = "/data/keras"
        return env

    def start(self, timeout: float = 120) -> None:
        home = "/tmp/home"
        to_child, from_grader = os.pipe()  # the runner reads requests on to_child
        from_child, to_grader = os.pipe()  # and writes replies on to_grader
        env = self._environment(home)
        env["AUTOGRADER_FDS"] = f"{to_child},{to_grader}"
        log = open(self.log_path or os.devnull, "ab")
        try:
            self.process = subprocess.Popen(
                self.command(),
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(to_child, to_grader),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
            os.close(to_child)
            os.close(to_grader)
        self.channel = wire.Channel(os.fdopen(from_child, "rb", buffering=1 << 16), os.fdopen(from_grader, "wb"))
        threading.Thread(target=self._watchdog, daemon=True).start()
        with self.limit(timeout):
            hello, _ = self._read("starting the sandbox")
        if hello.get("op") != "hello":
            self.kill()
            raise SandboxStopped("the sandbox did not start properly")
        self.runner_pid = self._find_runner()

    def _find_runner(self) -> int | None:
        """The runner's process id as the grader sees it (inside bubblewrap it is a descendant of bwrap), found
        right after it said hello, before any student code ran."""
        from .grading import _descendants

        for pid in _descendants(self.process.pid):
            try:
                name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
                command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if name.startswith("python") and b"sandbox_runner.py" in command:  # not bwrap or setpriv
                return pid
        return None

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
            if self.process is None or self.process.poll() is not None:
                return
            deadline = self.deadline
            if deadline is None or time.monotonic() <= deadline:
                continue
            if not self.interrupted and self.runner_pid is not None:
                self.interrupted = True
                self.interruptions += 1
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self.runner_pid, signal.SIGINT)
                if self.deadline is not None:
                    self.deadline = time.monotonic() + INTERRUPT_GRACE
                continue
            self.timed_out = True
            self.kill()
            return

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # bubblewrap's PID namespace ends with its first process
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    # ------------------------------------------------------------------------------------------ talking
    def _read(self, doing: str):
        try:
            return wire.read_message(self.channel.reader)
        except wire.WireError as err:
            raise SandboxStopped(self.why_stopped(doing)) from err

    def why_stopped(self, doing: str = "running") -> str:
        if self.stopped:
            return self.stopped
        if self.process is None:
            return "the sandbox was not started"
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
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
        if self.stopped or self.process is None or self.process.poll() is not None:
            raise SandboxStopped(self.why_stopped(doing))
        try:
            return self.channel.remote(op, **fields)
        except (wire.WireError, BrokenPipeError, OSError) as err:
            raise SandboxStopped(self.why_stopped(doing)) from err

    def run_cell(self, code: str, report: bool, timeout: float | None, doing: str) -> dict:
        with self.limit(timeout):
            return self.request("run_cell", doing, code=code, report=report)

    def close(self) -> None:
        self._stop.set()
        self.kill()
        if self.process is not None:
            self.process.wait()
        if self.channel is not None:
            for stream in (self.channel.reader, self.channel.writer):
                with contextlib.suppress(Exception):
                    stream.close()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
