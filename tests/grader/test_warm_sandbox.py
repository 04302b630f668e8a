"""The warm sandbox (``autograder/sandbox/zygote.py``): each submission's process is forked from a process that has
the student's libraries imported, and nothing one submission leaves behind reaches the next.

One worker grades, in order, a submission that leaves everything it can behind (files wherever it may write,
a process in a session of its own, a thread, listening sockets, patched NumPy, builtins, modules and environment),
then one that looks for all of it, then the honest reference. All three are graded by the same slot's warm
sandbox (the records and uids say so); the seeker must find nothing and see its own isolation (PID namespace,
unprivileged uid, no capabilities), and the reference must keep full marks.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder import cli
from autograder.sandbox import isolation, warm
from autograder.sandbox.process import Limits, Sandbox
from tests.support.a1_course import FULL, A, gradebook_scores, make_course, reference

pytestmark = pytest.mark.skipif(
    warm.problem() is not None, reason=f"no warm sandbox here: {warm.problem()} (make sandbox, run as root)"
)

LEAVE = r"""
import builtins, json, math, os, socket, subprocess, sys, threading, time
import numpy
import cnnbook

TOKEN = "@TOKEN@"
print("LEAVER", json.dumps({"time": time.time(), "uid": os.getuid()}))
written = []
for path in ("/tmp", os.path.expanduser("~"), "/dev/shm", "/var/tmp", "/run", "/dev", "/data", "/grader"):
    try:
        with open(os.path.join(path, TOKEN + "-file"), "w") as handle:
            handle.write(TOKEN)
        written.append(path)
    except OSError:
        pass
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    if os.access(top, os.W_OK):
        try:
            with open(os.path.join(top, TOKEN + "-walk"), "w") as handle:
                handle.write(TOKEN)
            written.append(top)
        except OSError:
            pass
print("WROTE", sorted(set(written)))
subprocess.Popen(["sleep", "@SLEEP@"], start_new_session=True)
threading.Thread(target=time.sleep, args=(3600,), name=TOKEN + "-thread", daemon=False).start()
listener = socket.socket(socket.AF_INET)
listener.bind(("127.0.0.1", @PORT@))
listener.listen()
abstract = socket.socket(socket.AF_UNIX)
abstract.bind("\0" + TOKEN)
abstract.listen()
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
builtins.LEFT_BEHIND = TOKEN
cnnbook.LEFT_BEHIND = TOKEN
sys.modules["left_behind"] = builtins
os.environ["LEFT_BEHIND"] = TOKEN
math.pi = 3.0
"""

SEEK = r"""
import builtins, json, math, os, socket, sys, threading, time
import numpy
import cnnbook

TOKEN = "@TOKEN@"
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    found += [os.path.join(top, name) for name in dirs + files if TOKEN in name]
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"@SLEEP@" in handle.read():
                    found.append(f"process {entry}")
        except OSError:
            pass
found += [t.name for t in threading.enumerate() if TOKEN in t.name]
if numpy.allclose(1.0, 2.0):
    found.append("numpy.allclose patched")
try:
    numpy.testing.assert_allclose(1.0, 2.0)
    found.append("assert_allclose patched")
except AssertionError:
    pass
for where, value in (("builtins", builtins), ("cnnbook", cnnbook)):
    if hasattr(value, "LEFT_BEHIND"):
        found.append(f"{where}.LEFT_BEHIND")
if "left_behind" in sys.modules:
    found.append("sys.modules")
if os.environ.get("LEFT_BEHIND"):
    found.append("environment")
if math.pi != 3.141592653589793:
    found.append("math.pi patched")
for family, address in ((socket.AF_INET, ("127.0.0.1", @PORT@)), (socket.AF_UNIX, "\0" + TOKEN)):
    with socket.socket(family) as probe:
        try:
            probe.connect(address)
            found.append(f"listener {address!r}")
        except OSError:
            pass
with open("/proc/self/status") as handle:
    status = dict(line.split(":", 1) for line in handle if ":" in line)
