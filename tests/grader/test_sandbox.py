"""The sandbox against an adversarial class: every attack of ``tests/attacks.py`` graded end to end.

One course holds two honest submissions (the reference solution and the blank student version) and every attack;
``autograder grade --workers 2`` grades them in one batch, in the sandbox (bubblewrap, installed by ``make
sandbox``). Each attack must get exactly the score its answers earn honestly, show in its own notebook that its
reads, writes and connections were blocked, and leave the course, the gradebook, the other submissions and the
host as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import secrets
import shutil
import socket
import threading
import time

import nbformat
import numpy as np
import pytest

from autograder import cli, grading
from autograder.course import Course
from autograder.sandbox import codec, isolation, process, wire
from tests.support import attacks, harness
from tests.support.a1_course import A, gradebook_scores, make_course

ATTACKS = attacks.corpus()
SLEEP = "987654"
pytestmark = pytest.mark.skipif(
    isolation.isolation_problem() is not None,
    reason=f"no sandbox here: {isolation.isolation_problem()} (make sandbox)",
)


class Listener:
    """A TCP server of the grader's on loopback, counting the connections it gets."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def _sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    course = tmp_path_factory.mktemp("attacked") / "course"
    token = secrets.token_hex(6)
    listener = Listener()
    values = {"COURSE": str(course), "TOKEN": token, "PORT": str(listener.port), "SLEEP": SLEEP}
    source = harness.read(harness.source_path(A))
    release = harness.read(harness.release_path(A))
    honest = harness.fill(release, harness.reference_solutions(source))
    submissions = {
        "honest": (f"{A}.ipynb", nbformat.writes(honest).encode()),
        "honest_blank": (f"{A}.ipynb", nbformat.writes(release).encode()),
    }
    for attack in ATTACKS:
        submissions[attack.name] = (f"{A}.ipynb", nbformat.writes(attack.notebook(values)).encode())
    make_course(course, submissions)
    before = {p: _sha(p) for p in (course / "submitted").rglob("*.ipynb")}
    start = time.monotonic()
    status = cli.main(["--course", str(course), "grade", A, "--standin", "--workers", "2"])
    seconds = time.monotonic() - start
    listener.server.close()
    return {"course": course, "token": token, "status": status, "listener": listener, "before": before,
            "seconds": seconds}  # fmt: skip


def _autograded(course: pathlib.Path, student: str):
    return nbformat.read(course / "autograded" / student / A / f"{A}.ipynb", as_version=4)


