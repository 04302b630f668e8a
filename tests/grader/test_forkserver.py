"""Warm starts (``autograder.grading.forkserver``): nbgrader forked from a fork server that imported it already.

The grading tests (test_grade, test_sandbox, test_cluster, test_gradescope) grade every submission this way; here
the fork server itself: that it can run on this machine (so grading does not silently fall back to cold starts),
that each child is nbgrader run in its own folder, environment, log and process group with its own exit status,
that children are independent of one another, and that a child past its time limit is killed with what it
started.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from autograder import grading
from autograder.grading import forkserver
from tests.support import harness


@pytest.fixture(scope="module")
def env():
    return grading.grading_env(standin=True)


@pytest.fixture(scope="module")
def server(env):
    started = forkserver.ForkServer(env)
    assert started.problem is None, f"the fork server cannot run here: {started.problem}"
    yield started
    started.close()
    assert started.process.poll() is not None


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_template_preloads_nbgrader_and_keras_single_threaded(server):
    """What makes a warm start worth it (and safe to fork): the heavy modules are in, and one thread runs."""
    pid = server.process.pid
    maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
    assert "tensorflow" in maps, "TensorFlow is not loaded in the fork server"
    assert len(os.listdir(f"/proc/{pid}/task")) == 1


def test_a_child_runs_nbgrader_in_its_folder_with_its_environment_and_log(server, env, tmp_path):
    import nbgrader

    # nbgrader reads the nbgrader_config.py of the folder it runs in: this one reports what it sees.
    (tmp_path / "nbgrader_config.py").write_text(
        "import os\nopen('seen.txt', 'w').write(os.environ.get('MARKER', '-') + ' ' + str(os.getpid()))\n"
    )
    log = tmp_path / "log.txt"
    pid = server.start(["--version"], str(tmp_path), env, str(log))
    assert server.wait(pid, 60) == 0
    assert log.read_text().strip().splitlines()[-1] == f"nbgrader version {nbgrader.__version__}"
    pid = server.start(["db", "student", "list"], str(tmp_path), dict(env, MARKER="x"), str(log))
    assert server.wait(pid, 60) == 0
    assert (tmp_path / "seen.txt").read_text() == f"x {pid}"
    assert (tmp_path / "gradebook.db").exists() and "There are 0 students" in log.read_text()


def test_exit_status_and_errors_reach_the_caller(server, env, tmp_path):
    log = tmp_path / "log.txt"
    pid = server.start(["autograde", "no_such_assignment"], str(tmp_path), env, str(log))
    status = server.wait(pid, 120)
    assert status == 1
    assert f"No notebooks were matched by '{tmp_path}/submitted/*/no_such_assignment'" in log.read_text()


def test_children_start_from_the_template_not_from_each_other(server, env, tmp_path):
    """A grading cannot leave anything for the next one: each child is forked from the untouched fork server. Two
    courses are autograded one after the other by children of one fork server, and each gets the scores of its own
    submission (the reference solution, then the blank student version), as cold starts give."""
    scores = []
    for student, fill in (("ref", True), ("blank", False)):
        folder = tmp_path / student
        folder.mkdir()
        course = harness.Course("a1_backprop", folder)
        release = course.generate()
        source = harness.read(harness.source_path("a1_backprop"))
        course.submit(student, harness.fill(release, harness.reference_solutions(source)) if fill else release)
        pid = server.start(["autograde", "a1_backprop"], str(folder), env, str(folder / "log.txt"))
        assert server.wait(pid, 600) == 0, (folder / "log.txt").read_text()[-3000:]
        scores.append(course.scores()[student])
    reference, blank = scores
    assert all(score > 0 for score in reference.values())
    assert set(blank) == set(reference) and all(score == 0 for score in blank.values())


def test_a_child_over_its_limit_is_killed_with_what_it_started(env, tmp_path):
    """Through ``run_nbgrader``: a child that does not finish in time is killed, and so is every process it
    started (here a sleeping process the course's config starts)."""
    (tmp_path / "nbgrader_config.py").write_text(
        "import subprocess, sys\n"
        f"subprocess.Popen([{sys.executable!r}, '-c', 'import time; time.sleep(300)'], cwd={str(tmp_path)!r})\n"
        "import time\ntime.sleep(300)\n"
    )
    start = time.monotonic()
    status = grading.run_nbgrader(["autograde", "x"], tmp_path, env, 5, tmp_path / "log.txt", warm_start=True)
    assert status is None and time.monotonic() - start < 60
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _in(tmp_path):
        time.sleep(0.2)
    assert _in(tmp_path) == []
    forkserver.close_all()


def _in(folder: pathlib.Path) -> list[int]:
    found = []
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd").startswith(str(folder)) and _alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_the_fork_server_dies_with_its_grader(env, tmp_path):
    """A killed grading command leaves no fork server behind (and the server's children die with it)."""
    script = tmp_path / "grader.py"
    script.write_text(
        "import json, sys, time\n"
        "from autograder.grading import forkserver\n"
        f"t = forkserver.ForkServer(json.loads({json.dumps(env)!r}))\n"
        "print(t.process.pid, flush=True)\n"
        "time.sleep(300)\n"
    )

    grader = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=harness.ROOT)
    pid = int(grader.stdout.readline())
    assert _alive(pid)
    grader.kill()
    grader.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)
