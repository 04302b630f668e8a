"""Warm sandboxes (the grader's side): one per grading slot and grading environment, started by the process that
grades (a worker), kept for the submissions it grades in that slot, and ended with it. The student's side, and
what isolates each submission's process, is ``zygote.py``; the design is in ``autograder/SANDBOX.md``.

:func:`socket_for` returns the socket a submission's keeper connects to (``c.SandboxedExecute.zygote``), or None:
then the sandbox starts cold, as it always could. A warm sandbox needs root (it switches each submission's process
to the slot's user); one that cannot start, or cannot prove that it isolates a child, is reported once in the log
and not tried again by this process.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading

from .isolation import SLOT_UID_BASE, isolation_problem
from .process import Limits, Sandbox

STARTUP_TIMEOUT = 300  # seconds it may take to import TensorFlow and prove its isolation (a loaded machine)
# Warm sandboxes one process keeps (each holds about 1 GB: TensorFlow); one per worker when workers <= cores. A
# grading in a further slot starts cold (a warm sandbox is never closed while its slot may be grading with it).
KEPT = max(2, os.cpu_count() or 2)


PREFIX = "autograder-warm-"  # then the grading process's PID and the slot: autograder-warm-PID-SLOT-random


def sweep(folder: str | None = None) -> list[str]:
    """Remove the socket folders that graders which were killed (and so could not close their warm sandboxes) left
    in the temporary folder: those whose grading process is gone. Returns what it removed."""
    removed = []
    folder = folder or tempfile.gettempdir()
    for path in glob.glob(os.path.join(folder, f"{PREFIX}*")):
        parts = os.path.basename(path)[len(PREFIX) :].split("-")  # PID, slot, mkdtemp's letters (never a "-")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        if not os.path.isdir(path) or os.path.islink(path) or os.stat(path).st_uid != os.geteuid():
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:  # alive (another user's process), or not ours to ask about
            pass
    return removed


class WarmSandbox:
    """A running warm sandbox: ``python zygote.py`` in bubblewrap, with its socket in a folder only root enters."""

    def __init__(self, env: dict[str, str], slot: int):
        self.slot = slot
        self.problem: str | None = None
        sweep()
        self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{slot}-")  # 0700: root only
        self.socket = os.path.join(self.folder, "socket")
        sandbox = Sandbox(env, Limits(), slot)
        zenv = sandbox._environment("/tmp/home")
        zenv.pop("AUTOGRADER_LIMITS", None)  # each submission's process gets its own, from its keeper
        # NumPy's OpenBLAS would start a thread pool when it loads; one thread, so that the process forked for each
        # submission is a whole copy (forking a process with threads can copy a lock some thread holds).
        zenv.update(OPENBLAS_NUM_THREADS="1", AUTOGRADER_ZYGOTE_UID=str(SLOT_UID_BASE + slot))
        try:
            self.process = subprocess.Popen(
                sandbox.zygote_command(self.folder),
                env=zenv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip  (no PR_SET_PDEATHSIG: it fires when the starting *thread* ends; it ends on EOF instead)
        except OSError as err:
            self.problem = str(err)
            return
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT)
        line = self.process.stdout.readline() if ready else b'{"error": "it did not start in time"}'
        try:
            first = json.loads(line or b'{"error": "it ended while starting"}')
        except ValueError:
            first = {"error": f"it said {line[:200]!r}"}
        if not first.get("ready"):
            self.problem = str(first.get("error", first))
            self.close()

    def alive(self) -> bool:
        return self.problem is None and self.process.poll() is None

    def close(self) -> None:
        process = getattr(self, "process", None)
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the zygote ends, killing what it still runs
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


_WARM: dict[str, WarmSandbox] = {}
_FAILED: dict[str, str] = {}
_LOCK = threading.Lock()


def _key(env: dict[str, str], slot: int) -> str:
    sandbox = Sandbox(env, Limits(), slot)
    return json.dumps([slot, sys.executable, sandbox._environment("/tmp/home"), sandbox._binds()], sort_keys=True)


def problem() -> str | None:
    """Why no warm sandbox can run here (None when one may)."""
    if os.geteuid() != 0:
        return "a warm sandbox needs a grader run by root (it switches each submission to the slot's user)"
    return isolation_problem()


def socket_for(env: dict[str, str], slot: int, log=None) -> str | None:
    """The socket of this slot's warm sandbox for this environment (started on first use), or None."""
    why = problem()
    if why is not None:
        return None
    key = _key(env, slot)
    with _LOCK:
        warm = _WARM.get(key)
        if warm is not None and not warm.alive():
            warm.close()
            del _WARM[key]
            warm = None
        if warm is None and len(_WARM) >= KEPT:
            if log is not None:
                log(f"{KEPT} warm sandboxes in this process already: slot {slot} starts cold sandboxes")
            return None
        if warm is None and key not in _FAILED:
            warm = WarmSandbox(env, slot)
            if warm.problem:
                _FAILED[key] = warm.problem
                if log is not None:
                    log(f"no warm sandbox ({warm.problem}): each submission's sandbox starts cold")
                warm = None
            else:
                _WARM[key] = warm
        return warm.socket if warm is not None else None


def slots() -> list[int]:
    """The slots this process has warm sandboxes for (a grading takes one of them first, when it is free)."""
    with _LOCK:
        return [warm.slot for warm in _WARM.values()]


def close_all() -> None:
    with _LOCK:
        for warm in _WARM.values():
            warm.close()
        _WARM.clear()
        _FAILED.clear()
