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
from .processes import descendants, die_with_parent

HERE = pathlib.Path(__file__).resolve().parent
INTERRUPT_GRACE = 10  # seconds an interrupted runner has to answer before it is killed
SLOT_UID_BASE = 61000  # sandbox user ids when the grader runs as root: 61000 + slot
GRADER_UID_BASE = 62000  # the grader's test process drops to 62000 + slot once its sandbox runs (run by root)
LOG_BYTES = 4 << 20  # what the student's process may print outside cells (during test calls) into sandbox.log
MAX_REPLY_HEADER = 64 << 20  # bytes of JSON in one message from the student's process
MAX_REPLY = 1 << 30  # bytes of data in one message from the student's process
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


# ------------------------------------------------------------------------------------------- the keeper
# The sandbox is started by root (bubblewrap switches the student's code to the slot's user), but the grader's test
# process drops to an unprivileged user of its own right after (``drop_privileges``) and can then no longer signal
# the sandbox's processes. A small *keeper* process, started before the drop and never dropping, holds bubblewrap:
# it obeys three commands on a pipe from the grader (find the runner, interrupt it, kill the sandbox), reports the
# sandbox's exit status, copies what the student's process prints outside cells into the log (capped at LOG_BYTES,
# through a pipe, so the sandbox never holds a descriptor naming a host path), and kills the sandbox when the
# grader's end of the pipe closes. It takes no other input; nothing the student's process sends reaches it.
def keeper_main() -> int:
    spec = json.loads(os.environ.pop("AUTOGRADER_KEEPER"))
    die_with_parent()
    control = os.fdopen(spec["control"], "rb", buffering=0)
    status = os.fdopen(spec["status"], "wb", buffering=0)
    out_read, out_write = os.pipe()
    wire_fds = tuple(spec["wire"])
    try:
        process = subprocess.Popen(
            spec["command"], env=spec["env"], cwd="/", stdin=subprocess.DEVNULL, stdout=out_write,
            stderr=subprocess.STDOUT, pass_fds=wire_fds, start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
    except OSError as err:
        status.write(f"failed {json.dumps(str(err))}\n".encode())
        return 1
    finally:
        os.close(out_write)
        for fd in wire_fds:
            os.close(fd)
    copier = threading.Thread(target=_copy_log, args=(out_read, spec["log"]), daemon=True)
    copier.start()
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock, contextlib.suppress(OSError):
            status.write(line.encode() + b"\n")

    def waiter() -> None:
        say(f"exit {process.wait()}")

    threading.Thread(target=waiter, daemon=True).start()
    runner = None
    for raw in iter(control.readline, b""):
        command = raw.strip()
        if command == b"find":
            runner = _find_runner(process.pid)
            say(f"runner {runner or 0}")
        elif command == b"int" and runner is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(runner, signal.SIGINT)
        elif command == b"kill":
            _kill_sandbox(process)
    _kill_sandbox(process)  # the grader is done (or gone)
    process.wait()
    copier.join(5)
    return 0


def _kill_sandbox(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # bubblewrap's PID namespace ends with its first process
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _copy_log(fd: int, path: str | None) -> None:
    left = LOG_BYTES
    with open(path or os.devnull, "ab") as log, os.fdopen(fd, "rb", buffering=0) as pipe:
        for chunk in iter(lambda: pipe.read(1 << 16), b""):
            if left > 0:
                log.write(chunk[:left])
                log.flush()
                if len(chunk) >= left:
                    log.write(f"\n[the grader kept the first {LOG_BYTES:,} bytes of this log]\n".encode())
                left -= len(chunk)


def _find_runner(root: int) -> int | None:
    """The runner's process id as the host sees it (inside bubblewrap it is a descendant of bwrap), looked up
    right after it said hello, before any student code ran."""
    for pid in descendants(root):
        try:
            name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if name.startswith("python") and b"sandbox_runner.py" in command:  # not bwrap or setpriv
            return pid
    return None


# ------------------------------------------------------------------------------------------- privileges
def grader_uid(slot: int) -> int:
    return GRADER_UID_BASE + slot


def _needed_paths() -> list[pathlib.Path]:
    """What the grader's test process reads after it drops root: its Python, the packages, the datasets, and the
    scratch course it grades in (its working directory)."""
    paths = [pathlib.Path(sys.prefix).resolve(), pathlib.Path(sys.base_prefix).resolve(), HERE.parent]
    paths.append(pathlib.Path.cwd().resolve())
    spec = importlib.util.find_spec("cnnbook")
    if spec is not None and spec.origin:
        paths.append(pathlib.Path(spec.origin).resolve().parent)
    data = keras_home()
    if data is not None:
        paths.append(data.resolve())
    fonts = pathlib.Path.home() / ".cache" / "matplotlib"  # Matplotlib's font list, read on import
    if fonts.is_dir():
        paths.append(fonts.resolve())
    return sorted(set(paths))


def private_view() -> str | None:
    """Give this process (root, single-threaded: a grading process right after it was forked or before it execs)
    a mount namespace of its own in which every folder that stands between it and what it needs after dropping
    root (:func:`_needed_paths`; typically ``/root`` above a pyenv Python, or a private temporary folder above the
    scratch course) is replaced by an empty tmpfs holding only those paths, bound in. Nothing changes outside the
    process; the rest of such a folder is out of reach. Returns None, or why it could not (then the process keeps
    root, and the record says so)."""
    import ctypes

    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return "not root"
    plan: dict[pathlib.Path, list[pathlib.Path]] = {}
    for path in _needed_paths():
        blocked = next((p for p in [*reversed(path.parents), path] if not p.stat().st_mode & 0o001), None)
        if blocked is not None and blocked != path:
            plan.setdefault(blocked, []).append(path)
    if not plan:
        return None
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def call(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    try:
        call(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
        call(libc.mount(b"none", b"/", None, 0x4000 | (1 << 18), None), "making / private")  # MS_REC|MS_PRIVATE
        for blocked, keep in plan.items():
            handles = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in keep]
            call(
                libc.mount(b"tmpfs", str(blocked).encode(), b"tmpfs", 0, b"mode=0755,size=1m"),
                f"covering {blocked}",
            )
            for path, handle in zip(keep, handles):
                for part in [*reversed(path.parents), path]:
                    if part.is_relative_to(blocked) and not part.exists():
                        part.mkdir()
                        part.chmod(0o755)
                source = f"/proc/self/fd/{handle}".encode()
                call(libc.mount(source, str(path).encode(), None, 4096 | 0x4000, None), f"binding {path}")
                os.close(handle)
    except OSError as err:
        return str(err)
    return None


def drop_problem() -> str | None:
    """Why the grader's test process cannot run as an unprivileged user here (None when it can): it must still
    read its Python environment and the course helpers once it has dropped."""
    here = pathlib.Path.cwd().resolve()  # the scratch course: given to the grader's user by prepare_for_drop
    for path in _needed_paths():
        for part in [*reversed(path.parents), *([path] if path != here else [])]:
            mode = part.stat().st_mode
            if not mode & 0o001:
                return f"{part} cannot be entered by other users (chmod o+x it, or grade as a non-root user)"
    return None


def drop_privileges(slot: int, home: str) -> None:
    """Become the slot's grader user: no root, no supplementary groups, no capabilities, no way back."""
    import ctypes

    uid = grader_uid(slot)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if os.getresuid() != (uid, uid, uid) or _capabilities() != 0:
        raise OSError("the grader's test process could not drop its privileges")
    os.environ["HOME"] = home


def _capabilities() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def prepare_for_drop(folder: pathlib.Path, slot: int) -> None:
    """Give the slot's grader user the scratch course it will write (run by root, before nbgrader starts)."""
    uid = grader_uid(slot)
    for top, dirs, files in os.walk(folder):
        os.chown(top, uid, uid)
        for name in dirs + files:
            os.chown(os.path.join(top, name), uid, uid, follow_symlinks=False)


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

    def __init__(self, env: dict[str, str], limits: Limits, slot: int = 0, log: str | None = None):
        self.env, self.limits, self.slot = env, limits, slot
        self.log_path = log
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
        control_read, control_write = os.pipe()  # the grader's commands to the keeper
        status_read, status_write = os.pipe()  # the keeper's reports
        env = self._environment(home)
        env["AUTOGRADER_FDS"] = f"{to_child},{to_grader}"
        spec = {
            "command": self.command(), "env": env, "wire": [to_child, to_grader], "control": control_read,
            "status": status_write, "log": self.log_path,
        }  # fmt: skip
        keeper_env = {"PATH": "/usr/bin:/bin", "AUTOGRADER_KEEPER": json.dumps(spec)}
        try:
            self.keeper = subprocess.Popen(
                [sys.executable, "-s", "-m", "autograder.sandbox"],
                env=keeper_env, cwd=str(HERE.parent), stdin=subprocess.DEVNULL,
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
                if word == "runner":
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


if __name__ == "__main__":
    sys.exit(keeper_main())
