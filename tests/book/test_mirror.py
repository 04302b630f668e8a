"""The public mirror of a graded course (``make public-mirror``, tools/mirror.py): it holds everything students
need, points at itself, installs ``cnnbook``, and holds no solution, hidden test, threshold or instructor page."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml
from nbgrader.utils import compute_checksum

from tools import book, mirror

ROOT = pathlib.Path(__file__).resolve().parents[2]
URL = "https://github.com/example-university/cnn-course-public"


@pytest.fixture(scope="module")
def public(tmp_path_factory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("public") / "cnn-course-public"
    assert mirror.main([str(directory), "--repository", URL]) == 0
    return directory


def files(directory: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def toc_files(directory: pathlib.Path) -> list[str]:
    toc = yaml.safe_load((directory / "_toc.yml").read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(entries):
        for entry in entries:
            found.extend([entry["file"]] if "file" in entry else [])
            walk(entry.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    return found


def first_code_cell(path: pathlib.Path):
    return next(cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


def test_what_is_secret_is_known():
    """The lines the mirror is checked against really hold the assignments' secrets (a guard against a check that
    compares with nothing)."""
    secrets = mirror.secret_lines()
    assert len(secrets) > 100
    assert sum(line.startswith("THRESHOLDS = ") for line in secrets) == 3, "a4's three hidden tiers"
    values = mirror.threshold_values()
    assert values and all(0 < v < 1 for v in values)
    for path in book.assignment_sources():
        source = path.read_text(encoding="utf-8")
        found = sum(json.dumps(line, ensure_ascii=False)[1:-1] in source for line in secrets)
        assert found >= 10, f"{path.name}: only {found} of its lines count as secret"


def test_mirror_holds_no_solution_hidden_test_threshold_or_private_folder(public):
    names = {p.name for p in public.iterdir()}
    assert not names & {"source", "autograder", "tests", "bench", "nbgrader_config.py"}, names
    assert not (public / "tools" / "calibrate_a4.py").exists()
    for page in mirror.INSTRUCTOR_PAGES:
        assert not (public / f"{page}.md").exists() and page not in toc_files(public)
    secrets = mirror.secret_lines()
    thresholds = [re.compile(rf"(?<![\d.]){re.escape(repr(v))}(?!\d)") for v in mirror.threshold_values()]
    for path in files(public):
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(public)
        for marker in ("BEGIN SOLUTION", "HIDDEN TESTS"):
            assert marker not in text, f"{relative} names {marker!r}"
        lines = text.splitlines()
        if path.suffix == ".ipynb":
            lines = [
                line for cell in nbformat.reads(text, as_version=4).cells for line in cell.source.splitlines()
            ]
        leaked = {line.strip() for line in lines} & secrets
        assert not leaked, f"{relative} holds solution or hidden-test lines: {sorted(leaked)[:3]}"
        for threshold in thresholds:
            assert not threshold.search(text), f"{relative} shows a threshold: {threshold.pattern}"
    assert mirror.scan(public) == []


def test_mirror_has_what_the_book_build_and_students_need(public):
    for entry in toc_files(public):
        assert any((public / f"{entry}{suffix}").exists() for suffix in (".md", ".ipynb")), entry
    assert {f"notebooks/{p.stem}" for p in book.lecture_notebooks()} <= set(toc_files(public))
    releases = sorted(ROOT.glob("release/a[0-9]_*/a[0-9]_*.ipynb"))
    assert releases and {str(p.relative_to(ROOT).with_suffix("")) for p in releases} <= set(toc_files(public))
    config = yaml.safe_load((public / "_config.yml").read_text(encoding="utf-8"))
    for path in config["bibtex_bibfiles"] + list(config["sphinx"]["local_extensions"].values()):
        assert (public / path).exists(), path
    for path in config["sphinx"]["config"].get("html_static_path", []):
        assert (public / path).is_dir(), path
    for name in ("Makefile", "requirements.txt", "tools/book.py", "cnnbook/pyproject.toml", "README.md"):
        assert (public / name).is_file(), name
    assert (public / ".github" / "workflows" / "publish.yml").read_bytes() == (
        ROOT / ".github" / "workflows" / "publish.yml"
    ).read_bytes()
    pyproject = (public / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["cnnbook*"]' in pyproject and "autograder" not in pyproject


def test_mirror_points_every_notebook_and_button_at_itself(public):
    assert book.repository_url(public / "_config.yml") == URL
    assert book.repository_warning(public / "_config.yml") is None
    standard = book.first_cell_source(URL)
    for path in book.lecture_notebooks(public):
        assert first_code_cell(path).source == standard, path.name
    released = sorted(public.glob("release/a[0-9]_*/a[0-9]_*.ipynb"))
    assert released
    for path in released:
        cell = first_code_cell(path)
        assert cell.source == standard, path.name
        assert cell.metadata.nbgrader.checksum == compute_checksum(cell), f"{path.name}: stale nbgrader checksum"
    assert f"git+{URL}#subdirectory=cnnbook" in (public / "README.md").read_text(encoding="utf-8")


def test_cnnbook_installs_from_the_mirror_and_imports(public, tmp_path):
    """What Colab's first cell does (``pip install "cnnbook @ git+URL#subdirectory=cnnbook"``), from the mirror's
    folder; and the mirror's root project, which ``make venv`` installs there, holds cnnbook alone."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    copy = tmp_path / "clone"  # pip builds in the project's folder: keep the mirror itself clean
    shutil.copytree(public, copy)
    for name, project in (("colab", copy / "cnnbook"), ("root", copy)):
        target = tmp_path / name
        result = subprocess.run([*pip, "--target", str(target), str(project)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (target / "cnnbook" / "__init__.py").exists() and not (target / "autograder").exists()
        assert not (target / "bin" / "autograder").exists()
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "colab"))
    code = "import cnnbook; print(cnnbook.__file__); print(cnnbook.profiles.resolve('smoke').name)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "colab" / "cnnbook" / "__init__.py"), "smoke"]


