"""The assignments, tested the way a class meets them: through real nbgrader.

- each source notebook has the frame (title, standard cell, points in headings that add up, docstrings, grade ids);
- ``release/`` is exactly what ``make release`` generates and holds no hidden test and no solution;
- ``nbgrader validate`` passes on every source notebook, ``nbgrader validate --invert`` on every student version;
- end to end (generate, autograde, gradebook) in a temporary course: the reference solution gets full marks, the
  blank student version gets zero, and every plausible wrong answer in ``tests/wrong_answers/`` loses exactly the
  points it is meant to lose, no more and no fewer.

Grading here uses the stand-in datasets, explicitly (``CNNBOOK_STANDIN=1``).
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import math
import pathlib
import re
import shutil
import tempfile

import pytest

from tests.support import harness

ASSIGNMENTS = [a for a in harness.ASSIGNMENTS if harness.source_path(a).exists()]
WRONG = [(a, w) for a in ASSIGNMENTS for w in harness.wrong_answers(a)]


def test_every_planned_assignment_exists():
    assert ASSIGNMENTS == list(harness.ASSIGNMENTS)
    for assignment in ASSIGNMENTS:
        folder = harness.source_path(assignment).parent
        assert sorted(p.name for p in folder.iterdir()) == [f"{assignment}.ipynb"], f"{folder} holds other files"


@pytest.fixture(scope="session")
def graded():
    """Every assignment's corpus graded by nbgrader, two courses at a time (one per core): futures by name."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="graded-"))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures = {}
    # Longest first (measured: a5 trains in every submission), so the two workers finish close together.
    longest_first = ["a5_augment_transfer", "a3_numpy_cnn", "a2_conv_arithmetic", "a1_backprop", "a4_keras_cnn"]
    for assignment in sorted(ASSIGNMENTS, key=lambda a: longest_first.index(a) if a in longest_first else -1):
        folder = tmp / assignment
        folder.mkdir()
        futures[assignment] = pool.submit(
            harness.grade_corpus, assignment, harness.wrong_answers(assignment), folder
        )
    yield futures
    pool.shutdown(wait=True)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_check_cells_read_no_private_attribute(assignment):
    """Check cells use public APIs only: a private attribute (Keras's ``_inbound_nodes``, say) changes without
    notice between versions, and the student would lose points for the library's change."""
    private = re.compile(r"\._[a-z]\w*")
    for cell in harness.read(harness.source_path(assignment)).cells:
        if harness.is_test_cell(cell):
            found = private.findall(cell.source)
            assert not found, f"{harness.nbgrader_meta(cell)['grade_id']} reads {sorted(set(found))}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_frame(assignment):
    assert harness.frame_problems(assignment, harness.read(harness.source_path(assignment))) == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_what_make_release_generates(assignment, tmp_path):
    shutil.copy(harness.ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(harness.ROOT / "source" / assignment, tmp_path / "source" / assignment)
    result = harness.nbgrader("generate_assignment", assignment, "--force", "--no-db", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    fresh = harness.release_path(assignment, tmp_path).read_bytes()
    committed = harness.release_path(assignment).read_bytes()
    assert fresh == committed, f"release/{assignment} is stale or was edited by hand: run `make release`"
    assert sorted(p.name for p in harness.release_path(assignment).parent.iterdir()) == [f"{assignment}.ipynb"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_no_hidden_test_and_no_solution(assignment):
    source = harness.read(harness.source_path(assignment))
    release_text = harness.release_path(assignment).read_text(encoding="utf-8")
    release = harness.read(harness.release_path(assignment))
    code = [c.source for c in release.cells if c.cell_type == "code"]
    released_lines = {line.strip() for text in code for line in text.splitlines()}
    assert "HIDDEN TESTS" not in release_text and "BEGIN SOLUTION" not in release_text
    # Lines the source shows in the open (outside hidden blocks and solutions), such as a shared assertion call,
    # may appear in the release; every other line of a hidden test or a solution must not.
    public = set()
    for cell in source.cells:
        text = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.DOTALL)
        text = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", text, flags=re.DOTALL)
        public |= {line.strip() for line in text.splitlines()}
    secret = []
    for cell in source.cells:
        for block in harness.hidden_blocks(cell.source):
            secret += block.splitlines()
        if harness.is_solution_cell(cell):
            secret += cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0].splitlines()
    for line in {line.strip() for line in secret} - public:
        if len(line) > 20:
            assert line not in released_lines, f"a hidden test or solution line is in the release: {line!r}"
    # Every test cell keeps a public part, so a student can run it before submitting.
    for cell in release.cells:
        if harness.is_test_cell(cell):
            assert len(cell.source.strip().splitlines()) > 1, harness.nbgrader_meta(cell)["grade_id"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_passes_its_own_tests(assignment):
    passed, report = harness.validate(harness.source_path(assignment))
    assert passed, report[-3000:]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_fails_every_test(assignment):
    passed, report = harness.validate(harness.release_path(assignment), invert=True)
    assert passed, report[-3000:]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_solution_gets_full_marks(assignment, graded):
    outcome = graded[assignment].result()
    assert outcome.lost(harness.REFERENCE) == {}, outcome.log[-3000:]
    assert sum(outcome.points.values()) >= 20


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_student_version_gets_zero(assignment, graded):
    outcome = graded[assignment].result()
    assert outcome.scores[harness.BLANK] == {gid: 0.0 for gid in outcome.points}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_answer_corpus_is_meaningful(assignment):
    points = harness.test_points(harness.read(harness.source_path(assignment)))
    answers = harness.wrong_answers(assignment, full=True)
    assert len(answers) >= 6 and len(harness.wrong_answers(assignment, full=False)) >= 6
    module = importlib.import_module(f"tests.support.wrong_answers.{assignment}")
    assert set(getattr(module, "FULL_CORPUS_ONLY", set())) <= {a.name for a in answers}, "unknown name"
    assert len({a.name for a in answers}) == len(answers)
    for answer in answers:
        assert answer.loses, f"{answer.name} must lose something"
        assert set(answer.loses) <= set(points), f"{answer.name} names unknown test cells"
        assert all(answer.loses[g] == points[g] for g in answer.loses), f"{answer.name}: a cell is all or nothing"
        assert sum(answer.loses.values()) < sum(points.values()), f"{answer.name} may not lose everything"


@pytest.mark.parametrize(("assignment", "answer"), WRONG, ids=[f"{a}-{w.name}" for a, w in WRONG])
def test_wrong_answer_loses_exactly_its_points(assignment, answer, graded):
    outcome = graded[assignment].result()
    assert answer.student in outcome.scores, f"{answer.student} was not graded:\n{outcome.log[-3000:]}"
    assert outcome.lost(answer.student) == {g: float(p) for g, p in answer.loses.items()}, answer.mistake


def test_a4_calibration_starts_from_provisional_mnist_tiers(tmp_path):
    """Before any calibration, real MNIST has provisional tiers (stated top tier, the measured tiers' rule) and
    the stand-in none; a measured entry is never replaced by a provisional one."""
    from tools import calibrate_a4

    record = calibrate_a4.read_record(tmp_path / "none.json")
    mnist, digits = record["datasets"]["mnist"], record["datasets"]["digits"]
    top = calibrate_a4.PROVISIONAL_TOP["mnist"]
    expected = [math.floor((0.1 + f * (top - 0.1)) * 1000 + 1e-6) / 1000 for f in (0.5, 0.8, 1.0)]
    assert mnist["provisional"] and not mnist["measured"] and mnist["tiers"] == expected
    assert digits["tiers"] is None and not digits["measured"]
    assert calibrate_a4.thresholds_literal(record, 3) == '{"digits": None, "mnist": 0.97}'
    measured = {"measured": True, "tiers": [0.6, 0.8, 0.99]}
    (tmp_path / "measured.json").write_text(json.dumps({"datasets": {"mnist": measured}}))
    assert calibrate_a4.read_record(tmp_path / "measured.json")["datasets"]["mnist"] == measured


def test_a4_accuracy_tiers_are_the_recorded_calibration():
    """The tier cells' thresholds are derived, by the stated rule, from >= 5 recorded runs of the reference."""
    import ast
    import json
    import math
    import statistics

    record = json.loads((harness.ROOT / "autograder" / "thresholds" / "a4_keras_cnn.json").read_text())["datasets"]
    nb = harness.read(harness.source_path("a4_keras_cnn"))
    cells = {harness.nbgrader_meta(c).get("grade_id"): c.source for c in nb.cells}
    for tier in (1, 2, 3):
        line = next(x for x in cells[f"accuracy_tier_{tier}"].splitlines() if x.startswith("THRESHOLDS = "))
        in_notebook = ast.literal_eval(line.split("=", 1)[1].split("#")[0].strip())
        assert set(in_notebook) == set(record)
        for name, entry in record.items():
            if not entry["measured"] and entry.get("provisional"):  # real MNIST where it cannot be downloaded
                fraction = entry["rule"]["tier_fractions"][tier - 1]
                expected = math.floor((0.1 + fraction * (entry["top"] - 0.1)) * 1000 + 1e-6) / 1000
                assert in_notebook[name] == entry["tiers"][tier - 1] == pytest.approx(expected, abs=1e-9)
                assert "LeCun et al. (1998)" in entry["basis"] and "calibrate_a4" in entry["command"]
                continue
            if not entry["measured"]:
                assert in_notebook[name] is None, f"{name} has a tier without a measured calibration"
                continue
            accuracies = [run["test_accuracy"] for run in entry["runs"]]
            assert len(accuracies) >= 5 and entry["grading_seed"] not in [run["seed"] for run in entry["runs"]]
            margin = max(0.01, 3.0 * statistics.stdev(accuracies))
            top = min(accuracies) - margin
            fraction = entry["rule"]["tier_fractions"][tier - 1]
            expected = math.floor((0.1 + fraction * (top - 0.1)) * 1000 + 1e-6) / 1000
            assert in_notebook[name] == pytest.approx(expected, abs=1e-3), (name, tier)
            assert entry["tiers"][tier - 1] == in_notebook[name]
            # The reference solution itself clears the top tier at the grading seed.
            assert entry["grading_seed_run"]["test_accuracy"] >= in_notebook[name]
