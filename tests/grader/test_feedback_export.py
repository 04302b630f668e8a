"""``autograder feedback`` and ``autograder export`` on a course graded for real (a1_backprop, stand-in data).

The course holds four submissions: the reference solution, the blank student version, a partly wrong one (two
mistakes from ``tests/wrong_answers``, one caught by a public assertion, one only by a hidden test; submitted an
hour after the due date) and a file that is not JSON. It is graded once, through the ``autograder grade`` command.

- feedback: no page shows a line of a hidden test or a traceback (checked on the text a browser shows, with a check
  that the same detector finds them in a plain nbconvert page of the autograded notebook); the wrong answer's page
  marks exactly its failing tests as failed, with the exception's name and message and the gradebook's points; the
  reference's page shows full marks; the failed submission's page shows why.
- export: the CSV is exactly what the gradebook says, part by part; the JSON reads back as the data exported; a
  grade entered by hand through nbgrader's Gradebook API shows in the export and the feedback and survives grading
  again (unchanged: skipped; ``--force``: regraded, manual score kept).

The commands run through ``autograder.cli.main`` where what they print or their exit status is tested; elsewhere
through their keyword APIs, ``feedback.write_feedback`` and ``export.export_grades``.
"""

from __future__ import annotations

import copy
import csv
import datetime
import html.parser
import json
import os
import pathlib
import re
import shutil
import sys
import zipfile

import nbformat
import pytest

from autograder import cli, export, feedback, records
from autograder.course import Course, CourseError
from tests.support import harness
from tests.support.wrong_answers import a1_backprop as a1_wrong

A = "a1_backprop"
ANSWERS = {answer.name: answer for answer in a1_wrong.WRONG_ANSWERS}
MISTAKES = [ANSWERS["add_forgets_upstream"], ANSWERS["hand_forward_exp_sign"]]  # public / hidden assertion
DUE = datetime.datetime(2026, 3, 1, 23, 59)  # UTC, as nbgrader stores it
LATE_SECONDS = 3600
STUDENTS = ["blank", "broken", "reference", "wrong"]


def _source():
    return harness.read(harness.source_path(A))


def _cli(capsys, course_dir, *argv) -> tuple[int, str, str]:
    """Run ``autograder --course COURSE_DIR ARGV...``; (status, stdout, stderr with its lines joined)."""
    status = cli.main(["--course", str(course_dir), *argv])
    captured = capsys.readouterr()
    return status, captured.out, " ".join(captured.err.split())  # messages are wrapped to the console's width


def _grade(course_dir, *extra):
    return cli.main(["--course", str(course_dir), "grade", A, "--standin", "--workers", "2", *extra])


def _submit(course_dir, student, nb=None, raw=None, timestamp=None):
    folder = course_dir / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / f"{A}.ipynb").write_bytes(raw)
    else:
        nbformat.write(nb, folder / f"{A}.ipynb")
    if timestamp is not None:
        (folder / "timestamp.txt").write_text(timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A temporary course with the four submissions graded by ``autograder grade`` and their feedback made."""
    from nbgrader.api import Gradebook

    course_dir = tmp_path_factory.mktemp("course")
    shutil.copy(harness.ROOT / "nbgrader_config.py", course_dir / "nbgrader_config.py")
    shutil.copytree(harness.ROOT / "source" / A, course_dir / "source" / A)
    release = harness.read(harness.release_path(A))
    reference = harness.reference_solutions(_source())
    wrong = dict(reference)
    for mistake in MISTAKES:
        wrong.update(mistake.replace)
    _submit(course_dir, "reference", harness.fill(release, reference))
    _submit(course_dir, "blank", release)
    late = DUE + datetime.timedelta(seconds=LATE_SECONDS)
    _submit(course_dir, "wrong", harness.fill(release, wrong), timestamp=late)
    _submit(course_dir, "broken", raw=b'{"cells": [')
    with pytest.MonkeyPatch.context() as patch:  # a new gradebook runs `alembic`, installed beside this Python
        patch.setenv("PATH", f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
            gradebook.update_or_create_assignment(A, duedate=DUE)
    assert _grade(course_dir) == 0
    pages = feedback.write_feedback(Course.open(course_dir), A)
    assert all(page.path for page in pages), [page.problem for page in pages]
    return course_dir, pages


# ------------------------------------------------------------------------------------------------- helpers
class _Text(html.parser.HTMLParser):
    """The text a browser shows (no style or script), entities decoded, tags dropped."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def shown_text(page_html: str) -> str:
    parser = _Text()
    parser.feed(page_html)
    return "".join(parser.parts)


def secret_lines() -> set[str]:
    """Lines of hidden tests that the student version does not show (the rule of test_assignments.py)."""
    source = _source()
    release = harness.read(harness.release_path(A))
    released = {line.strip() for c in release.cells if c.cell_type == "code" for line in c.source.splitlines()}
    public = set()
    for cell in source.cells:
        text = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.DOTALL)
        text = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", text, flags=re.DOTALL)
        public |= {line.strip() for line in text.splitlines()}
    hidden = {line.strip() for cell in source.cells for block in harness.hidden_blocks(cell.source)
              for line in block.splitlines()}  # fmt: skip
    return {line for line in hidden - public - released if len(line) > 20}