def test_a_second_run_replaces_the_mirror_and_keeps_what_it_does_not_manage(public):
    (public / "notebooks" / "99_removed.ipynb").write_text("{}", encoding="utf-8")
    (public / ".git").mkdir(exist_ok=True)
    (public / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (public / "LICENSE").write_text("the mirror's own licence\n", encoding="utf-8")
    assert mirror.main([str(public)]) == 0, "the address is the one the mirror already has"
    assert not (public / "notebooks" / "99_removed.ipynb").exists()
    assert (public / ".git" / "HEAD").exists() and (public / "LICENSE").exists()
    assert book.repository_url(public / "_config.yml") == URL


def test_scan_reports_a_planted_secret(tmp_path):
    line = sorted(mirror.secret_lines())[0]
    value = sorted(mirror.threshold_values())[0]
    (tmp_path / "notes.md").write_text(f"    {line}\ntier: {value!r}\n### BEGIN HIDDEN TESTS\n", encoding="utf-8")
    (tmp_path / "source").mkdir()
    problems = mirror.scan(tmp_path)
    assert len(problems) == 4, problems
    assert any("source: private" in p for p in problems)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no address", "the mirror's address is needed"),
        ("placeholder", "the mirror's address is needed"),
        ("not https", "expected the mirror's https:// address"),
        ("private folder", "holds source"),
        ("inside the repository", "overlaps this repository"),
    ],
)
def test_bad_requests_are_refused_with_what_to_do(tmp_path, capsys, case, message):
    directory, args = tmp_path / "public", ["--repository", URL]
    if case == "no address":
        args = []
    elif case == "placeholder":
        args = ["--repository", book.PLACEHOLDER_REPOSITORY]
    elif case == "not https":
        args = ["--repository", "git@github.com:example-university/cnn-course-public.git"]
    elif case == "private folder":
        (directory / "source").mkdir(parents=True)
    else:
        directory = ROOT / "_build" / "public-mirror"
    assert mirror.main([str(directory), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (directory / "_config.yml").exists(), "nothing is written"