facts = {
    "time": time.time(), "uid": os.getuid(), "pid": os.getpid(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cap_eff": int(status["CapEff"], 16), "cap_bnd": int(status["CapBnd"], 16),
    "no_new_privs": int(status["NoNewPrivs"]), "keras_loaded": "keras" in sys.modules,
}
print("SEEKER", json.dumps({"found": found, **facts}))
"""


def _line(nb, word: str) -> dict:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            match = re.search(rf"^{word} (.*)$", output.get("text", ""), re.M)
            if match:
                return json.loads(match.group(1))
    raise AssertionError(f"no {word} line in the autograded notebook")


def _with_cell(code: str):
    nb = reference()
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nbformat.writes(nb).encode()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("warm") / "course"
    values = {"@TOKEN@": secrets.token_hex(6), "@SLEEP@": "876543", "@PORT@": str(47000 + secrets.randbelow(999))}

    def filled(text):
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    submissions = {
        "a_leaver": (f"{A}.ipynb", _with_cell(filled(LEAVE))),
        "b_seeker": (f"{A}.ipynb", _with_cell(filled(SEEK))),
        "c_honest": (f"{A}.ipynb", _with_cell("print('honest')")),
    }
    make_course(course, submissions)
    status = cli.main(["--course", str(course), "grade", A, "--standin", "--workers", "1"])
    notebooks = {s: nbformat.read(course / "autograded" / s / A / f"{A}.ipynb", as_version=4) for s in submissions}
    return {"course": course, "status": status, "nb": notebooks, "values": values}


def test_every_submission_was_forked_from_the_warm_sandbox(graded):
    assert graded["status"] == 0
    for student, nb in graded["nb"].items():
        assert nb.metadata["autograder"].get("sandbox") == "warm", student


def test_what_one_submission_leaves_behind_does_not_reach_the_next(graded):
    leaver, seeker = _line(graded["nb"]["a_leaver"], "LEAVER"), _line(graded["nb"]["b_seeker"], "SEEKER")
    assert leaver["time"] < seeker["time"], "the seeker must be graded after the leaver"
    assert leaver["uid"] == seeker["uid"], "the same slot's warm sandbox graded both"
    assert seeker["found"] == []
    wrote = _line_text(graded["nb"]["a_leaver"], "WROTE")
    assert "/tmp" in wrote, "the leaver could not even write its own /tmp: the test would prove nothing"


def _line_text(nb, word: str) -> str:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            match = re.search(rf"^{word} (.*)$", output.get("text", ""), re.M)
            if match:
                return match.group(1)
    raise AssertionError(f"no {word} line")


def test_each_submission_is_isolated_as_a_cold_one_is(graded):
    seeker = _line(graded["nb"]["b_seeker"], "SEEKER")
    assert isolation.SLOT_UID_BASE < seeker["uid"] < isolation.SLOT_UID_BASE + 256
    assert seeker["pid"] == 2 and seeker["pids"] == [1, 2], "a PID namespace of its own: its init and itself"
    assert seeker["cap_eff"] == 0 and seeker["cap_bnd"] == 0 and seeker["no_new_privs"] == 1
    assert seeker["keras_loaded"], "the warm sandbox had Keras imported before the submission's first cell"


def test_the_honest_submissions_keep_full_marks(graded):
    scores = gradebook_scores(graded["course"])
    assert scores["c_honest"][0] == FULL
    assert scores["b_seeker"][0] == FULL  # nothing the leaver patched reached the seeker's tests either


def test_nothing_of_the_leaver_is_left_on_the_machine(graded):
    token, sleep = graded["values"]["@TOKEN@"], graded["values"]["@SLEEP@"]
    assert not list(pathlib.Path("/tmp").glob(f"*{token}*"))
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            assert sleep.encode() not in (entry / "cmdline").read_bytes()
        except OSError:
            continue


def test_without_a_warm_sandbox_a_cold_one_runs_and_says_why(tmp_path):
    from autograder.grading.nbgrader_run import grading_env
    from autograder.sandbox import datasets

    env = grading_env(True)
    env[datasets.ENV] = str(datasets.training_splits(env))
    sandbox = Sandbox(env, Limits(), slot=7, zygote=str(tmp_path / "no-such-socket"))
    with sandbox:
        reply = sandbox.run_cell("import os; print(os.getuid())", report=True, timeout=30, doing="cell 1")
    assert sandbox.mode.startswith("cold: the warm sandbox could not be used")
    assert reply["outputs"][0]["text"].strip() == str(isolation.SLOT_UID_BASE + 7)


FRESH_TMP = r"""
import json, os, stat, subprocess, sys
sys.path.insert(0, @REPO@)
from autograder.sandbox import zygote

def sh(*args):
    subprocess.run(args, check=True)

sh("mount", "-t", "tmpfs", "tmpfs", "/tmp")  # a /tmp of this private mount namespace, as bwrap gives the zygote
os.makedirs("/tmp/checkout/.venv/lib/masked")
with open("/tmp/checkout/.venv/lib/site.py", "w") as f:
    f.write("x = 1")
with open("/tmp/leftover", "w") as f:
    f.write("from an earlier submission")
sh("mount", "--bind", "/tmp/checkout/.venv", "/tmp/checkout/.venv")  # as bwrap binds an environment below /tmp
sh("mount", "-o", "remount,bind,ro,nosuid,nodev", "/tmp/checkout/.venv")
sh("mount", "-t", "tmpfs", "tmpfs", "/tmp/checkout/.venv/lib/masked")  # a nested mount, like the data masks
os.mkdir(zygote.STAGE, 0o700)
zygote.fresh_tmp(1)
try:
    open("/tmp/checkout/.venv/lib/new.py", "w")
    writable = True
except OSError:
    writable = False
options = {l.split()[4]: l.split()[5] for l in open("/proc/self/mountinfo")}
print(json.dumps({
    "tmp": sorted(os.listdir("/tmp")),
    "site": open("/tmp/checkout/.venv/lib/site.py").read(),
    "writable": writable,
    "masked": os.path.ismount("/tmp/checkout/.venv/lib/masked"),
    "options": options.get("/tmp/checkout/.venv", ""),
    "modes": [oct(stat.S_IMODE(os.stat(p).st_mode)) for p in ("/tmp", "/tmp/home", "/tmp/checkout")],
}))
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) to make a private mount namespace")
def test_a_fresh_tmp_keeps_what_the_sandbox_bound_below_tmp_and_nothing_else():
    """A course or Python environment that lives below /tmp is bound there in the sandbox (a cold sandbox binds it
    after its own /tmp): a submission's fresh /tmp must carry it over, read-only, and drop everything else."""
    repo = str(pathlib.Path(__file__).resolve().parents[2])
    script = FRESH_TMP.replace("@REPO@", repr(repo))
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["tmp"] == ["checkout", "home"]  # the leftover is gone, the checkout is there
    assert seen["site"] == "x = 1"
    assert not seen["writable"]
    assert {"ro", "nosuid", "nodev"} <= set(seen["options"].split(","))
    assert seen["masked"]
    assert seen["modes"] == ["0o1777", "0o777", "0o755"]


