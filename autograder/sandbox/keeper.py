"""The keeper: a small root process that holds a student's sandbox for a grader that has dropped root.

Started by ``autograder.sandbox.process`` as ``python -m autograder.sandbox.keeper`` with its orders in
``AUTOGRADER_KEEPER``."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading

from ..processes import descendants, die_with_parent

LOG_BYTES = 4 << 20  # what the student's process may print outside cells (during test calls) into sandbox.log
RUNNER = b"/grader/autograder/sandbox/runner.py"  # the runner, as its command line names it in the sandbox


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
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock, contextlib.suppress(OSError):
            status.write(line.encode() + b"\n")

    warm = process = None
    try:
        if spec.get("zygote"):
            try:
                warm = Warm(spec["zygote"], spec["env"], spec["tmp_mb"], [*wire_fds, out_write])
                say("mode warm")
            except (OSError, ValueError) as err:  # the warm sandbox is gone or refused: a cold one, as always
                say(f"mode cold {json.dumps(f'the warm sandbox could not be used: {err}')}")
        if warm is None:
            process = subprocess.Popen(
                spec["command"], env=spec["env"], cwd="/", stdin=subprocess.DEVNULL, stdout=out_write,
                stderr=subprocess.STDOUT, pass_fds=wire_fds, start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
    except OSError as err:
        say(f"failed {json.dumps(str(err))}")
        return 1
    finally:
        os.close(out_write)
        for fd in wire_fds:
            os.close(fd)
    copier = threading.Thread(target=copy_log, args=(out_read, spec["log"]), daemon=True)
    copier.start()
    if warm is not None:
        warm.serve(control, say)
        copier.join(5)
        return 0

    def waiter() -> None:
        say(f"exit {process.wait()}")

    threading.Thread(target=waiter, daemon=True).start()
    runner = None
    for raw in iter(control.readline, b""):
        command = raw.strip()
        if command == b"find":
            runner = find_runner(process.pid)
            say(f"runner {runner or 0}")
        elif command == b"int" and runner is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(runner, signal.SIGINT)
        elif command == b"kill":
            kill_sandbox(process)
    kill_sandbox(process)  # the grader is done (or gone)
    process.wait()
    copier.join(5)
    return 0


class Warm:
    """A submission's process forked by the slot's warm sandbox (``zygote.py``): the connection to its holder,
    which carries the orders (``int``, ``kill``; closing it kills the submission) and brings back its exit
    status."""

    def __init__(self, path: str, env: dict, tmp_mb: int, fds: list[int]):
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.settimeout(30)
        self.conn.connect(path)
        socket.send_fds(self.conn, [json.dumps({"env": env, "tmp_mb": int(tmp_mb)}).encode()], fds)
        self.reader = self.conn.makefile("rb")
        answer = self.reader.readline()
        if answer != b"started\n":
            self.conn.close()
            raise OSError(f"it answered {answer[:300].decode(errors='replace').strip()!r}")
        self.conn.settimeout(None)

    def serve(self, control, say) -> None:
        ended = threading.Event()

        def waiter() -> None:
            line = b""
            with contextlib.suppress(OSError, ValueError):
                line = self.reader.readline()
            word, _, value = line.decode(errors="replace").strip().partition(" ")
            say(f"exit {int(value) if word == 'exit' and value.lstrip('-').isdigit() else -signal.SIGKILL}")
            ended.set()

        threading.Thread(target=waiter, daemon=True).start()
        for raw in iter(control.readline, b""):
            command = raw.strip()
            if command == b"find":  # the holder signals the runner: there is no host process id to look up
                say("runner 1")
            elif command in (b"int", b"kill"):
                with contextlib.suppress(OSError):
                    self.conn.sendall(command + b"\n")
        with contextlib.suppress(OSError):  # the grader is done (or gone): kill, and wait until it is so
            self.conn.sendall(b"kill\n")
            self.conn.shutdown(socket.SHUT_WR)
        ended.wait(30)
        self.conn.close()


def kill_sandbox(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # bubblewrap's PID namespace ends with its first process
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def copy_log(fd: int, path: str | None) -> None:
    left = LOG_BYTES
    with open(path or os.devnull, "ab") as log, os.fdopen(fd, "rb", buffering=0) as pipe:
        for chunk in iter(lambda: pipe.read(1 << 16), b""):
            if left > 0:
                log.write(chunk[:left])
                log.flush()
                if len(chunk) >= left:
                    log.write(f"\n[the grader kept the first {LOG_BYTES:,} bytes of this log]\n".encode())
                left -= len(chunk)


def find_runner(root: int) -> int | None:
    """The runner's process id as the host sees it (inside bubblewrap it is a descendant of bwrap), looked up
    right after it said hello, before any student code ran."""
    for pid in descendants(root):
        try:
            name = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if name.startswith("python") and RUNNER in command:  # not bwrap or setpriv
            return pid
    return None


if __name__ == "__main__":
    sys.exit(keeper_main())
