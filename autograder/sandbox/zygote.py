"""The warm sandbox (the student's side): a process inside bubblewrap that has imported what every submission's
process imports, and forks a fresh, further isolated process for each submission. The design is in
``autograder/SANDBOX.md`` ("Warm sandboxes").

Started by ``autograder.sandbox.warm`` as ``python /grader/autograder/sandbox/zygote.py`` inside a sandbox like a
submission's (same file system, no network), but as root of the sandbox's namespaces with five capabilities
(``CAP_SYS_ADMIN``, ``CAP_SETUID``, ``CAP_SETGID``, ``CAP_SETPCAP``, ``CAP_KILL``) and no student code. It imports
IPython, NumPy, Matplotlib, TensorFlow through Keras and the course helpers once, checks that it is still one
thread, proves once that it can isolate a child (:func:`probe`), then listens on a Unix socket in ``/zygote`` (a
folder only root can enter on the grader's machine). Each connection is one submission: the grader's keeper
sends the runner's environment and three descriptors (the wire's two pipes and the log) and keeps the connection as
its control line. For each, three processes:

* the *holder* (forked from the zygote, keeps root): takes a new PID namespace for its child and obeys the keeper
  (``int``: interrupt the runner, ``kill``: kill everything; the connection closing kills everything too), then
  reports ``exit STATUS`` and ends;
* the *init* (PID 1 of that namespace): takes new mount, network, IPC and UTS namespaces, mounts a fresh ``tmpfs``
  on ``/tmp`` (with the student's home, and the sandbox's read-only binds below ``/tmp`` carried over: see
  :func:`fresh_tmp`) and a fresh ``/proc``, removes ``/zygote`` from its view,
  drops every capability from the bounding set, switches to the slot's unprivileged user with no groups and sets
  ``no_new_privs``; then forks the runner, forwards the interrupt to it, and ends with its status, which ends
  every process left in the namespace;
* the *runner* (PID 2): keeps only the wire, the log and ``/dev/null`` open, takes the request's environment,
  reseeds Python's and NumPy's generators, and runs ``runner.main()`` as a cold sandbox would, limits first.

Nothing of one submission survives into the next: every process of it is in its own PID namespace, which ends with
it; the one place it can write (``/tmp``) is a ``tmpfs`` of its own mount namespace; its memory
(patched modules, threads, globals) was a copy of the zygote's, which never runs student code.
"""

import ctypes
import json
import os
import re
import select
import signal
import socket
import sys

if __name__ == "__main__":  # run as a file in the sandbox: the folder above the package on the path, not this one
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SOCKET = "/zygote/socket"
STAGE = "/tmp/.autograder-stage"  # where each submission's fresh /tmp is put together before it covers the old
PRELOAD = (
    "IPython.core.interactiveshell",
    "IPython.utils.capture",
    "numpy",
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "keras",
    "cnnbook",
    "autograder.sandbox.runner",
)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x1000, 0x2000, 0x4000, 1 << 18
MNT_DETACH = 2
KEPT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}  # by mountinfo's names
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
WIRE_IN, WIRE_OUT = 3, 4  # the runner's descriptors for the wire

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target: str, kind, flags: int, data=None) -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(encode(source), target.encode(), encode(kind), flags, encode(data)), f"mount {target}")


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


# ------------------------------------------------------------------------------------- one submission
def _loopback_up() -> None:
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1 | 0x40))  # SIOCSIFFLAGS: UP|RUNNING