def test_a_warm_sandbox_that_cannot_isolate_a_child_is_not_used(monkeypatch):
    """Without CAP_SYS_ADMIN the warm sandbox cannot give a child namespaces of its own: its probe must see that,
    and the grader must not use it (the slot's submissions start cold, and the log says why)."""
    from autograder.grading.nbgrader_run import grading_env
    from autograder.sandbox import datasets, process

    env = grading_env(True)
    env[datasets.ENV] = str(datasets.training_splits(env))
    monkeypatch.setattr(process, "ZYGOTE_CAPS", tuple(c for c in process.ZYGOTE_CAPS if c != "CAP_SYS_ADMIN"))
    monkeypatch.setattr(warm, "_WARM", {})
    monkeypatch.setattr(warm, "_FAILED", {})
    said: list[str] = []
    try:
        assert warm.socket_for(env, 6, log=said.append) is None
        assert warm.socket_for(env, 6, log=said.append) is None  # not tried again
    finally:
        warm.close_all()
    assert len(said) == 1 and said[0].startswith("no warm sandbox (the isolated child"), said


def test_socket_folders_of_killed_graders_are_swept_and_live_ones_kept(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # its PID now names no process: a grader that was killed
    dead = tmp_path / f"{warm.PREFIX}{gone.pid}-1-abcd1234"
    live = tmp_path / f"{warm.PREFIX}{os.getpid()}-1-efgh5678"
    other = tmp_path / f"{warm.PREFIX}{gone.pid}-abcd1234"  # not a name this grader makes: left alone
    for folder in (dead, live, other):
        folder.mkdir(mode=0o700)
        (folder / "socket").touch()
    assert warm.sweep(str(tmp_path)) == [str(dead)]
    assert not dead.exists() and live.exists() and other.exists()