# IPython's traceback (a kernel, trusted grading) and the sandboxed grader's (tests run in the grader).
TRACEBACK_MARKS = ("Traceback (most recent call last)", "Cell In[", "----> ", "File <", "Traceback (grader side)",
                   "Raised in your code:")  # fmt: skip


def page(course_dir, student) -> str:
    return (course_dir / "feedback" / student / A / f"{A}.html").read_text(encoding="utf-8")


class _Summary(html.parser.HTMLParser):
    """Rows of the summary table: grade id -> [cell texts]."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.inside = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "autograder-results":
            self.inside = True
        elif self.inside and tag == "tr" and (attrs.get("id") or "").startswith("result-"):
            self.row = attrs["id"][len("result-") :]
            self.rows[self.row] = []
        elif self.inside and tag == "td" and self.row:
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[self.row].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr":
            self.row = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def summary_rows(page_html: str) -> dict[str, list[str]]:
    parser = _Summary()
    parser.feed(page_html)
    return parser.rows


def gradebook_scores(course_dir, student) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(A, A, student)
        return {grade.name: float(grade.score) for grade in notebook.grades}


def autograded_errors(course_dir, student) -> dict[str, str]:
    nb = nbformat.read(course_dir / "autograded" / student / A / f"{A}.ipynb", as_version=4)
    out = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                out[cell.metadata["nbgrader"]["grade_id"]] = f"{output.ename}: {output.evalue.strip()}"
    return out


# ------------------------------------------------------------------------------------------------ feedback
def test_feedback_writes_a_page_per_student_with_its_score(graded):
    course_dir, pages = graded
    assert [page.student for page in pages] == STUDENTS
    for page in pages:
        assert page.path == course_dir / "feedback" / page.student / A / f"{A}.html"
        assert page.path.exists(), page.student
    scores = {page.student: page.score for page in pages}
    assert scores == {"blank": "0 / 25", "broken": "not graded", "reference": "25 / 25", "wrong": "18 / 25"}


def test_no_page_shows_a_hidden_test_or_a_traceback(graded):
    from nbconvert import HTMLExporter

    course_dir, _ = graded
    secret = secret_lines()
    assert len(secret) > 100, "a1_backprop's hidden tests should give many lines to look for"
    # The detector works: a plain nbconvert page of the autograded notebook shows the hidden tests and tracebacks.
    plain, _ = HTMLExporter().from_filename(str(course_dir / "autograded" / "wrong" / A / f"{A}.ipynb"))
    plain_text = shown_text(plain)
    assert len([line for line in secret if line in plain_text]) > 0.9 * len(secret)
    assert "Traceback (grader side)" in plain_text  # graded in the sandbox: the tests' tracebacks are the grader's
    for student in STUDENTS:
        text = shown_text(page(course_dir, student))
        leaked = sorted(line for line in secret if line in text)
        assert not leaked, f"{student}'s feedback shows hidden test lines: {leaked[:5]}"
        assert "HIDDEN TESTS" not in text
        for mark in TRACEBACK_MARKS:
            assert mark not in text, f"{student}'s feedback shows a traceback ({mark!r})"


def test_pages_show_the_public_tests_and_the_students_answers(graded):
    course_dir, _ = graded
    release = harness.read(harness.release_path(A))
    public = {line.strip() for cell in release.cells if harness.is_test_cell(cell)
              for line in cell.source.splitlines() if len(line.strip()) > 20}  # fmt: skip
    text = shown_text(page(course_dir, "wrong"))
    assert public and all(line in text for line in public)
    for mistake in MISTAKES:
        for answer in mistake.replace.values():
            assert all(line.strip() in text for line in answer.splitlines() if line.strip())


def test_wrong_answer_page_marks_its_failing_tests(graded):
    course_dir, _ = graded
    rows = summary_rows(page(course_dir, "wrong"))
    points = harness.test_points(_source())
    lost = {gid: pts for mistake in MISTAKES for gid, pts in mistake.loses.items()}
    scores = gradebook_scores(course_dir, "wrong")
    errors = autograded_errors(course_dir, "wrong")
    assert list(rows) == list(points)
    for gid, available in points.items():
        shown_id, shown_points, result, message = rows[gid]
        assert shown_id == gid
        assert shown_points == f"{scores[gid]:g} / {available:g}"
        if gid in lost:
            assert scores[gid] == available - lost[gid] == 0
            assert result == "failed"
            assert message == errors[gid] and message.startswith("AssertionError: ")
            assert not any(mark in message for mark in TRACEBACK_MARKS)
        else:
            assert (result, message, scores[gid]) == ("passed", "", available)
    # One failure comes from a public assertion, the other from a hidden one: both messages are shown.
    assert "lecture example: ds = 4 should give da = db = 4" in rows["add_backward_matches_tape"][3]
    assert rows["forward_pass_values"][3].startswith("AssertionError: forward value e: expected")
    total = sum(points.values())
    assert f"Summary: {total - sum(lost.values()):g} / {total:g} points" in page(course_dir, "wrong")


def test_reference_page_shows_full_marks(graded):
    course_dir, _ = graded
    rows = summary_rows(page(course_dir, "reference"))
    points = harness.test_points(_source())
    assert {gid: (row[1], row[2]) for gid, row in rows.items()} == {
        gid: (f"{p:g} / {p:g}", "passed") for gid, p in points.items()
    }
    assert f"Summary: {sum(points.values()):g} / {sum(points.values()):g} points" in page(course_dir, "reference")


def test_blank_page_fails_every_test(graded):
    course_dir, _ = graded
    rows = summary_rows(page(course_dir, "blank"))
    assert {row[2] for row in rows.values()} == {"failed"}
    assert all(row[1].startswith("0 / ") for row in rows.values())


def test_failed_submission_page_says_why_and_what_to_do(graded):
    course_dir, _ = graded
    record = records.Record.load(records.record_path(Course.open(course_dir), A, "broken"))
    assert record.status == records.FAILED and "not valid JSON" in record.reason
    text = shown_text(page(course_dir, "broken"))
    assert "could not be graded" in text
    assert record.reason.split(";")[0] in text  # the record's reason, as recorded
    assert "Download your notebook again (Colab: File > Download > Download .ipynb)" in text
    assert "ask the student" not in text
    assert "autograder-results" not in page(course_dir, "broken")


def test_feedback_command_for_one_student_only(graded, tmp_path, capsys):
    course_dir, _ = graded
    copy = tmp_path / "course"
    shutil.copytree(course_dir, copy)
    shutil.rmtree(copy / "feedback")
    status, printed, err = _cli(capsys, copy, "feedback", A, "--student", "wrong")
    assert status == 0, err
    assert sorted(p.name for p in (copy / "feedback").iterdir()) == ["wrong"]
    assert re.search(rf"wrong\s+.\s+18 / 25\s+.\s+feedback/wrong/{A}/{A}\.html", printed), printed


def test_feedback_before_grading_says_to_grade(tmp_path):
    shutil.copy(harness.ROOT / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    shutil.copytree(harness.ROOT / "source" / A, tmp_path / "source" / A)
    course = Course.open(tmp_path)
    with pytest.raises(CourseError, match=rf"`autograder grade {A}`"):
        feedback.write_feedback(course, A)
    with pytest.raises(CourseError, match="run `autograder grade ASSIGNMENT` first"):
        export.export_grades(course)
    with pytest.raises(CourseError, match="no assignment 'a9_nothing'"):
        feedback.write_feedback(course, "a9_nothing")


def test_feedback_for_an_ungraded_student_says_to_grade(graded):
    course_dir, _ = graded
    with pytest.raises(CourseError, match=rf"autograder grade {A} --student"):
        feedback.write_feedback(Course.open(course_dir), A, students=["nobody"])


REMOTE = re.compile(r"(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)  # http://, https://, //host (protocol-relative)


def loaded_urls(page_html: str) -> list[str]:
    """What a page makes the browser fetch: the src or href of its scripts, styles, images and frames."""
    tags = r"<(?:script|link|img|iframe|embed|object|source)\b[^>]*?\b(?:src|href|data)\s*=\s*[\"']([^\"']+)"
    return re.findall(tags, page_html, re.IGNORECASE)


def test_pages_load_nothing_from_another_site_and_have_their_mathjax_beside_them(graded):
    course_dir, pages = graded
    for written in pages:
        text = written.path.read_text(encoding="utf-8")
        assert not [url for url in loaded_urls(text) if REMOTE.match(url)], written.student
        assert "cdnjs" not in text and "cdn.jsdelivr" not in text
    text = page(course_dir, "wrong")
    assert loaded_urls(text).count("mathjax/tex-chtml.js") == 1
    beside = course_dir / "feedback" / "wrong" / A / "mathjax"
    assert (beside / "tex-chtml.js").stat().st_size > 500_000
    assert len(list((beside / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))) > 20
    # One copy on disk: each page's files are hard links to the grader's own copy.
    assert os.path.samefile(beside / "tex-chtml.js", course_dir / ".autograder" / "mathjax" / "tex-chtml.js")
    assert os.path.samefile(
        beside / "tex-chtml.js", course_dir / "feedback" / "reference" / A / "mathjax" / "tex-chtml.js"
    )


def test_pages_open_with_the_summary_not_a_list_of_test_cell_links(graded):
    course_dir, _ = graded
    text = page(course_dir, "wrong")
    assert 'id="toc"' not in text
    assert "Test cell</a>" not in text and "Test cell (Score" not in shown_text(text)
    assert text.index('id="autograder-summary"') < text.index('id="notebook-container"')
    assert f"{A} (Score: 18.0 / 25.0)" in shown_text(text)
    # The notebook's Markdown shows as headings and paragraphs, not as their tags.
    assert re.search(r"<h1 id=\"A1-", text) and "<p>This assignment practises" in text
    assert "&lt;h1" not in text and "&lt;p&gt;" not in text


# -------------------------------------------------------------------------------------------------- export
def _expected_parts() -> tuple[list[str], dict[str, list[str]]]:
    """Part headers and their test cells, read from the source notebook's headings independently of export."""
    headers, members, current = [], {}, None
    for cell in _source().cells:
        if cell.cell_type == "markdown":
            for letter, pts in harness.PART.findall(cell.source):
                current = f"Part {letter} ({pts})"
                headers.append(current)
                members[current] = []
        elif harness.is_test_cell(cell):
            members[current].append(harness.nbgrader_meta(cell)["grade_id"])
    return headers, members


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def exported(graded):
    course_dir, _ = graded
    return course_dir, export.export_grades(Course.open(course_dir))


