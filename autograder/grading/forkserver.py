"""Warm starts: ``nbgrader autograde`` forked from a *fork server*, a process that has already imported nbgrader
and TensorFlow.

Each submission is graded by a fresh ``nbgrader autograde`` process, so nothing one submission does in the grader
(the tests run there) can reach the next. Started the plain way, every one of those processes spends seconds
importing nbgrader, and more importing TensorFlow again for the tests' own Keras: measured at about a third of the
time per submission. Here one *fork server* per grading environment imports all that once, while it is still
single-threaded, and then forks a child per submission. The child is a copy of the fork server as it was after the
imports, before any grading; it sets the submission's environment, changes to its scratch folder and runs
nbgrader's command line, exactly as the ``nbgrader`` command would, in a session (process group) of its own. It
ends with nbgrader's exit status; the fork server itself never grades. The fork server ends when the grader closes
its end of the pipe or dies, and kills the gradings still running then.

The fork server is started with the grading environment (``PYTHONHASHSEED`` and TensorFlow's settings take effect
at start), so it serves only jobs with that same environment; :func:`server_for` keeps one per distinct
environment. When none can be started or one stops answering, the caller
(:func:`autograder.grading.nbgrader_run.run_nbgrader`) says so once in the log and falls back to starting
``nbgrader`` as a new process.

Protocol (one JSON object per line): the caller writes ``{"args", "cwd", "env", "log"}``; the fork server answers
``{"started": pid}`` (or ``{"error": text}``), and later ``{"exited": pid, "status": code}`` for each child.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading

# Imported by the fork server before it forks: what every grading would otherwise import again. TensorFlow through
# Keras (the tests of the Keras assignments use it in the grader), and the libraries of the given cells.
PRELOAD = (
    "nbgrader.apps.nbgraderapp",
    "nbgrader.apps.autogradeapp",
    "nbgrader.preprocessors",
    "nbgrader.api",
    "autograder.sandbox.execute",
    "autograder.grading.nbgrader_run",
    "numpy",
    "matplotlib.pyplot",
    "keras",
    "cnnbook",
)


STARTUP_TIMEOUT = 300  # seconds the fork server may take to import everything (TensorFlow on a loaded machine)


# ------------------------------------------------------------------------------------------------- server
def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _child(request: dict) -> None:
    """In the forked child: become ``nbgrader ARGS`` run in ``cwd`` with ``env``; never returns."""
    status = 1
    try:
        from autograder.processes import die_with_parent

        os.setsid()
        die_with_parent()  # dies with the fork server (which ends when the grader does)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if os.geteuid() == 0:  # still single-threaded: the view the grader keeps once it drops root
            from autograder.sandbox.isolation import private_view

            problem = private_view()
            if problem:
                print(f"autograder: no private view of the file system ({problem})", file=sys.stderr)
        sys.argv = ["nbgrader", *request["args"]]
        from nbgrader.apps.nbgraderapp import main

        try:
            returned = main()
            status = returned if isinstance(returned, int) else 0
        except SystemExit as exit_:
            code = exit_.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # noqa: BLE001 (anything: report it in the log, exit non-zero)
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
        status = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _kill_all(children: set[int]) -> None:
    from autograder.processes import kill_tree

    for pid in children:
        kill_tree(pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def serve() -> int:
    """The fork server: import, then fork a child per request until stdin closes."""
    import importlib

    # The answers go to the grader on a descriptor of their own; what the imports print goes to stderr.
    channel = os.dup(1)
    os.dup2(2, 1)

    def say(message: dict) -> None:
        os.write(channel, json.dumps(message).encode() + b"\n")

    # NumPy's OpenBLAS starts a thread pool when it loads: one thread, so that the fork server stays one thread
    # (the grader's tests do little linear algebra; TensorFlow's own pools start in each child, after the fork).
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if _threads() != 1:  # forking a process with threads can copy a held lock: refuse, the caller falls back
        say({"error": f"the fork server has {_threads()} threads after its imports"})
        return 1
    say({"ready": os.getpid()})
    stdin = sys.stdin.buffer
    buffer = b""
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([stdin], [], [], 0.05 if children else None)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    children.discard(pid)
                    say({"exited": pid, "status": os.waitstatus_to_exitcode(status)})
        if not readable:
            continue
        chunk = os.read(stdin.fileno(), 1 << 16)
        if not chunk:  # the grader closed the pipe (it ended, or was killed): so do the gradings it started
            _kill_all(children)
            return 0
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
                pid = os.fork()
            except Exception as err:  # noqa: BLE001
                say({"error": f"{type(err).__name__}: {err}"})
                continue
            if pid == 0:
                os.close(channel)
                _child(request)
            children.add(pid)
            say({"started": pid})


# --------------------------------------------------------------------------------------------------- caller
class ForkServer:
    """A running fork server, shared by the threads of one grading process."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autograder.grading.forkserver"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # no PR_SET_PDEATHSIG: it fires when the *thread* that started it ends; the server ends on EOF instead
        self._lock = threading.Lock()  # one request at a time; its "started" answer comes before the next
        self._started: list[dict] = []
        self._exits: dict[int, int] = {}
        self._changed = threading.Condition()
        self.problem: str | None = None
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline() if ready else b'{"error": "it did not start in time"}'
        first = json.loads(line or b'{"error": "the fork server ended"}')
        if "ready" not in first:
            self.problem = first.get("error", str(first))
            self.close()
            return
        threading.Thread(target=self._read, daemon=True, name="forkserver-reader").start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                if "exited" in message:
                    self._exits[int(message["exited"])] = int(message["status"])
                else:
                    self._started.append(message)
                self._changed.notify_all()
        with self._changed:
            self.problem = self.problem or "the fork server ended"
            self._changed.notify_all()

    def start(self, args: list[str], cwd: str, env: dict[str, str], log: str) -> int:
        """Fork ``nbgrader ARGS``; returns the child's pid (its process group id too)."""
        request = json.dumps({"args": args, "cwd": cwd, "env": env, "log": log}).encode() + b"\n"
        with self._lock:
            if self.problem:
                raise OSError(self.problem)
            self.process.stdin.write(request)
            self.process.stdin.flush()
            with self._changed:
                self._changed.wait_for(lambda: self._started or self.problem, timeout=60)
                if not self._started:
                    raise OSError(self.problem or "the fork server did not answer in 60 s")
                answer = self._started.pop(0)
        if "started" not in answer:
            raise OSError(answer.get("error", str(answer)))
        return int(answer["started"])

    def wait(self, pid: int, timeout: float | None) -> int | None:
        """The child's exit status, or None if it has not ended within ``timeout`` seconds."""
        with self._changed:
            ended = self._changed.wait_for(lambda: pid in self._exits or self.problem is not None, timeout)
            if pid in self._exits:
                return self._exits.pop(pid)
        if ended:  # the fork server died: its children died with it (PR_SET_PDEATHSIG)
            raise OSError(self.problem)
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.close()
        with contextlib.suppress(Exception):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_SERVERS: dict[str, ForkServer | None] = {}
_SERVERS_LOCK = threading.Lock()


def server_for(env: dict[str, str], log=None) -> ForkServer | None:
    """The fork server for this environment (started on first use), or None when none can run here."""
    key = json.dumps(env, sort_keys=True)
    with _SERVERS_LOCK:
        if key not in _SERVERS:
            server = ForkServer(env)
            if server.problem:
                if log is not None:
                    log(f"no warm start ({server.problem}): starting nbgrader afresh for each submission")
                server = None
            _SERVERS[key] = server
        server = _SERVERS[key]
        if server is not None and server.problem:  # it stopped since: start a new one next time
            del _SERVERS[key]
            return None
        return server


def close_all() -> None:
    with _SERVERS_LOCK:
        for server in _SERVERS.values():
            if server is not None:
                server.close()
        _SERVERS.clear()


if __name__ == "__main__":
    sys.exit(serve())