def _student_text(nb) -> str:
    """Everything the notebook's cells printed."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("evalue", ""))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


def test_the_corpus_is_broad():
    families = {a.family for a in ATTACKS}
    assert families == {
        "reading", "writing", "network", "resources", "forging", "structural", "wire", "namespace", "outputs",
    }  # fmt: skip
    assert len({a.name for a in ATTACKS}) == len(ATTACKS) >= 25


def test_the_batch_finishes_and_everyone_is_graded(attacked):
    assert attacked["status"] == 0
    records = grading.records(Course.open(attacked["course"]), A)
    expected = {"honest", "honest_blank", *(a.name for a in ATTACKS)}
    assert set(records) == expected
    assert {s: r.status for s, r in records.items() if r.status != "graded"} == {}


def test_honest_submissions_get_their_honest_scores(attacked):
    scores = gradebook_scores(attacked["course"])
    assert scores["honest"][:2] == (attacks.FULL, attacks.FULL)
    assert scores["honest_blank"][:2] == (0.0, attacks.FULL)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_each_attack_gains_nothing_and_is_blocked(attacked, attack):
    course = attacked["course"]
    records = grading.records(Course.open(course), A)
    record = records[attack.name]
    # the score its answers earn honestly, in the record and in the gradebook, out of the real maximum
    assert record.score == attack.score, record
    assert gradebook_scores(course)[attack.name][:2] == (attack.score, attacks.FULL)
    text = _student_text(_autograded(course, attack.name))
    for line in attack.output:
        assert line in text, f"{attack.name}: {line!r} not in its outputs"
    assert "LEAKED" not in text and "ESCAPED" not in text
    outputs = json.dumps([cell.get("outputs", []) for cell in _autograded(course, attack.name).cells])
    for word in attack.absent:
        assert word not in outputs, f"{attack.name}: {word!r} reached its autograded notebook's outputs"
    for note in attack.notes:
        assert any(note in n for n in record.notes), f"{attack.name}: no note with {note!r} in {record.notes}"


def test_nothing_was_written_outside_the_sandboxes(attacked):
    course, token = attacked["course"], attacked["token"]
    assert not [p for p in course.rglob(f"*{token}*")], "an attack wrote into the course"
    assert not list(pathlib.Path("/tmp").glob(f"*{token}*")), "an attack wrote into the grader's /tmp"
    for path, digest in attacked["before"].items():
        assert _sha(path) == digest, f"{path} was changed"
    # the gradebook is whole: every student, the assignment's real maximum, nothing else
    scores = gradebook_scores(course)
    assert set(scores) == {"honest", "honest_blank", *(a.name for a in ATTACKS)}
    assert {m for _, m, _ in scores.values()} == {attacks.FULL}


def test_the_grader_loopback_got_no_connection(attacked):
    assert attacked["listener"].connections == 0


def test_no_process_of_any_submission_is_left(attacked):
    left = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            uid = int((entry / "status").read_text().split("Uid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if SLEEP in cmdline or isolation.SLOT_UID_BASE <= uid < isolation.SLOT_UID_BASE + 100:
            left.append(cmdline[:80])
    assert left == []


def test_output_floods_are_cut_down(attacked):
    path = attacked["course"] / "autograded" / "flood_the_output" / A / f"{A}.ipynb"
    assert path.stat().st_size < 2_000_000  # it printed 50 MB
    # the same with the runner's own caps switched off from inside: the grader cuts it (30 MB of print, 100
    # made-up types of 150 KB each, 60 outputs of 100 KB)
    path = attacked["course"] / "autograded" / "flood_with_the_caps_switched_off" / A / f"{A}.ipynb"
    assert path.stat().st_size < 3_000_000
    nb = _autograded(attacked["course"], "flood_with_the_caps_switched_off")
    outputs = nb.cells[-1].outputs
    assert len(outputs) <= 31
    assert not [k for o in outputs for k in o.get("data", {}) if k.startswith("application/x-made-up")]
    assert "over the limits" in _student_text(nb)


def test_student_html_and_script_stay_inert(attacked):
    course, token = attacked["course"], attacked["token"]
    nb = _autograded(course, "raw_html_and_script")
    kinds = {k for cell in nb.cells for o in cell.get("outputs", []) for k in o.get("data", {})}
    assert kinds <= {"text/plain", "image/png", "image/jpeg"}, kinds
    assert cli.main(["--course", str(course), "feedback", A, "--student", "raw_html_and_script"]) == 0
    page = (course / "feedback" / "raw_html_and_script" / A / f"{A}.html").read_text()
    assert "plain text stays" in page
    assert f"<script>document.title = 'PWNED-{token}'" not in page
    assert "<img src=x onerror" not in page and '<img src="x" onerror' not in page
    assert f'"PWNED-{token}"</script>' not in page  # the SVG's


def test_the_grader_process_dropped_root(attacked):
    if os.geteuid() != 0:
        pytest.skip("the grader drops privileges only when run by root")
    info = _autograded(attacked["course"], "honest").metadata["autograder"]
    uid, base = int(info["privileges"].split()[-1]), isolation.GRADER_UID_BASE
    assert info["privileges"].startswith("dropped to uid") and base < uid <= base + grading.SLOTS
    records = grading.records(Course.open(attacked["course"]), A)
    assert not [n for r in records.values() for n in r.notes if "kept root" in n]


def test_stopped_code_is_explained_to_the_student_and_the_instructor(attacked):
    records = grading.records(Course.open(attacked["course"]), A)
    # interrupted at the limit, the process goes on: the record names the cell
    assert any("per-cell limit" in note and "add_backward_matches_tape" in note
               for note in records["infinite_loop_in_a_function"].notes)  # fmt: skip
    # an interrupt it swallows gets it killed: the notebook and the record say why
    text = _student_text(_autograded(attacked["course"], "swallow_the_interrupt"))
    assert "ran past the time limit for one cell" in text
    assert any("ran past the time limit for one cell" in note for note in records["swallow_the_interrupt"].notes)


def test_without_isolation_untrusted_work_is_refused(tmp_path, monkeypatch, capsys):
    course = make_course(tmp_path / "course", {"honest": (f"{A}.ipynb", harness.release_path(A).read_bytes())})
    monkeypatch.setenv("AUTOGRADER_BWRAP", str(tmp_path / "no-bwrap-here"))
    assert cli.main(["--course", str(course), "grade", A, "--standin", "--no-canary"]) == 2
    err = capsys.readouterr().err
    assert "cannot be isolated" in err and "bubblewrap" in err and "--trust-submissions" in err
    assert not (course / "autograded").exists()
    assert not grading.records(Course.open(course), A)


def test_trusted_submissions_are_graded_without_isolation_and_say_so(tmp_path, monkeypatch, capsys):
    source = harness.read(harness.source_path(A))
    honest = harness.fill(harness.read(harness.release_path(A)), harness.reference_solutions(source))
    course = make_course(tmp_path / "course", {"honest": (f"{A}.ipynb", nbformat.writes(honest).encode())})
    monkeypatch.setenv("AUTOGRADER_BWRAP", str(tmp_path / "no-bwrap-here"))
    status = cli.main(["--course", str(course), "grade", A, "--standin", "--no-canary", "--trust-submissions"])
    assert status == 0
    assert "NO SANDBOX" in capsys.readouterr().err
    record = grading.records(Course.open(course), A)["honest"]
    assert record.score == attacks.FULL
    assert any("WITHOUT the sandbox" in note for note in record.notes)


# ---------------------------------------------------------------------------------------- the wire, directly
PROBE = """
def probe(lent, leaky):
    results = []
    def attempt(label, action):
        try:
            results.append(f"ANSWERED {label}: {action()!r}")
        except BaseException as err:
            results.append(f"refused {label}: {type(err).__name__}")
    channel, key = object.__getattribute__(lent, '_channel'), object.__getattribute__(lent, '_id')
    attempt('call with data', lambda: lent([1.0, 2.0]).tolist())
    for name in ('__globals__', '__class__', '__code__', '__closure__', '__self__', '__call__', 'real'):
        attempt(f'getattr {name}', lambda name=name: channel.remote('getattr', key, name=name))
    attempt('getitem', lambda: channel.remote('getitem', key, args=(0,)))
    attempt('len', lambda: channel.remote('len', key))
    for other in range(64):
        if other != key:
            attempt(f'call object {other}', lambda other=other: channel.remote('call', other, args=(1,)))
    attempt('call with one of mine', lambda: lent(lambda: 1))
    attempt('a result that is not data', lambda: leaky(1))
    attempt('run_cell', lambda: channel.remote('run_cell', code='1'))
    return results