def test_export_csv_is_the_gradebook_part_by_part(exported):
    course_dir, done = exported
    folder = course_dir / "exports"
    assert done.files == [folder / f"{A}.csv", folder / f"{A}.json"] and done.grades == folder / "grades.csv"
    counts = {"students": 4, "graded": 3, "failed": 1, "needs manual grading": 0, "missing": 0, "not graded": 0}
    assert done.counts == {A: counts}
    rows = read_csv(course_dir / "exports" / f"{A}.csv")
    headers, members = _expected_parts()
    assert headers == ["Part A (5)", "Part B (9)", "Part C (8)", "Part D (3)"]
    assert rows[0] == ["student", "status", *headers, "total", "max", "late", "late_seconds", "notes"]
    points = harness.test_points(_source())
    lost = {gid: pts for mistake in MISTAKES for gid, pts in mistake.loses.items()}
    expected_scores = {
        "reference": dict(points),
        "blank": {gid: 0 for gid in points},
        "wrong": {gid: p - lost.get(gid, 0) for gid, p in points.items()},
    }
    body = {row[0]: row for row in rows[1:]}
    assert sorted(body) == STUDENTS
    for student, expected in expected_scores.items():
        scores = gradebook_scores(course_dir, student)
        assert scores == {gid: float(v) for gid, v in expected.items()}
        parts = [sum(scores[gid] for gid in members[h]) for h in headers]
        late = ["yes", str(LATE_SECONDS)] if student == "wrong" else ["", ""]
        notes = "late: 1 h 0 min after the due date" if student == "wrong" else ""
        total = [f"{sum(parts):g}", "25"]
        assert body[student] == [student, "graded", *(f"{p:g}" for p in parts), *total, *late, notes]
        assert float(body[student][-5]) == sum(float(v) for v in body[student][2:-5])
    assert body["wrong"][2:7] == ["0", "7", "8", "3", "18"]
    broken = body["broken"]
    assert broken[:2] == ["broken", "failed"] and broken[2:-4] == ["", "", "", "", ""]
    assert broken[-4:-1] == ["25", "", ""]
    assert "not valid JSON" in broken[-1]


