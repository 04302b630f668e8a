"""Course tooling: build the book, keep every notebook's standard cell in step with ``_config.yml``.

Run from the repository root: ``python -m tools.book build`` builds the site with Jupyter Book 1 (``make book``
calls it); ``python -m tools.book set-repository URL`` moves the course to another repository address;
``python -m tools.book first-cell`` writes the standard first cell into every lecture and assignment source after
:data:`FIRST_CELL` changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

from cnnbook import profiles

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
BUILD = ROOT / "_build"
CACHE = BUILD / ".jupyter_cache"
STAMP = BUILD / ".execution-stamp.json"

FIRST_CELL = """\
# Standard first cell. On Colab: install the course helpers, the package cnnbook alone (it has its own
# pyproject.toml in the repository's cnnbook/ folder, hence #subdirectory). It requires nothing Colab lacks,
# so Colab's own TensorFlow, NumPy and ipywidgets are kept as they are.
# Everywhere: seed everything, report versions and device, and pick the training profile.
import sys

if "google.colab" in sys.modules:
    import subprocess

    helpers = "cnnbook @ git+{repository}#subdirectory=cnnbook"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", helpers], check=True)

import cnnbook

profile = cnnbook.setup()"""


def repository_url(config: pathlib.Path = CONFIG) -> str:
    """The repository URL set in ``_config.yml`` (the one place it is set)."""
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", config.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise ValueError(f"{config} has no repository.url")
    return match.group(1)


def first_cell_source(repository: str | None = None) -> str:
    return FIRST_CELL.format(repository=repository or repository_url())


def lecture_notebooks(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def assignment_sources(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The nbgrader instructor notebooks ``source/aN_topic/aN_topic.ipynb``."""
    return sorted(p for p in (root / "source").glob("a[0-9]_*/a[0-9]_*.ipynb") if p.stem == p.parent.name)


def first_code_cell(nb: dict) -> dict:
    """The standard cell: the first code cell, right after the title cell."""
    return next(cell for cell in nb["cells"] if cell["cell_type"] == "code")


def _cell_source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def write_first_cells(root: pathlib.Path = ROOT, repository: str | None = None) -> list[pathlib.Path]:
    """Make the first code cell of every lecture and assignment source the standard cell (with ``repository``,
    by default the URL of ``root``'s ``_config.yml``); return the notebooks changed.

    The student versions in ``release/`` are generated: run ``make release`` afterwards.
    """
    standard = first_cell_source(repository or repository_url(root / "_config.yml"))
    changed = []
    for path in lecture_notebooks(root) + assignment_sources(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = first_code_cell(nb)
        if _cell_source(cell) != standard:
            cell["source"] = standard.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            changed.append(path)
    return changed


def set_repository(url: str, root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Set the repository URL in ``_config.yml`` and in the first cell of every lecture and assignment source.

    The student versions in ``release/`` are generated: run ``make release`` afterwards.
    """
    if not re.fullmatch(r"https://\S+", url):
        raise ValueError(f"expected an https:// URL, got {url!r}")
    config = root / "_config.yml"
    old = repository_url(config)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f"url: {old}", f"url: {url}", 1), encoding="utf-8")
    return [config, *write_first_cells(root, url)]


def _fingerprint(profile: profiles.Profile) -> dict:
    """What the cached outputs depend on besides the notebooks' own code: the profile, the helper library the
    notebooks import (``cnnbook/*.py``; this tooling is outside it) and the local requirements."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "cnnbook").glob("*.py")) + [ROOT / "requirements.txt"]:
        digest.update(path.read_bytes())
    return {"profile": profile.name, "helpers": digest.hexdigest()}


def build(profile_name: str | None = None, extra_args: list[str] | None = None) -> int:
    """Build the book into ``_build/html``; returns Jupyter Book's exit status.

    The execution cache is reused only when the profile and the helper library are those it was made with;
    otherwise it is cleared and every notebook runs again.
    """
    profile = profiles.resolve(profile_name)
    env = dict(os.environ, CNNBOOK_PROFILE=profile.name)
    # Run kernels with this environment's Python even when a user-wide "python3" kernel points elsewhere.
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(pathlib.Path(sys.prefix) / "share" / "jupyter"),
                                                       env.get("JUPYTER_PATH")]))  # fmt: skip
    env["CNNBOOK_STATIC_WIDGETS"] = "1"  # the site has no kernel: explorers show their static figures
    fingerprint = _fingerprint(profile)
    args = ["--all"] if not STAMP.exists() or json.loads(STAMP.read_text()) != fingerprint else []
    if args:
        if CACHE.exists():
            print(f"Execution cache made with another profile or helper version: clearing {CACHE}", flush=True)
            shutil.rmtree(CACHE)
        # From here on the cache only receives executions under this fingerprint, so a build that fails (say, on
        # one warning) keeps what it executed for the next one.
        STAMP.parent.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(json.dumps(fingerprint))
    print(f"Building the book with {profile.describe()}", flush=True)
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    command = [str(jb), "build", str(ROOT), "-W", "--keep-going", *args, *(extra_args or [])]
    status = subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    if status != 0:
        print(
            "The book build failed. Read the first error above; a notebook's traceback is in "
            "_build/html/reports/. Fix it, then run `make book` again (executed notebooks are cached).",
            file=sys.stderr,
        )
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the site into _build/html")
    b.add_argument("--profile", choices=[*profiles.NAMES, "auto"], help="overrides CNNBOOK_PROFILE")
    s = sub.add_parser("set-repository", help="set the course's repository URL everywhere")
    s.add_argument("url")
    sub.add_parser("first-cell", help="write the standard first cell into every lecture and assignment source")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.profile)
    changed = set_repository(args.url) if args.command == "set-repository" else write_first_cells()
    for path in changed:
        print(f"updated {path.relative_to(ROOT)}")
    print("Now run `make release` to regenerate the student versions of the assignments, then commit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
