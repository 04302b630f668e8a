"""The book: it builds with no warnings, every toc entry has a page, notebooks ran, Colab links are right."""

from __future__ import annotations

import html
import pathlib
import re

import pytest
from jupyter_cache import get_cache

from tests.book.test_hygiene import toc_files
from tools import book

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
LECTURES = book.lecture_notebooks()


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_book_builds_without_warnings(built_book):
    status, log = built_book
    assert status == 0, f"jupyter-book build failed (log in _build/book-build.log):\n{log[-6000:]}"
    assert "Building the book with profile 'smoke'" in log
    # Sphinx closes with "build succeeded." when there were no warnings, otherwise with "build succeeded, N
    # warnings." or "build finished with problems". Kernels' own stderr (TensorFlow's C++ log) is not a warning.
    assert re.search(r"^build succeeded\.$", strip_ansi(log), re.MULTILINE), "the build had Sphinx warnings"
    sphinx_warnings = [line for line in strip_ansi(log).splitlines() if re.search(r"\S: WARNING: ", line)]
    assert not sphinx_warnings, "\n".join(sphinx_warnings[:20])


@pytest.mark.parametrize("entry", toc_files())
def test_every_toc_entry_has_a_page(built_book, entry):
    page = HTML / f"{entry}.html"
    assert page.exists(), f"no page for {entry}"
    assert "<h1" in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_executed_under_smoke_without_errors(built_book, path, record_property):
    """The book's execution is the notebook test: the cache holds a successful run of the current code."""
    cache = get_cache(ROOT / "_build" / ".jupyter_cache")
    try:
        record = cache.match_cache_file(str(path))
    except KeyError:
        pytest.fail(f"{path.name} has no successful execution in the cache: see _build/html/reports/")
    seconds = record.data.get("execution_seconds")
    record_property("execution_seconds", seconds)
    print(f"{path.name}: executed in {seconds:.1f} s under the smoke profile")
    page = (HTML / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
    assert "cell_output" in page, "the page shows no executed output"
    assert "Profile    : smoke: up to 20 epochs per run" in html.unescape(page), "setup() output missing"
    assert "Traceback" not in page


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_notebook_page_has_a_correct_colab_link(built_book, path):
    page = (HTML / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
    repo = book.repository_url().removeprefix("https://github.com/")
    expected = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}"
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
    assert links == {expected}, f"Colab links on the page: {links}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_exercises_render_with_dropdown_solutions(built_book, path):
    page = (HTML / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
    exercises = page.count('class="exercise admonition"')
    solutions = page.count('class="solution dropdown admonition"')
    assert exercises >= 3 and solutions == exercises, (exercises, solutions)


def test_bibliography_renders(built_book):
    references = (HTML / "book" / "references.html").read_text(encoding="utf-8")
    assert "Rumelhart" in references and "Learning representations by back-propagating errors" in references


RELEASES = sorted((ROOT / "release").glob("a[0-9]_*/a[0-9]_*.ipynb"))


def test_every_student_version_is_in_the_assignments_part():
    files = toc_files()
    assert "book/assignments" in files
    for path in RELEASES:
        assert f"release/{path.parent.name}/{path.stem}" in files, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.name)
def test_assignment_page_shows_the_student_version_unexecuted_with_its_colab_link(built_book, path):
    page = (HTML / "release" / path.parent.name / f"{path.stem}.html").read_text(encoding="utf-8")
    repo = book.repository_url().removeprefix("https://github.com/")
    expected = f"https://colab.research.google.com/github/{repo}/blob/main/release/{path.parent.name}/{path.name}"
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
    assert links == {expected}, f"Colab links on the page: {links}"
    assert "YOUR CODE HERE" in page and "NotImplementedError" in page
    assert 'class="cell_output' not in page, "student versions are shown, not executed"
    assert "HIDDEN TESTS" not in page and "BEGIN SOLUTION" not in page
    cache = get_cache(ROOT / "_build" / ".jupyter_cache")
    with pytest.raises(KeyError):
        cache.match_cache_file(str(path))


def test_assignments_page_lists_every_assignment_with_its_points(built_book):
    from tests.support import harness

    table = (ROOT / "book" / "assignments.md").read_text(encoding="utf-8")
    assert (HTML / "book" / "assignments.html").exists()
    for path in RELEASES:
        row = next((line for line in table.splitlines() if f"../release/{path.stem}/{path.stem}>" in line), None)
        assert row, f"{path.stem} is not in the table of book/assignments.md"
        said = int(row.strip(" |").split("|")[-1])
        points = sum(harness.test_points(harness.read(harness.source_path(path.stem))).values())
        assert said == points, f"{path.stem}: book/assignments.md says {said} points, the notebook gives {points}"
