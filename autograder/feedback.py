"""``autograder feedback ASSIGNMENT``: one HTML page per student that never shows a hidden test.

A graded submission gets ``feedback/<student>/<assignment>/<assignment>.html``, made by nbgrader's own
``GenerateFeedback`` converter (the layout ``nbgrader release_feedback`` and the formgrader expect) with two
preprocessors of this module around nbgrader's ``GetGrades``:

- ``HideTests`` (before ``GetGrades``) gives every instructor-owned cell back the source of the student version,
  where the hidden tests are not, and cuts every error output down to ``Name: message``: an IPython traceback
  quotes the lines of the test that failed, hidden ones included.
- ``Summary`` (after ``GetGrades``, so manual grades count) puts a table at the top: each graded cell with its
  points, passed / failed / partial and, for a failed test, the exception's name and message; the total, whether
  the submission is late (after the due date, by how much, or marked late by the LMS: ``autograder.intake``) and
  the late penalty, the repairs made to the notebook, and the instructor's comments.

The page's template, without nbgrader's list of test-cell links and with MathJax loaded from beside the page, not
from a CDN, is ``autograder.feedback_html``. A submission that could not be graded gets a short page at the same
place saying why and what to do.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import logging
import pathlib

import nbformat
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import GetGrades
from rich.table import Table
from traitlets import Any, Dict, Unicode
from traitlets.config import Config

from .course import Course, CourseError
from .feedback_html import GenerateFeedbackPage, mathjax_beside, shared_mathjax
from .gradescope.messages import student_reason, what_to_do
from .intake import Late, intakes, lateness
from .notebooks import grade_id as cell_grade_id
from .notebooks import nbgrader_meta
from .records import GRADED, records
from .sandbox.execute import SAFE_MIME


def hide_tests(config, release: nbformat.NotebookNode) -> HideTests:
    """The step that gives instructor cells their student-version source (from ``release``) and cuts errors,
    with the course's hidden-test delimiters (nbgrader's ``ClearHiddenTests`` settings)."""
    hidden = config.get("ClearHiddenTests", {})
    sources = {cell_grade_id(c): c.source for c in release.cells if cell_grade_id(c)}
    return HideTests(
        release_sources=sources,
        begin_hidden=hidden.get("begin_test_delimeter", "BEGIN HIDDEN TESTS"),
        end_hidden=hidden.get("end_test_delimeter", "END HIDDEN TESTS"),
        enabled=True,
    )


def release_notebook(course: Course, assignment: str) -> nbformat.NotebookNode:
    """The student version: ``release/<a>/<a>.ipynb`` if the course has it, else the grading setup's copy."""
    from .grading.prepare import setup_folder

    for path in (
        course.root / "release" / assignment / f"{assignment}.ipynb",
        setup_folder(course, assignment) / "release" / assignment / f"{assignment}.ipynb",
    ):
        if path.exists():
            return nbformat.read(path, as_version=4)
    raise CourseError(
        f"no student version of {assignment}: neither release/{assignment}/{assignment}.ipynb nor the grader's "
        f"copy exists. Run `autograder grade {assignment}` (it makes the copy) or `make release`."
    )


def format_error(ename: str, evalue: str) -> str:
    """An exception as a student may see it: its name and message, no traceback."""
    evalue = (evalue or "").strip()
    return f"{ename}: {evalue}" if evalue else ename


