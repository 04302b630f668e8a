"""The public mirror of a graded course: everything students need, nothing of the solutions.

A course with graded work keeps this repository private (``source/`` holds the solutions and hidden tests,
``autograder/`` the accuracy thresholds). Its students need a public repository all the same: the site is built
and published from it, Colab opens the notebooks from it and the first cell installs ``cnnbook`` from it. Run from
the repository root::

    python -m tools.mirror DIR --repository https://github.com/OWNER/cnn-course-public
    make public-mirror DIR=... URL=...          # the same

writes into DIR (a clone of the public repository) the lectures, the book's pages for students, the student
versions in ``release/``, the helper package ``cnnbook`` with its ``pyproject.toml``, what builds and publishes
the site (``tools/book.py``, the Makefile, the requirements, ``.github/``), a root ``pyproject.toml`` that installs
``cnnbook`` alone, and a README for students. Every notebook's first cell, the Colab buttons and the site's
repository button are pointed at the mirror's address. None of ``source/``, ``autograder/``, ``tests/``,
``bench/``, ``tools/calibrate_a4.py`` nor the instructors' pages (:data:`INSTRUCTOR_PAGES`) is written, and the
mirror is checked before it is written: no line of a solution or a hidden test, no marker of one, no accuracy
threshold. The files the mirror manages are replaced on every run; anything else in DIR (``.git``, a LICENSE of
its own) is left alone, but checked too. Commit and push the mirror yourself.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import sys
import tempfile

import nbformat
import yaml
from nbgrader.utils import compute_checksum

from tools import book

ROOT = book.ROOT
# Copied as they are, when they exist.
COPIED = (
    "_config.yml",
    "notebooks",
    "release",
    "cnnbook",
    "book",
    "tools/__init__.py",
    "tools/book.py",
    ".github",
    "Makefile",
    "requirements.txt",
    ".gitignore",
)
# Written for the mirror (see student_toc, student_pyproject, student_readme).
WRITTEN = ("_toc.yml", "pyproject.toml", "README.md")
# The "For instructors" part of the book: how to grade, and a4's measured thresholds. Not in the mirror's site.
INSTRUCTOR_PAGES = ("book/instructor_guide", "book/grading")
# What a mirror never holds; a DIR that does is refused (it is no mirror, or a private checkout).
PRIVATE = ("source", "autograder", "tests", "bench", "nbgrader_config.py", "gradebook.db", "submitted", "feedback")
# pyproject.toml sections of the grading pipeline and the test suite, left out of the mirror's.
PRIVATE_SECTIONS = (
    "project.scripts",
    "project.optional-dependencies",
    "tool.setuptools.package-data",
    "tool.pytest.ini_options",
)
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".ipynb_checkpoints")
NOT_SCANNED = {".git", ".venv", "_build"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
# Shorter lines of a solution or a hidden test (`return total`, `assert ok`) are common code, not secrets.
MIN_SECRET_LENGTH = 21


class MirrorError(Exception):
    """A mirror that cannot be written, or that would show what students must not see."""


def secret_lines(root: pathlib.Path = ROOT) -> set[str]:
    """Every line (stripped) of a solution region or a hidden-test block of the assignment sources, except short
    ones and those that are public anyway: shown in the open by the sources (a check's public call, a given
    import) or taught by the lectures and the helper library (``if padding == "same":``)."""
    secret, public = set(), set()
    hidden = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)
    for path in book.assignment_sources(root):
        for cell in nbformat.read(path, as_version=4).cells:
            secret |= {line.strip() for match in hidden.finditer(cell.source) for line in match[2].splitlines()}
            public |= {line.strip() for line in hidden.sub("", cell.source).splitlines()}
    taught = [cell.source for path in book.lecture_notebooks(root) for cell in nbformat.read(path, 4).cells]
    taught += [path.read_text(encoding="utf-8") for path in sorted((root / "cnnbook").glob("*.py"))]
    public |= {line.strip() for text in taught for line in text.splitlines()}
    return {line for line in secret - public if len(line) >= MIN_SECRET_LENGTH}


def threshold_values(root: pathlib.Path = ROOT) -> set[float]:
    """The accuracy tiers recorded in ``autograder/thresholds/*.json`` (hidden from students)."""
    values = set()
    for path in sorted((root / "autograder" / "thresholds").glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).get("datasets", {}).values():
            values |= set(entry.get("tiers") or [])
    return values


def scan(directory: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    """What in ``directory`` students must not see: private folders, solution or hidden-test lines and markers,
    accuracy thresholds. Returns one line per finding; empty when the directory is fit to publish."""
    secrets = secret_lines(root)
    thresholds = {
        value: re.compile(rf"(?<![\d.]){re.escape(repr(value))}(?!\d)") for value in threshold_values(root)
    }
    problems = [f"{name}: private, never part of a mirror" for name in PRIVATE if (directory / name).exists()]
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or NOT_SCANNED & set(relative.parts):
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if path.suffix == ".ipynb":
            try:
                text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
            except Exception:  # not a notebook nbformat can read: its text is checked as it is
                pass
        problems += [f"{relative}: nbgrader marker {marker!r}" for marker in MARKERS if marker in text]
        leaked = {line.strip() for line in text.splitlines()} & secrets
        problems += [f"{relative}: a solution or hidden-test line: {line!r}" for line in sorted(leaked)]
        problems += [
            f"{relative}: the accuracy threshold {v}" for v, pattern in thresholds.items() if pattern.search(text)
        ]
    return problems


def student_toc(text: str) -> str:
    """``_toc.yml`` without :data:`INSTRUCTOR_PAGES` (and without a part they leave empty)."""
    toc = yaml.safe_load(text)

    def keep(entries):
        kept = []
        for entry in entries:
            if entry.get("file") in INSTRUCTOR_PAGES:
                continue
            if "sections" in entry:
                entry = dict(entry, sections=keep(entry["sections"]))
            kept.append(entry)
        return kept

    parts = [dict(part, chapters=keep(part["chapters"])) for part in toc.get("parts", [])]
    toc["parts"] = [part for part in parts if part["chapters"]]
    header = "# Table of contents of the students' site, written by `make public-mirror` (tools/mirror.py).\n"
    return header + yaml.safe_dump(toc, sort_keys=False)


def student_pyproject(text: str) -> str:
    """The root ``pyproject.toml`` for the mirror: ``cnnbook`` alone, as ``make venv`` installs it there; without
    the grading pipeline's script, extras and package data, the test suite's settings and the comments about
    them."""
    kept, dropped = [], False
    for line in text.splitlines(keepends=True):
        header = re.fullmatch(r"\[([^\]]+)\]\s*", line)
        if header:
            dropped = header[1] in PRIVATE_SECTIONS
        if not dropped and not line.startswith("#"):
            kept.append(line)
    out = re.sub(r"^include = \[.*\]$", 'include = ["cnnbook*"]', "".join(kept), flags=re.MULTILINE)
    out = re.sub(
        r"^description = .*$",
        'description = "Helper library of an open course on convolutional neural networks"',
        out,
        flags=re.MULTILINE,
    )
    if "autograder" in out:
        raise MirrorError(
            "pyproject.toml names autograder where tools/mirror.py does not expect it: extend PRIVATE_SECTIONS "
            "(or the rewrites of student_pyproject) so that the mirror's copy installs cnnbook alone"
        )
    header = "# The students' mirror of the course (`make public-mirror`): this installs the helpers cnnbook.\n"
    return header + out.lstrip("\n")


def student_readme(title: str, url: str) -> str:
    return f"""\
# {title}

The public repository of the course: its site is built and published from here, every notebook opens in Google
Colab from here, and the course helpers install from here.

- `notebooks/`: the lectures;
- `release/`: the assignments, as students get them;
- `book/`: the site's other pages;
- `cnnbook/`: the helper library the notebooks import. The first cell of every notebook installs it on Colab:
  `pip install "cnnbook @ git+{url}#subdirectory=cnnbook"`.

To work locally: `make venv` (Python 3.11), then `.venv/bin/jupyter lab`. `make book` builds the site into
`_build/html`; `.github/workflows/publish.yml` builds it and publishes it on GitHub Pages on every push to `main`
(Settings > Pages > Source: GitHub Actions), and `.github/workflows/linkcheck.yml` checks its links every week.

This repository is written by `make public-mirror` from the course's own repository: change the course there.
"""


def mirror_url(directory: pathlib.Path, url: str | None) -> str:
    """The mirror's address: ``url``, or the one a mirror already in ``directory`` has."""
    if url is None and (directory / "_config.yml").exists():
        url = book.repository_url(directory / "_config.yml")
    if url is not None and not re.fullmatch(r"https://\S+", url):
        raise MirrorError(f"expected the mirror's https:// address, got {url!r}")
    if url is None or url.rstrip("/") == book.PLACEHOLDER_REPOSITORY:
        raise MirrorError(
            "the mirror's address is needed (Colab opens its notebooks from it): "
            "--repository https://github.com/OWNER/REPOSITORY, or make public-mirror DIR=... URL=..."
        )
    if url.rstrip("/") == book.repository_url().rstrip("/"):
        raise MirrorError(
            f"{url} is this repository's own address (repository.url in _config.yml): the mirror needs the "
            "address of the public repository it is pushed to"
        )
    return url


def point_release_at(directory: pathlib.Path, url: str) -> None:
    """Give every student version's standard cell the mirror's address, with the checksum nbgrader would write
    for it. Grading is unaffected: it restores every locked cell from the instructor's copy."""
    standard = book.first_cell_source(url)
    for path in sorted((directory / "release").glob("a[0-9]_*/a[0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = next(cell for cell in nb.cells if cell.cell_type == "code")
        cell.source = standard
        if "checksum" in cell.metadata.get("nbgrader", {}):
            cell.metadata.nbgrader.checksum = compute_checksum(cell)
        nbformat.write(nb, path)


def stage(target: pathlib.Path, url: str, root: pathlib.Path = ROOT) -> None:
    """Write the mirror's files into the empty folder ``target``."""
    for name in COPIED:
        source, destination = root / name, target / name
        if source.is_dir():
            shutil.copytree(source, destination, ignore=SKIPPED)
        elif source.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    for license_file in root.glob("LICENSE*"):
        shutil.copy2(license_file, target / license_file.name)
    for page in INSTRUCTOR_PAGES:
        (target / f"{page}.md").unlink(missing_ok=True)
    (target / "_toc.yml").write_text(
        student_toc((root / "_toc.yml").read_text(encoding="utf-8")), encoding="utf-8"
    )
    pyproject = student_pyproject((root / "pyproject.toml").read_text(encoding="utf-8"))
    (target / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    book.set_repository(url, root=target)
    point_release_at(target, url)
    title = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["title"]
    (target / "README.md").write_text(student_readme(title, url), encoding="utf-8")


def write_mirror(directory: pathlib.Path, url: str | None = None, root: pathlib.Path = ROOT) -> list[str]:
    """Write the public mirror into ``directory``; return the top-level names written.

    The mirror is made and checked in a scratch folder first, so a mirror that would show a solution is never
    written; after the copy the whole of ``directory`` is checked again (files the mirror does not manage).
    """
    directory = directory.resolve()
    if directory == root or root in directory.parents or directory in root.parents:
        raise MirrorError(
            f"{directory} overlaps this repository: give a folder outside it (a clone of the mirror)"
        )
    if directory.exists() and not directory.is_dir():
        raise MirrorError(f"{directory} is a file, not a folder")
    private = [name for name in PRIVATE if (directory / name).exists()]
    if private:
        raise MirrorError(f"{directory} holds {', '.join(private)}: it is no student mirror; give another folder")
    url = mirror_url(directory, url)
    with tempfile.TemporaryDirectory() as scratch:
        staged = pathlib.Path(scratch) / "mirror"
        staged.mkdir()
        stage(staged, url, root)
        problems = scan(staged, root)
        if problems:
            raise MirrorError("the mirror would show what students must not see:\n  " + "\n  ".join(problems))
        directory.mkdir(parents=True, exist_ok=True)
        names = sorted(
            {pathlib.Path(name).parts[0] for name in (*COPIED, *WRITTEN)}
            | {p.name for p in staged.glob("LICENSE*")}
        )
        for name in names:
            old, new = directory / name, staged / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
            if new.exists():
                shutil.move(new, old)
    problems = scan(directory, root)
    if problems:
        raise MirrorError(
            f"{directory} holds files students must not see; remove them:\n  " + "\n  ".join(problems)
        )
    return [name for name in names if (directory / name).exists()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mirror", description=__doc__.split("\n")[0])
    parser.add_argument(
        "directory", type=pathlib.Path, help="the mirror's folder (a clone of the public repository)"
    )
    parser.add_argument(
        "--repository", metavar="URL", help="the public repository's address (default: the one DIR already has)"
    )
    args = parser.parse_args(argv)
    try:
        names = write_mirror(args.directory, args.repository)
    except MirrorError as error:
        print(f"public mirror: {error}", file=sys.stderr)
        return 1
    url = book.repository_url(args.directory / "_config.yml")
    print(f"Wrote the public mirror of the course into {args.directory} ({url}): {', '.join(names)}.")
    print(f"Check it (git -C {args.directory} status), then commit and push it: its workflow publishes the site.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
