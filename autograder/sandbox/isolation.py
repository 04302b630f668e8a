"""What makes a student's process and the grader's own test process safe to run: bubblewrap's command line, whether
the sandbox works here, and the grader's drop of root (a private view of the file system, an unprivileged user).
The design is in ``autograder/SANDBOX.md``."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

from . import datasets

PACKAGE = pathlib.Path(__file__).resolve().parent.parent  # the autograder package, which the grader imports
SLOT_UID_BASE = 61000  # sandbox user ids when the grader runs as root: 61000 + slot
GRADER_UID_BASE = 62000  # the grader's test process drops to 62000 + slot once its sandbox runs (run by root)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "passwd", "group", "nsswitch.conf", "localtime", "fonts", "mime.types")


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
        command = bwrap_prefix(path, slot=0, tmp_mb=16) + ["/usr/bin/true"]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
            if done.returncode != 0:
                detail = done.stderr.decode(errors="replace").strip()[:300]
                problem = f"bubblewrap could not start a sandbox here ({detail or f'exit {done.returncode}'})"
        except (OSError, subprocess.SubprocessError) as err:
            problem = f"bubblewrap could not start a sandbox here ({err})"
    _PROBE[path] = problem
    return problem


def system_binds() -> list[str]:
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


def bwrap_prefix(path: str, slot: int, tmp_mb: int) -> list[str]:
    """bwrap and its options up to the command (without the Python environment's binds)."""
    args = [path, "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += system_binds()
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


def python_binds() -> list[str]:
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


# ------------------------------------------------------------------------------------------- privileges
def grader_uid(slot: int) -> int:
    return GRADER_UID_BASE + slot


def needed_paths() -> list[pathlib.Path]:
    """What the grader's test process reads after it drops root: its Python, the packages, the datasets, and the
    scratch course it grades in (its working directory)."""
    paths = [pathlib.Path(sys.prefix).resolve(), pathlib.Path(sys.base_prefix).resolve(), PACKAGE]
    paths.append(pathlib.Path.cwd().resolve())
    spec = importlib.util.find_spec("cnnbook")
    if spec is not None and spec.origin:
        paths.append(pathlib.Path(spec.origin).resolve().parent)
    data = keras_home()
    if data is not None:
        paths.append(data.resolve())
    sealed = os.environ.get(datasets.ENV, "").strip()  # the sandbox's training splits, bound by the keeper
    if sealed:
        paths.append(pathlib.Path(sealed).resolve())
    fonts = pathlib.Path.home() / ".cache" / "matplotlib"  # Matplotlib's font list, read on import
    if fonts.is_dir():
        paths.append(fonts.resolve())
    return sorted(set(paths))


def private_view() -> str | None:
    """Give this process (root, single-threaded: a grading process right after it was forked or before it execs)
    a mount namespace of its own in which every folder that stands between it and what it needs after dropping
    root (:func:`needed_paths`; typically ``/root`` above a pyenv Python, or a private temporary folder above the
    scratch course) is replaced by an empty tmpfs holding only those paths, bound in. Nothing changes outside the
    process; the rest of such a folder is out of reach. Returns None, or why it could not (then the process keeps
    root, and the record says so)."""
    import ctypes

    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return "not root"
    plan: dict[pathlib.Path, list[pathlib.Path]] = {}
    for path in needed_paths():
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
    for path in needed_paths():
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
    if os.getresuid() != (uid, uid, uid) or capabilities() != 0:
        raise OSError("the grader's test process could not drop its privileges")
    os.environ["HOME"] = home


def capabilities() -> int:
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