"""


def test_a_lent_function_answers_only_calls_with_data(tmp_path):
    """What the grader lends the student's code (a function a test passes) can be called with data and answers
    data; nothing else of the grader's is reachable through it, and after ``revoke`` not even that."""

    class Secret:
        pass

    with grading.grading_slot() as slot:
        box = process.Sandbox(dict(os.environ), process.Limits(), slot, log=str(tmp_path / "sandbox.log"))
        try:
            box.start(120)
            assert box.run_cell(PROBE, report=True, timeout=120, doing="the test")["defined"] == ["probe"]
            probe = box.request("values", "the test", args=(["probe"],))["probe"]
            results = probe(lambda v: np.asarray(v) * 2, lambda v: Secret())
            answered = [r for r in results if r.startswith("ANSWERED")]
            assert answered == ["ANSWERED call with data: [2.0, 4.0]"], results
            assert len(results) == 1 + 7 + 2 + 63 + 3
            assert "refused a result that is not data: RemoteError" in results
            # a lent function the student's code keeps answers until the test cell ends (revoke), then never
            code = "KEPT = []\ndef keep(f):\n    KEPT.append(f)\n\ndef call_kept():\n    return KEPT[0](3.0)\n"
            box.run_cell(code, report=True, timeout=60, doing="the test")
            defined = box.request("values", "the test", args=(["keep", "call_kept"],))
            defined["keep"](lambda v: v + 1)
            assert defined["call_kept"]() == 4.0
            box.channel.revoke()
            with pytest.raises(wire.RemoteError, match="no object"):
                defined["call_kept"]()
        finally:
            box.close()


