"""Course tooling: build the book, keep every notebook's standard cell in step with ``_config.yml``.

Run from the repository root: ``python -m tools.book build`` builds the site with Jupyter Book 1 (``make book``
calls it); ``python -m tools.book set-repository URL`` moves the course to another repository address;
``python -m tools.book check-repository`` fails while that address is still the placeholder (the publishing
workflow runs it); ``python -m tools.book linkcheck`` checks the book's external links without executing anything
(``make linkcheck``); ``python -m tools.book first-cell`` writes the standard first cell into every lecture and
assignment source after :data:`FIRST_CELL` changed.
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
import tempfile

import yaml

from cnnbook import profiles

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
BUILD = ROOT / "_build"
CACHE = BUILD / ".jupyter_cache"
STAMP = BUILD / ".execution-stamp.json"
LINKCHECK = BUILD / "linkcheck"
# The address the course ships with. A site built with it has Colab buttons and first cells that point at a
# repository that is not the course's: `set-repository` replaces it before anything is published.
PLACEHOLDER_REPOSITORY = "https://github.com/your-org/cnn-course"

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


def repository_warning(config: pathlib.Path = CONFIG) -> str | None:
    """The warning to show while ``repository.url`` in ``config`` is still :data:`PLACEHOLDER_REPOSITORY`, else
    None."""
    if repository_url(config).rstrip("/") != PLACEHOLDER_REPOSITORY:
        return None
    return (
        f"WARNING: repository.url in _config.yml is still the placeholder {PLACEHOLDER_REPOSITORY}.\n"
        "The site's Colab buttons and every notebook's first cell point at a repository that is not the\n"
        "course's: do not publish this build. Run\n"
        "    python -m tools.book set-repository https://github.com/OWNER/REPOSITORY\n"
        "with the repository students open the notebooks from, then `make release`, and commit\n"
        "(README: Publishing the site)."
    )


def print_repository_warning(config: pathlib.Path = CONFIG) -> bool:
    """Print :func:`repository_warning` in a frame to stderr, if there is one; return whether there was."""
    warning = repository_warning(config)
    if warning:
        rule = "!" * 100
        print(f"\n{rule}\n{warning}\n{rule}\n", file=sys.stderr, flush=True)
    return warning is not None


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
    otherwise it is cleared and every notebook runs again. While ``repository.url`` is the placeholder the build
    still runs, framed by a warning not to publish it.
    """
    placeholder = print_repository_warning()
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
    if placeholder:
        print_repository_warning()
    return status


def linkcheck_config(config: pathlib.Path = CONFIG) -> dict:
    """``config`` as a link check reads it: no notebook is executed (the links are in the text, not in outputs),
    local extensions are named by absolute path (the file is written outside the book), and a link gets retries
    before it counts as broken (a server that never answers counts as a timeout, which fails the check too)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.setdefault("execute", {})["execute_notebooks"] = "off"
    sphinx = data.setdefault("sphinx", {})
    extensions = sphinx.get("local_extensions") or {}
    sphinx["local_extensions"] = {name: str((config.parent / path).resolve()) for name, path in extensions.items()}
    sphinx.setdefault("config", {}).update(
        linkcheck_retries=3, linkcheck_timeout=30, linkcheck_report_timeouts_as_broken=False
    )
    return data


def linkcheck(root: pathlib.Path = ROOT) -> int:
    """Check every external link of the book in ``root`` with Sphinx's linkcheck builder, executing nothing;
    returns its exit status, non-zero when a link is broken. The report lands in ``_build/linkcheck``."""
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    output = root / LINKCHECK.relative_to(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp) / "_config.yml"
        config.write_text(
            yaml.safe_dump(linkcheck_config(root / "_config.yml"), sort_keys=False), encoding="utf-8"
        )
        command = [str(jb), "build", str(root), "--builder", "linkcheck", "--config", str(config),
                   "--path-output", str(output), "--keep-going"]  # fmt: skip
        status = subprocess.run(command, cwd=root, check=False).returncode
    report = output / "_build" / "html" / "output.txt"
    if status != 0:
        print(
            f"Broken or unreachable links ([broken] and [timeout] in {report.relative_to(root)}): fix or remove "
            "each, or, for a site that refuses robots, add it to linkcheck_ignore under sphinx.config in "
            "_config.yml.",
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
    c = sub.add_parser("check-repository", help="fail while repository.url is the placeholder (before publishing)")
    c.add_argument("--config", type=pathlib.Path, default=CONFIG, help="the book's _config.yml")
    sub.add_parser("linkcheck", help="check the book's external links, executing no notebook")
    sub.add_parser("first-cell", help="write the standard first cell into every lecture and assignment source")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.profile)
    if args.command == "check-repository":
        if print_repository_warning(args.config):
            return 1
        print(f"repository.url: {repository_url(args.config)}")
        return 0
    if args.command == "linkcheck":
        return linkcheck()
    changed = set_repository(args.url) if args.command == "set-repository" else write_first_cells()
    for path in changed:
        print(f"updated {path.relative_to(ROOT)}")
    print("Now run `make release` to regenerate the student versions of the assignments, then commit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