def test_export_json_reads_back_as_the_data(exported):
    course_dir, _ = exported
    data = json.loads((course_dir / "exports" / f"{A}.json").read_text(encoding="utf-8"))
    assert data == export.assignment_data(Course.open(course_dir), A)
    rows = {row[0]: row for row in read_csv(course_dir / "exports" / f"{A}.csv")[1:]}
    assert export.csv_rows(data)[1:] == sorted(rows.values())
    for entry in data["students"]:
        if entry["status"] == records.FAILED:
            assert entry["tests"] == {} and entry["total"] is None
            continue
        scores = gradebook_scores(course_dir, entry["student"])
        assert {gid: t["score"] for gid, t in entry["tests"].items()} == scores
        assert entry["total"] == sum(entry["parts"].values()) == sum(scores.values())


def test_grades_csv_has_each_students_total(exported):
    course_dir, _ = exported
    rows = read_csv(course_dir / "exports" / "grades.csv")
    per_assignment = {row[0]: row[-5] for row in read_csv(course_dir / "exports" / f"{A}.csv")[1:]}
    assert rows[0] == ["student", A]
    assert {row[0]: row[1] for row in rows[1:]} == per_assignment
    assert per_assignment == {"blank": "0", "broken": "", "reference": "25", "wrong": "18"}