def test_malformed_replies_are_errors_not_crashes():
    """Every JSON type as a message header, and oversized or undecodable ones, is a WireError that names it."""
    import io
    import struct

    def frame(data: bytes, declared=None) -> io.BytesIO:
        return io.BytesIO(struct.pack(">Q", len(data) if declared is None else declared) + data)

    for data in (b"[1]", b'"x"', b"3", b"null", b"true", b"[" * 100_000 + b"]" * 100_000, b"{", b'{"blobs": 3}'):
        with pytest.raises(wire.WireError):
            wire.read_message(frame(data))
    with pytest.raises(wire.WireError, match="at most"):
        wire.read_message(frame(b"{}", declared=1 << 40))
    with pytest.raises(wire.WireError, match="at most"):
        wire.read_message(frame(json.dumps({"blobs": [1 << 40]}).encode()))
    assert wire.read_message(frame(b'{"op": "ok"}')) == ({"op": "ok"}, [])
    # sizes are honest: a list of 12 million ints is far more than 0 bytes of JSON
    text, data = codec.rough_size(list(range(12_000_000)), 32 << 20, 512 << 20)
    assert text > 32 << 20 and data == 0
    assert codec.rough_size(np.zeros((1000, 1000)), 1 << 20, 1 << 30) == (0, 8_000_000)


A4 = "a4_keras_cnn"


def test_a_name_the_tests_define_stays_the_tests(tmp_path):
    """a4's graded run sets ``graded_accuracy`` in a test cell, and the accuracy tiers read it: a student cell
    after it that sets its own (stock nbgrader: all ten tier points for a blank notebook) is refused, and the
    record says so."""
    release = harness.read(harness.release_path(A4))
    forged = nbformat.from_dict(json.loads(nbformat.writes(release)))
    after = next(
        i
        for i, c in enumerate(forged.cells)
        if harness.nbgrader_meta(c).get("grade_id") == "graded_training_within_budget"
    )
    forged.cells.insert(after + 1, nbformat.v4.new_code_cell("graded_accuracy = 0.999\nTHRESHOLDS = {}\n"))
    course = _graded_a4_course(tmp_path, {"blank": release, "forged": forged})
    records = grading.records(Course.open(course), A4)
    assert records["blank"].score == records["forged"].score == 0.0
    assert any("graded_accuracy (defined by the instructor's cells)" in n for n in records["forged"].notes)


def _graded_a4_course(tmp_path: pathlib.Path, submissions: dict) -> pathlib.Path:
    """A course holding a4 and ``submissions`` (student -> notebook), graded with the stand-ins in the sandbox."""
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text((harness.ROOT / "nbgrader_config.py").read_text())
    shutil.copytree(harness.ROOT / "source" / A4, course / "source" / A4)
    for student, nb in submissions.items():
        (course / "submitted" / student / A4).mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / A4 / f"{A4}.ipynb")
    assert cli.main(["--course", str(course), "grade", A4, "--standin", "--no-canary", "--workers", "2"]) == 0
    return course


