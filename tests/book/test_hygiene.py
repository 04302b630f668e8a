"""Notebook hygiene: clean commits, the standard first cell, the lecture frame, the table of contents."""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import yaml

from tools import book

ROOT = pathlib.Path(__file__).resolve().parents[2]
LECTURES = book.lecture_notebooks()
ALL_NOTEBOOKS = sorted(
    p for p in ROOT.rglob("*.ipynb") if not {"_build", ".venv", ".ipynb_checkpoints"} & set(p.parts)
)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    return files


def test_there_are_lectures():
    assert LECTURES, "no lecture notebooks found in notebooks/"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_clean(path):
    nb = load(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"cell {i} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
    ids = [cell.get("id") for cell in nb["cells"]]
    assert None not in ids and len(set(ids)) == len(ids), "cell ids must exist and be unique"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    extra = set(nb["metadata"]) - {"kernelspec", "language_info", "nbgrader"}
    assert not extra, f"machine-specific notebook metadata: {sorted(extra)}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_starts_with_its_title_then_the_standard_cell(path):
    cells = load(path)["cells"]
    assert cells[0]["cell_type"] == "markdown"
    title = source(cells[0]).strip()
    assert re.fullmatch(rf"# {path.stem[:2]} · \S.*", title), f"cell 0 must be '# NN · Title', not {title[:40]!r}"
    assert cells[1]["cell_type"] == "code", "the standard cell comes right after the title"
    assert source(cells[1]) == book.first_cell_source(), (
        "the standard cell must be tools.book.FIRST_CELL with the repository URL of _config.yml; "
        "run `python -m tools.book set-repository URL` after changing the URL, `python -m tools.book first-cell` "
        "after changing the cell"
    )
    assert "hide-input" in cells[1].get("metadata", {}).get("tags", []), "the site folds the set-up code"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_has_the_frame(path):
    cells = load(path)["cells"]
    intro = source(cells[2])
    assert cells[2]["cell_type"] == "markdown"
    assert "## What you will learn" in intro
    assert re.search(r"\*\*Time:\*\* about \d+ minutes", intro)
    markdown = "\n".join(source(c) for c in cells if c["cell_type"] == "markdown")
    assert "## Summary" in markdown
    assert "## Exercises" in markdown
    labels = re.findall(r"```\{exercise\}\s*\n:label: (\S+)", markdown)
    assert len(labels) >= 3, f"at least 3 practice exercises, found {labels}"
    for label in labels:
        assert re.fullmatch(rf"{path.stem}-ex\d+", label), f"exercise label {label} must be {path.stem}-exN"
        assert re.search(rf"```\{{solution\}} {re.escape(label)}\s*\n:class: dropdown", markdown), (
            f"exercise {label} needs a dropdown solution"
        )


def test_every_lecture_is_in_the_toc_and_every_toc_file_exists():
    files = toc_files()
    for path in LECTURES:
        assert f"notebooks/{path.stem}" in files, f"{path.name} is not in _toc.yml"
    for entry in files:
        candidates = [ROOT / f"{entry}{suffix}" for suffix in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry}, which does not exist"


def test_config_has_explicit_execution_settings():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert isinstance(config["execute"]["timeout"], int) and config["execute"]["timeout"] > 0
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True
    assert "sphinx_exercise" in config["sphinx"]["extra_extensions"]
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["repository"]["url"] == book.repository_url()


def test_set_repository_moves_config_and_every_first_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    for path in LECTURES:
        (tmp_path / "notebooks" / path.name).write_text(path.read_text())
    sources = book.assignment_sources()
    for path in sources:
        (tmp_path / "source" / path.parent.name).mkdir(parents=True)
        (tmp_path / "source" / path.parent.name / path.name).write_text(path.read_text())
    new = "https://github.com/example-university/cnn-course"
    changed = book.set_repository(new, root=tmp_path)
    assert book.repository_url(tmp_path / "_config.yml") == new
    assert len(changed) == 1 + len(LECTURES) + len(sources)
    for path in book.lecture_notebooks(tmp_path) + book.assignment_sources(tmp_path):
        assert source(book.first_code_cell(load(path))) == book.first_cell_source(new)