def _isolate(uid: int, tmp_mb: int) -> None:
    """In the init, PID 1 of the submission's own PID namespace: its own mount, network, IPC and UTS namespaces,
    fresh writable places and /proc, then the slot's user with no capabilities left anywhere."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _check(_libc.umount2(b"/zygote", MNT_DETACH), "removing /zygote")
    fresh_tmp(tmp_mb)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _loopback_up()
    with open("/proc/sys/kernel/cap_last_cap") as last:
        for cap in range(int(last.read()) + 1):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the runner (same user) cannot trace its init
    if os.getresuid() != (uid, uid, uid) or _capabilities() != (0, 0):
        raise OSError("the submission's process could not drop its privileges")


def _mounts_under(folder: str) -> list[tuple[str, set[str]]]:
    """The mount points below ``folder`` (not below one another) with their options, from /proc/self/mountinfo."""
    below = lambda point, above: point == above or point.startswith(above.rstrip("/") + "/")  # noqa: E731
    visible: list[tuple[str, set[str]]] = []
    with open("/proc/self/mountinfo") as table:  # in the order they were mounted: a later one covers earlier ones
        for line in table:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            visible = [(p, o) for p, o in visible if not below(p, point)] + [(point, set(fields[5].split(",")))]
    found = [(p, o) for p, o in visible if p not in (folder, STAGE) and below(p, folder)]
    found.sort(key=lambda item: len(item[0]))
    top: list[tuple[str, set[str]]] = []
    for point, options in found:
        if not any(below(point, above) for above, _ in top):
            top.append((point, options))
    return top


def fresh_tmp(tmp_mb: int) -> None:
    """A fresh ``tmpfs`` on ``/tmp`` (size ``tmp_mb``, mode 1777, with the student's home) in this process's own
    mount namespace. What the sandbox bound below ``/tmp`` (a Python environment or course helpers that live there:
    a cold sandbox binds them after its ``/tmp``) is carried over, recursively and with its read-only, nosuid,
    nodev and noexec flags; nothing else of the old ``/tmp`` is in reach. The new ``/tmp`` is put together at
    ``STAGE`` and then moved over the old one."""
    carried = _mounts_under("/tmp")
    _mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(tmp_mb)}m,mode=1777")
    for point, options in carried:
        target = STAGE + point[len("/tmp") :]
        parts = target[len(STAGE) + 1 :].split("/")
        for depth in range(1, len(parts)):  # the folders above it, 0755 as bubblewrap makes them
            parent = "/".join([STAGE, *parts[:depth]])
            if not os.path.isdir(parent):
                os.mkdir(parent)
                os.chmod(parent, 0o755)
        if os.path.isdir(point):
            os.mkdir(target)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(point, target, None, MS_BIND | MS_REC)
        kept = sum(flag for name, flag in KEPT_FLAGS.items() if name in options)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | kept)
    _mount(STAGE, "/tmp", None, MS_MOVE)
    os.mkdir("/tmp/home")
    os.chmod("/tmp/home", 0o777)


def _capabilities() -> tuple[int, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields.get("CapEff", "0"), 16), int(fields.get("CapBnd", "0"), 16)


def _become_runner(fds: list[int], request: dict) -> None:
    """In the runner (PID 2): the wire on 3 and 4, the log on 1 and 2, nothing else open; the request's
    environment; then the runner, exactly as a cold sandbox runs it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    import fcntl

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in fds]  # above any number the moves below overwrite
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(high[2], 1)
    os.dup2(high[2], 2)
    os.dup2(high[0], WIRE_IN)
    os.dup2(high[1], WIRE_OUT)
    os.closerange(WIRE_OUT + 1, 1 << 16)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request.get("env") or {}).items()})
    os.environ["AUTOGRADER_FDS"] = f"{WIRE_IN},{WIRE_OUT}"
    os.chdir(os.environ.get("HOME") or "/tmp/home")
    import random

    random.seed()  # the zygote's generators were seeded once; every submission starts from its own
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if request.get("probe"):
        _probe_report()
        return
    from autograder.sandbox import runner

    runner.main()


def _needed() -> list[str]:
    """What the runner must still reach once its /tmp is fresh: the interpreter, its environment and the code."""
    import autograder.sandbox

    return [sys.executable, sys.prefix, os.path.dirname(autograder.sandbox.__file__)]


def _probe_report() -> None:
    effective, bounding = _capabilities()
    facts = {
        "pid": os.getpid(), "uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
        "effective": effective, "bounding": bounding, "tmp": sorted(os.listdir("/tmp")),
        "zygote": os.path.exists(SOCKET), "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()),
        "unreachable": [path for path in _needed() if not os.path.exists(path)],
    }  # fmt: skip
    with open(WIRE_OUT, "w", closefd=False) as out:
        out.write(json.dumps(facts) + "\n")


