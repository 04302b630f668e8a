"""Process control shared by the grader, the warm-start template and the sandbox's keeper (standard library only).

* :func:`die_with_parent` (run in a child before it execs): the kernel kills the child when its parent dies;
* :func:`descendants`: every process below a process, read from ``/proc``;
* :func:`kill_tree`: SIGKILL a process, everything below it and its process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import signal


def die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (Linux: read from /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process, everything below it, and its process group."""
    for child in descendants(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