def test_export_command_prints_what_it_wrote(graded, capsys):
    course_dir, _ = graded
    status, printed, err = _cli(capsys, course_dir, "export", A, "--out", "cli-exports")
    assert status == 0, err
    assert re.search(rf"{A}\s+.\s+4\s+.\s+3\s+.\s+1\s+.\s+0", printed), printed
    for name in (f"{A}.csv", f"{A}.json", "grades.csv"):
        assert f"wrote cli-exports/{name}" in printed
        assert (course_dir / "cli-exports" / name).exists()


def test_export_command_refuses_an_unknown_assignment(graded, capsys):
    course_dir, _ = graded
    status, _, err = _cli(capsys, course_dir, "export", "a9_nothing")
    assert status == 2 and "no assignment 'a9_nothing'" in err


def test_manual_grade_shows_and_survives_grading_again(graded, tmp_path):
    from nbgrader.api import Gradebook

    course_dir = tmp_path / "course"
    shutil.copytree(graded[0], course_dir)
    db = f"sqlite:///{course_dir / 'gradebook.db'}"
    with Gradebook(db) as gradebook:
        grade = gradebook.find_grade("forward_pass_values", A, A, "wrong")
        assert grade.auto_score == 0
        grade.manual_score = 1.5
        comment = gradebook.find_comment("forward_pass_code", A, A, "wrong")
        comment.manual_comment = "Right idea: only the sign inside exp is off."
        gradebook.db.commit()

    def wrong_row():
        export.export_grades(Course.open(course_dir), [A])
        return {row[0]: row for row in read_csv(course_dir / "exports" / f"{A}.csv")[1:]}["wrong"]

    assert wrong_row()[2:7] == ["1.5", "7", "8", "3", "19.5"]
    [written] = feedback.write_feedback(Course.open(course_dir), A, students=["wrong"])
    assert written.path, written.problem
    shown = page(course_dir, "wrong")
    row = summary_rows(shown)["forward_pass_values"]
    assert row[1:3] == ["1.5 / 2", "partial"] and "graded by your instructor" in row[3]
    assert "Summary: 19.5 / 25 points" in shown
    assert "Right idea: only the sign inside exp is off." in shown_text(shown)

    record = records.record_path(Course.open(course_dir), A, "wrong")
    before = json.loads(record.read_text())
    assert _grade(course_dir) == 0  # unchanged submissions: kept as they are
    assert json.loads(record.read_text()) == before
    assert wrong_row()[2:7] == ["1.5", "7", "8", "3", "19.5"]

    assert _grade(course_dir, "--force", "--student", "wrong") == 0  # graded again, the manual score kept
    after = json.loads(record.read_text())
    assert after["graded_at"] >= before["graded_at"] and after != before
    assert "kept the manual grades of forward_pass_values" in after["notes"]
    assert wrong_row()[2:7] == ["1.5", "7", "8", "3", "19.5"]
    with Gradebook(db) as gradebook:
        grade = gradebook.find_grade("forward_pass_values", A, A, "wrong")
        assert (grade.auto_score, grade.manual_score) == (0, 1.5)


