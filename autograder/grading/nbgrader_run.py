"""Running ``nbgrader``: the grading environment every nbgrader process and kernel gets, and one nbgrader command
run under a wall-clock limit (forked warm from a fork server, or started afresh)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys

from ..processes import die_with_parent, kill_tree
from ..sandbox.isolation import private_view


def grading_env(standin: bool) -> dict[str, str]:
    """The environment of every nbgrader process and kernel: fixed seeds, quiet TensorFlow, no GUI backends, and
    strict data (a missing dataset is an error) unless stand-ins were asked for explicitly. Built on the machine
    that runs nbgrader (a cluster worker builds its own), from that machine's Python environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNBOOK_", "JPY_", "NBGRADER_"))}
    env.update(
        PATH=f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
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


def bin_dir() -> pathlib.Path:
    """Where this Python environment's commands (nbgrader, alembic) are."""
    return pathlib.Path(sys.executable).parent


def run_nbgrader(args: list[str], cwd: pathlib.Path, env: dict, timeout: float | None, log, warm_start=False):
    """Run ``nbgrader ARGS`` as its own process group; kill the whole group (kernel included) on timeout.
    Returns the exit status, or None when it ran out of time. ``warm_start``: fork it from a fork server that
    has nbgrader and TensorFlow imported already (``autograder.grading.forkserver``), when one can run here."""
    if warm_start:
        from . import (
            forkserver,
        )  # not at the top: ``python -m autograder.grading.forkserver`` imports this package

        server = forkserver.server_for(env, log=warn_once)
        if server is not None:
            try:
                pid = server.start(args, str(cwd), env, str(log))
            except OSError as err:
                warn_once(f"warm start failed ({err}): starting nbgrader afresh")
            else:
                try:
                    status = server.wait(pid, timeout)
                except OSError:  # the fork server died, and the child with it
                    status = 1
                if status is None:
                    kill_tree(pid)
                    with contextlib.suppress(OSError):
                        server.wait(pid, 30)
                return status
    command = [str(bin_dir() / "nbgrader"), *args]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=grading_child if sys.platform.startswith("linux") else None,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The kernel runs in a session of its own (jupyter_client starts it so): kill the whole tree.
            kill_tree(process.pid)
            return None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def grading_child() -> None:
    """In nbgrader's process before it execs: die with the grader, and (root) take the private view of the file
    system it keeps once it drops root (``autograder.sandbox.isolation.private_view``)."""
    die_with_parent()
    if os.geteuid() == 0:
        private_view()


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"autograder: {message}", file=sys.stderr, flush=True)