# ------------------------------------------------------------------------------------------ preprocessors
class HideTests(Preprocessor):
    """Replace the source of every cell the instructor owns by its student version, and every error output's
    traceback by ``Name: message``. Records each graded cell's error in ``resources['autograder']['errors']``."""

    release_sources = Dict(help="grade id -> the cell's source in the student version").tag(config=True)
    begin_hidden = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end_hidden = Unicode("END HIDDEN TESTS").tag(config=True)

    def preprocess(self, nb, resources):
        errors = {}
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            grade_id = meta.get("grade_id")
            if grade_id and not meta.get("solution"):
                if grade_id in self.release_sources:
                    cell.source = self.release_sources[grade_id]
                else:
                    cell.source = self._strip_hidden(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = format_error(output.get("ename", "Error"), output.get("evalue", ""))
                    output["traceback"] = [message]
                    if grade_id:
                        errors[grade_id] = message
        resources.setdefault("autograder", {})["errors"] = errors
        return nb, resources

    def _strip_hidden(self, source: str) -> str:
        """Drop hidden regions (nbgrader's delimiters) from a cell the student version lacks."""
        kept, hidden = [], False
        for line in source.split("\n"):
            if self.begin_hidden in line:
                hidden = True
            elif self.end_hidden in line:
                hidden = False
            elif not hidden:
                kept.append(line)
        return "\n".join(kept) if not hidden else ""


class InertOutputs(Preprocessor):
    """Make everything a student's process produced render inert: rich outputs keep only plain text and PNG/JPEG
    images (HTML, JavaScript, SVG, Markdown, LaTeX and made-up types are dropped, with a line saying so), and the
    notebook's widget state goes. The exporter's own ``sanitize_html`` (bleach) then cleans the Markdown cells, so
    a ``<script>`` in a student's Markdown is text. The sandboxed grader already keeps only these types; this also
    covers notebooks graded with ``--trust-submissions``."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                data = output.get("data")
                if not isinstance(data, dict):
                    continue
                kept = {mime: data[mime] for mime in SAFE_MIME if mime in data}
                if not kept:
                    kept = {"text/plain": "[an output that is not text or an image: not shown]"}
                output["data"] = nbformat.from_dict(kept)
                output["metadata"] = nbformat.from_dict({})
        return nb, resources


class Summary(Preprocessor):
    """Build the summary table (``resources['autograder']['summary']``, placed at the top by
    ``feedback_html.TEMPLATE``) from the scores ``GetGrades`` wrote into the cells."""

    record = Any(help="the submission's autograder.records.Record")
    late = Any(Late(), help="the submission's lateness (autograder.intake.Late)")
    manual = Dict(help="grade id -> True for grades an instructor set by hand")
    pending = Dict(help="grade id -> True for grades still waiting for an instructor")
    comments = Dict(help="grade id -> the instructor's comment")

    def preprocess(self, nb, resources):
        errors = resources.get("autograder", {}).get("errors", {})
        info = resources["nbgrader"]
        rows = []
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if not (meta.get("grade") or meta.get("task")):
                continue
            grade_id = meta["grade_id"]
            score, points = float(meta.get("score") or 0.0), float(meta.get("points") or 0.0)
            state = "pending" if grade_id in self.pending else "manual" if grade_id in self.manual else ""
            rows.append(_row(grade_id, score, points, errors.get(grade_id, ""), state))
        late = float(info.get("late_penalty") or 0.0)
        total = f"{float(info['score']):g} / {float(info['max_score']):g}"
        parts = [
            "<style>#autograder-summary pre { white-space: pre-wrap; word-break: break-word; margin: 0; } "
            "#autograder-summary th, #autograder-summary td:nth-child(2) { white-space: nowrap; }</style>",
            '<div class="panel panel-info" id="autograder-summary">',
            f'<div class="panel-heading"><h4>Summary: {html.escape(total)} points</h4></div>',
            '<div class="panel-body">',
            '<table class="table table-condensed table-bordered" id="autograder-results">',
            "<thead><tr><th>test</th><th>points</th><th>result</th><th>message</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            f'<tfoot><tr id="autograder-total"><th>total</th><th>{html.escape(total)}</th><th></th><th></th></tr>'
            "</tfoot>",
            "</table>",
        ]
        if self.late.late:
            line = html.escape(_late_line(self.late))
            parts.append(f'<p class="text-danger" id="autograder-late-mark">{line}</p>')
        if late:
            parts.append(
                f'<p class="text-danger" id="autograder-late">Late submission penalty: -{late:g} points '
                "(included in the total).</p>"
            )
        record = self.record
        changes = list(record.repairs) if record else []
        hidden = ("kept the manual", "late ", "the grader's")  # for the instructor only
        changes += [n for n in (record.notes if record else []) if not n.startswith(hidden)]
        if changes:
            parts.append(
                '<div id="autograder-repairs"><h5>Changes made to your notebook so it could be graded '
                "(your answers were not changed)</h5><ul>"
            )
            parts += [f"<li>{html.escape(c)}</li>" for c in changes]
            parts.append("</ul></div>")
        if self.comments:
            parts.append('<div id="autograder-comments"><h5>Comments from your instructor</h5><ul>')
            for gid, text in self.comments.items():
                parts.append(
                    f'<li><a href="#comment-{html.escape(gid)}"><code>{html.escape(gid)}</code></a>: '
                    f"{html.escape(text)}</li>"
                )
            parts.append("</ul></div>")
        parts.append("</div></div>")
        resources.setdefault("autograder", {})["summary"] = "\n".join(parts)
        return nb, resources


def _late_line(late: Late) -> str:
    """The sentence a student reads about a late submission."""
    if late.seconds is not None:
        return f"This submission is late: submitted {late.reason}."
    return "This submission is late: your course's LMS marked it late."


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _row(grade_id: str, score: float, points: float, error: str, state: str) -> str:
    """One line of the summary; ``state``: "manual" (graded by hand), "pending" (waiting for it) or ""."""
    if state == "pending":
        result, style = "waiting for your instructor", "info"
    elif score >= points:
        result, style = "passed", "success"
    elif score <= 0:
        result, style = "failed", "danger"
    else:
        result, style = "partial", "warning"
    message = html.escape(error) if result in ("failed", "partial") else ""
    message = f"<pre>{message}</pre>" if message else ""
    if state == "manual":
        message += "<em>graded by your instructor</em>"
    gid = html.escape(grade_id)
    return (
        f'<tr class="{style}" id="result-{gid}"><td><a href="#{gid}"><code>{gid}</code></a></td>'
        f"<td>{score:g} / {points:g}</td><td>{result}</td><td>{message}</td></tr>"
    )


# -------------------------------------------------------------------------------------------------- pages
def _instructor_notes(course: Course, assignment: str, student: str) -> tuple[dict, dict, dict, float | None]:
    """(grade ids graded by hand, grade ids waiting for it, grade id -> manual comment, nbgrader's seconds late)
    from the gradebook."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        except MissingEntry:
            return {}, {}, {}, None
        manual = {g.name: True for g in notebook.grades if g.manual_score is not None}
        pending = {g.name: True for g in notebook.grades if g.needs_manual_grade and g.manual_score is None}
        comments = {
            c.name: c.manual_comment.strip() for c in notebook.comments if (c.manual_comment or "").strip()
        }
        seconds = float(gradebook.find_submission(assignment, student).total_seconds_late or 0.0)
    return manual, pending, comments, seconds


def graded_page(course: Course, assignment: str, student: str, record, release, intake=None) -> pathlib.Path:
    """Render one graded submission through nbgrader's GenerateFeedback; returns the page's path. ``intake``:
    what the LMS export said of it (``autograder.intake``), for its late mark."""
    notebook = course.autograded(student, assignment) / f"{assignment}.ipynb"
    if not notebook.exists():
        raise CourseError(
            f"{student} has a graded record but no autograded notebook ({notebook}); grade it again: "
            f"`autograder grade {assignment} --force --student {student}`"
        )
    manual, pending, comments, seconds = _instructor_notes(course, assignment, student)
    config = copy.deepcopy(course.config)
    settings = Config()
    settings.CourseDirectory.root = str(course.root)
    settings.CourseDirectory.assignment_id = assignment
    settings.CourseDirectory.student_id = student
    settings.CourseDirectory.db_url = course.db_url
    settings.GenerateFeedback.force = True
    config.merge(settings)
    hide = hide_tests(config, release)
    late = lateness(intake, seconds)
    summary = Summary(record=record, late=late, manual=manual, pending=pending, comments=comments, enabled=True)
    log = logging.getLogger(f"autograder.feedback.{student}")
    log.propagate = False
    collected = _Collect()
    log.handlers = [collected]
    converter = GenerateFeedbackPage(coursedir=CourseDirectory(config=config, log=log), config=config, log=log)
    converter.preprocessors = [hide, InertOutputs(enabled=True), GetGrades, summary, CSSHTMLHeaderPreprocessor]
    try:
        converter.start()
    except Exception as err:  # noqa: BLE001 (nbgrader raises its own and many others)
        detail = [m.strip().splitlines()[-1] for m in collected.messages if m.strip()]
        detail = next((d for d in detail if not d.startswith(("Please see", "There was an error"))), str(err))
        raise CourseError(f"nbgrader could not write the feedback of {student}: {detail}") from None
    page = course.feedback(student, assignment) / f"{assignment}.html"
    if not page.exists():
        raise CourseError(f"nbgrader wrote no feedback page for {student} ({page})")
    return page


def failed_page(course: Course, assignment: str, record, intake=None) -> pathlib.Path:
    """A short page for a submission that could not be graded."""
    reason = student_reason(record.reason, course.root)
    late = lateness(intake)
    late_html = f'<p id="late">{html.escape(_late_line(late))}</p>\n' if late.late else ""
    title = f"{assignment}: your submission could not be graded"
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8" />
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; line-height: 1.5; }}
.reason {{ border-left: 4px solid #d2413a; padding: 0.5em 1em; background: #fdf2f2; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Your notebook for <b>{html.escape(assignment)}</b> was received but could not be graded, so it has no score
yet.</p>
{late_html}<h2>Why</h2>
<p class="reason" id="reason">{html.escape(reason)}</p>
<h2>What to do</h2>
<p id="what-to-do">{html.escape(what_to_do(record.reason))}</p>
</body>
</html>
"""
    folder = course.feedback(record.student, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.html"
    if path.exists():
        path.unlink()  # nbgrader writes its pages read-only for the group
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------- command
@dataclasses.dataclass
class Page:
    """One student's feedback page: where it was written, and the score it shows (``path`` is None, and
    ``problem`` says why, when it could not be written)."""

    student: str
    path: pathlib.Path | None
    score: str = "-"  # "18 / 25" (after any late penalty), or "not graded" for a submission that failed
    problem: str = ""


def write_feedback(course: Course, assignment: str, *, students: list[str] | tuple[str, ...] = ()) -> list[Page]:
    """Write the feedback page of each graded submission of ``assignment`` (``students``: only theirs), failed
    ones included; returns one ``Page`` per student. A page that cannot be written is a ``Page`` without a path;
    the others are written regardless. Raises ``CourseError`` when nothing is graded yet, or a student asked for
    has no graded submission."""
    course.check_assignment(assignment)
    everyone = records(course, assignment)
    if not everyone:
        raise CourseError(
            f"nothing has been graded yet for {assignment}: run `autograder grade {assignment}` first (feedback "
            "is made from the graded submissions)"
        )
    students = list(dict.fromkeys(students)) or sorted(everyone)
    missing = [s for s in students if s not in everyone]
    if missing:
        raise CourseError(
            f"no graded submission of {assignment} for {', '.join(missing)}: grade them first with "
            f"`autograder grade {assignment} --student STUDENT`"
        )
    release = None
    collected = intakes(course, assignment)
    mathjax = shared_mathjax(course.root / ".autograder" / "mathjax")
    pages = []
    for student in students:
        record = everyone[student]
        try:
            if record.status == GRADED:
                if release is None:
                    release = release_notebook(course, assignment)
                path = graded_page(course, assignment, student, record, release, collected.get(student))
                if mathjax is not None:
                    mathjax_beside(path.parent, mathjax)
                pages.append(Page(student, path, _gradebook_score(course, assignment, student)))
            else:
                path = failed_page(course, assignment, record, collected.get(student))
                pages.append(Page(student, path, "not graded"))
        except CourseError as error:
            pages.append(Page(student, None, problem=str(error)))
    return pages


def print_pages(course: Course, assignment: str, pages: list[Page], out, err) -> None:
    """The pages that could not be written, with why, on ``err``; a table of every student's on ``out``."""
    table = Table(title=f"{assignment}: feedback")
    for column in ("student", "score", "feedback file"):
        table.add_column(column)
    for page in pages:
        if page.path is None:
            err.print(f"[bold red]{page.student}:[/] {page.problem}")
            table.add_row(page.student, "-", "not written (see above)")
        else:
            table.add_row(page.student, page.score, str(page.path.relative_to(course.root)))
    out.print(table)


def run(course: Course, args, out, err) -> int:
    """The ``feedback`` subcommand: its arguments to ``write_feedback``, the pages listed; 1 when a page could not
    be written."""
    pages = write_feedback(course, args.assignment, students=args.student)
    print_pages(course, args.assignment, pages, out, err)
    return 1 if any(page.path is None for page in pages) else 0


def _gradebook_score(course: Course, assignment: str, student: str) -> str:
    with course.gradebook() as gradebook:
        submitted = gradebook.find_submission(assignment, student)
        score = float(submitted.score) - float(submitted.late_submission_penalty or 0.0)
        return f"{score:g} / {float(submitted.max_score):g}"