def test_the_lms_late_mark_and_missing_students_reach_the_export_and_the_feedback(graded, tmp_path, capsys):
    """The class's Canvas export collected into the graded course: the reference's submission carries Canvas's LATE
    mark (no time), a student sent a PDF only. The same notebooks: nothing to grade again."""
    course_dir = tmp_path / "course"
    shutil.copytree(graded[0], course_dir)
    kept = {s: (course_dir / "submitted" / s / A / f"{A}.ipynb").read_bytes() for s in STUDENTS}
    files = {
        f"reference_LATE_101_9001_{A}.ipynb": kept["reference"],
        f"blank_102_9002_{A}.ipynb": kept["blank"],
        f"wrong_103_9003_{A}.ipynb": kept["wrong"],
        f"broken_104_9004_{A}.ipynb": kept["broken"],
        f"nobody_105_9005_{A}.pdf": b"%PDF-1.4",
    }
    export_zip = tmp_path / "cnn-a1_submissions.zip"
    with zipfile.ZipFile(export_zip, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    status, printed, err = _cli(capsys, course_dir, "collect", A, str(export_zip))
    assert status == 0, err
    assert "0 new, 0 updated, 4 unchanged; 1 without a notebook" in printed

    export.export_grades(Course.open(course_dir), [A])
    body = {row[0]: row for row in read_csv(course_dir / "exports" / f"{A}.csv")[1:]}
    assert body["reference"][-3:] == ["yes", "", "late: marked late by the LMS"]
    assert body["reference"][-5] == "25"  # a late mark without a penalty changes no score
    assert body["wrong"][-3:] == ["yes", str(LATE_SECONDS), "late: 1 h 0 min after the due date"]
    assert body["blank"][-3:] == ["", "", ""]
    assert body["nobody"][1] == "missing" and f"only: nobody_105_9005_{A}.pdf" in body["nobody"][-1]
    data = json.loads((course_dir / "exports" / f"{A}.json").read_text(encoding="utf-8"))
    entry = {s["student"]: s for s in data["students"]}["reference"]
    assert (entry["late"], entry["late_seconds"], entry["late_reason"]) == (True, None, "marked late by the LMS")

    pages = feedback.write_feedback(Course.open(course_dir), A, students=["reference", "wrong", "blank"])
    assert all(written.path for written in pages), [written.problem for written in pages]
    assert "your course's LMS marked it late" in shown_text(page(course_dir, "reference"))
    assert "submitted 1 h 0 min after the due date" in shown_text(page(course_dir, "wrong"))
    assert 'id="autograder-late-mark"' not in page(course_dir, "blank")
    assert 'id="autograder-late-mark"' in page(course_dir, "reference")


# ------------------------------------------------------------------------------------------- without grading
def test_export_without_part_headings_has_a_column_per_test():
    source = _source()
    points = harness.test_points(source)
    for cell in source.cells:
        if cell.cell_type == "markdown":
            cell.source = harness.PART.sub("## Some heading", cell.source)
    assert [c.header for c in export.columns(source)] == [f"{gid} ({p})" for gid, p in points.items()]
    assert [c.grade_ids for c in export.columns(source)] == [[gid] for gid in points]


def test_hide_tests_strips_hidden_regions_of_cells_the_release_lacks():
    """The fallback when a test cell is not in the student version: nbgrader's delimiters, regions dropped."""
    source = _source()
    hide = feedback.HideTests(release_sources={}, enabled=True)
    nb, resources = hide(copy.deepcopy(source), {})
    secret = secret_lines()
    for cell, original in zip(nb.cells, source.cells):
        if harness.is_test_cell(original):
            assert "HIDDEN TESTS" not in cell.source and not any(line in cell.source for line in secret)
            public = original.source.split("### BEGIN HIDDEN TESTS")[0].rstrip()
            assert cell.source.startswith(public), harness.nbgrader_meta(cell)["grade_id"]
        elif harness.is_solution_cell(original):
            assert cell.source == original.source  # the student's own cells stay as they are
    assert resources["autograder"]["errors"] == {}