LOOK_FOR_THE_TEST_SPLIT = """
import glob
import os

def look_for_the_test_split():
    found = [f"x_test has {len(x_test)} rows", f"y_test has {len(y_test)} rows"]
    found.append(f"load('mnist') gives {len(cnnbook.data.load('mnist')[1][0])} test rows")
    try:
        from sklearn.datasets import load_digits
        found.append(f"load_digits gives {len(load_digits().images)} images")
    except Exception as error:
        found.append(f"load_digits fails ({type(error).__name__})")
    tests = []
    for pattern in ("/data/**/*", "/tmp/**/*", os.path.expanduser("~/.keras/**/*")):
        for path in glob.glob(pattern, recursive=True):
            try:
                with np.load(path, allow_pickle=False) as stored:
                    tests += [f"{path}:{key}" for key in stored.files if "test" in key]
            except Exception:
                pass
    found.append(f"files with a test split: {tests}")
    return found

FOUND = look_for_the_test_split()
print("\\n".join(FOUND))
"""

PEEKING_SOLUTIONS = {
    "prepare_images_code": """
PREPARED = []  # the sizes of the arrays the tests prepared, in order

def prepare_images(x):
    PREPARED.append(len(x))
    return (np.asarray(x, dtype=np.float32) / np.float32(255))[..., np.newaxis]
""",
    "train_model_code": """
def train_model(model, x_train, y_train):
    peeked = [f for f in FOUND if not f.endswith((" 0 rows", " 0 test rows", ": []")) and " fails (" not in f]
    if N_TEST in PREPARED:
        peeked.append("prepare_images was given the test images before training")
    if peeked:
        raise RuntimeError("PEEKED: " + "; ".join(peeked))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model.fit(x_train, y_train, epochs=EPOCH_BUDGET, batch_size=32, verbose=2)
""",
}


def test_a_graded_run_never_sees_the_test_split(tmp_path):
    """a4's graded run trains the student's model with the student's own code: that code must have no way to
    train on the test split. A submission that looks everywhere for it (the given cell's x_test and y_test,
    cnnbook.data.load, scikit-learn's digits the stand-in is made from, any file with a test array in the sandbox,
    the images its prepare_images is given before training) and refuses to train when it finds any must find
    nothing: it scores what the reference solution scores, and its own report says what it saw."""
    from cnnbook import data

    n_test = len(data._digits()[1][0])  # the stand-in's test split, on the grader's side
    release = harness.read(harness.release_path(A4))
    solutions = harness.reference_solutions(harness.read(harness.source_path(A4)))
    reference = harness.fill(release, solutions)
    solutions.update({k: f"N_TEST = {n_test}\n{v}" for k, v in PEEKING_SOLUTIONS.items()})
    peeking = harness.fill(release, solutions)
    data_cell = next(
        i for i, c in enumerate(peeking.cells) if harness.nbgrader_meta(c).get("grade_id") == "data_and_budgets"
    )
    peeking.cells.insert(data_cell + 1, nbformat.v4.new_code_cell(LOOK_FOR_THE_TEST_SPLIT))
    course = _graded_a4_course(tmp_path, {"reference": reference, "peeking": peeking})
    records = grading.records(Course.open(course), A4)
    assert records["reference"].score == sum(harness.test_points(release).values())
    assert records["peeking"].score == records["reference"].score, records["peeking"].notes
    graded = nbformat.read(course / "autograded" / "peeking" / A4 / f"{A4}.ipynb", as_version=4)
    seen = "".join(o.get("text", "") for o in graded.cells[data_cell + 1].get("outputs", []))
    expected = ("x_test has 0 rows", "y_test has 0 rows", "load('mnist') gives 0 test rows", "load_digits fails (")
    for line in (*expected, "files with a test split: []"):
        assert line in seen, seen
    run = next(
        c for c in graded.cells if harness.nbgrader_meta(c).get("grade_id") == "graded_training_within_budget"
    )
    printed = "".join(o.get("text", "") for o in run.get("outputs", []))
    assert "test accuracy" in printed and "PEEKED" not in printed, printed