def _init(fds: list[int], request: dict, uid: int) -> None:
    """PID 1 of the submission's namespace: isolate, fork the runner, forward its interrupt, end with it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _isolate(uid, int(request.get("tmp_mb", 512)))
    runner = os.fork()
    if runner == 0:
        try:
            _become_runner(fds, request)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001 (into the log: the grader reports the process's end)
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001, S110
                    pass
        os._exit(code)
    for fd in fds:
        os.close(fd)

    def forward(signum, frame) -> None:
        try:
            os.kill(runner, signal.SIGINT)
        except OSError:  # it has just ended: the loop below reports it
            pass

    signal.signal(signal.SIGINT, forward)
    while True:
        pid, status = os.wait()
        if pid == runner:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code & 0xFF)


def _hold(conn: socket.socket, fds: list[int], request: dict, uid: int) -> None:
    """The holder: a PID namespace for the init, the keeper's orders carried out, the status reported."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the zygote
    _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")
    init = os.fork()
    if init == 0:
        conn.close()
        try:
            _init(fds, request, uid)
        finally:
            os._exit(125)
    for fd in fds:
        os.close(fd)
    conn.sendall(b"started\n")
    buffer, code = b"", None
    while code is None:
        readable, _, _ = select.select([conn], [], [], 0.1)
        done, status = os.waitpid(init, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if not readable:
            continue
        chunk = conn.recv(256)
        if not chunk:  # the keeper is gone: so is the submission
            os.kill(init, signal.SIGKILL)
            _, status = os.waitpid(init, 0)
            code = os.waitstatus_to_exitcode(status)
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line == b"int":
                os.kill(init, signal.SIGINT)
            elif line == b"kill":
                os.kill(init, signal.SIGKILL)
    try:
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass


def _fork_submission(conn, fds, request, uid, server, closing) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            server.close()
            null = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(null, std)
            for fd in closing:
                if fd > 2:  # the lifeline is 0, now /dev/null like 1 and 2
                    os.close(fd)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            _hold(conn, fds, request, uid)
        finally:
            os._exit(0)
    conn.close()
    for fd in fds:
        os.close(fd)
    return pid


# ------------------------------------------------------------------------------------------- the zygote
def probe(uid: int, server: socket.socket, closing: list[int]) -> str | None:
    """Isolate one child exactly as a submission's and check what it sees; None when all is as it must be."""
    wire_in, probe_in = os.pipe()
    probe_out, wire_out = os.pipe()
    log_read, log_write = os.pipe()
    ours, theirs = socket.socketpair()
    holder = _fork_submission(
        theirs, [wire_in, wire_out, log_write], {"probe": True, "tmp_mb": 1}, uid, server, closing
    )
    os.close(probe_in)
    try:
        ours.settimeout(60)
        reader = ours.makefile("rb")
        started, ended = reader.readline(), reader.readline()
        with os.fdopen(probe_out, "rb") as out:
            facts = json.loads(out.readline() or b"{}")
    except (OSError, ValueError) as err:
        return f"the isolated child did not report ({err})"
    finally:
        ours.close()
        os.close(log_read)
        os.waitpid(holder, 0)
    want = {
        "pid": 2, "uid": [uid] * 3, "gid": [uid] * 3, "groups": [], "effective": 0, "bounding": 0,
        "tmp": sorted({"home"} | {point.split("/")[2] for point, _ in _mounts_under("/tmp")}),
        "zygote": False, "pids": ["1", "2"], "unreachable": [],
    }  # fmt: skip
    wrong = {k: facts.get(k) for k, v in want.items() if facts.get(k) != v}
    if started != b"started\n" or ended != b"exit 0\n" or wrong:
        return f"the isolated child was not isolated as required ({wrong or (started + ended).decode()!r})"
    return None


def main() -> int:
    import importlib

    uid = int(os.environ.pop("AUTOGRADER_ZYGOTE_UID"))
    lifeline = sys.stdin.fileno()  # the grader's pipe: its end closing ends the zygote and all it started
    answer = os.dup(1)
    os.dup2(2, 1)

    def say(message: dict) -> None:
        os.write(answer, json.dumps(message).encode() + b"\n")

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if _threads() != 1:  # forking a process with threads can copy a held lock: refuse, the grader goes cold
        say({"error": f"the warm sandbox has {_threads()} threads after its imports"})
        return 1
    os.mkdir(STAGE, 0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(SOCKET)
    os.chmod(SOCKET, 0o600)
    server.listen(8)
    try:
        problem = probe(uid, server, [lifeline, answer])
    except OSError as err:
        problem = f"it could not isolate a child ({err})"
    if problem:
        say({"error": problem})
        return 1
    say({"ready": True})
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([lifeline, server], [], [], 0.5 if children else None)
        for pid in list(children):
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
        if lifeline in readable and not os.read(lifeline, 4096):
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            return 0
        if server in readable:
            conn, _ = server.accept()
            try:
                data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
                request = json.loads(data or b"{}")
                if len(fds) != 3 or not isinstance(request, dict):
                    raise ValueError("a request needs the wire's two pipes and the log")
            except (OSError, ValueError) as err:
                for fd in locals().get("fds") or []:
                    os.close(fd)
                conn.sendall(f"error {err}\n".encode()[:4000])
                conn.close()
                continue
            children.add(_fork_submission(conn, fds, request, uid, server, [lifeline, answer]))


if __name__ == "__main__":
    sys.exit(main())
