"""Book build times: a cold build, a rebuild with nothing changed, and a rebuild after one notebook's code changed.

Usage: .venv/bin/python bench/book.py [--profile smoke|cpu|gpu|auto] [--edit notebooks/03_pooling.ipynb]
       [--keep] [--quick] [--no-record]

Copies the working tree (the files git tracks or would track: ``git ls-files --cached --others
--exclude-standard``, as they are on disk now, so uncommitted changes are included) into a temporary folder, so
the developer's own ``_build`` and execution cache stay as they are, and runs ``python -m tools.book build
--profile P`` there three times:

1. cold: no ``_build``, so no execution cache either (every notebook is executed), and an empty course cache
   (``CNNBOOK_CACHE``), so lecture 09 trains its model instead of loading saved weights;
2. again, nothing changed: every notebook's outputs come from the cache;
3. after adding one statement at the top of the last code cell of the ``--edit`` notebook: jupyter-cache should
   execute that notebook alone.

For each build: the wall time, the exit status, and which notebooks were executed (the jupyter-cache records
created during that build, with the execution time of each), plus Sphinx's count of changed documents. Appends
them with the date, the commit (and whether the tree had uncommitted changes), the profile and the machine to
``bench/results/book.json``. ``--quick`` builds only the root page and the edited notebook (a check of this
script; not recorded).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.fresh_clone import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "book.json"
EDIT_LINE = "bench_edit = True  # added by bench/book.py: a code change, so this notebook runs again\n"


def copy_tree(dest: pathlib.Path) -> int:
    """Copy the files git tracks or would track, as they are on disk; returns how many."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout.decode()
    count = 0
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = ROOT / name
        if not (source.is_file() or source.is_symlink()):  # deleted in the working tree, or a submodule
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name, follow_symlinks=False)
        count += 1
    return count


def edit_notebook(path: pathlib.Path) -> int:
    """Put EDIT_LINE at the top of the last code cell that starts with no cell magic; returns the cell's index."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index in range(len(nb["cells"]) - 1, -1, -1):
        cell = nb["cells"][index]
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and not source.lstrip().startswith("%%"):
            cell["source"] = EDIT_LINE + source
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            return index
    raise SystemExit(f"{path.name} has no code cell to edit")


def cache_records(course: pathlib.Path) -> dict:
    """{record id: (notebook name, created, execution seconds)} of the course's execution cache."""
    path = course / "_build" / ".jupyter_cache"
    if not path.exists():
        return {}
    from jupyter_cache import get_cache

    return {
        r.pk: (r.uri.rsplit("/", 1)[-1], r.created.isoformat(), round(r.data.get("execution_seconds", 0), 1))
        for r in get_cache(str(path)).list_cache_records()
    }


def build(course: pathlib.Path, profile: str, env: dict, log: pathlib.Path) -> dict:
    before = cache_records(course)
    command = [sys.executable, "-m", "tools.book", "build", "--profile", profile]
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(command, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(encoding="utf-8", errors="replace"))
    source = re.search(r"^Source Folder: (.*)$", text, re.MULTILINE)
    if source is None or pathlib.Path(source.group(1).strip()).resolve() != course.resolve():
        raise SystemExit(f"the build did not run in the scratch copy {course}; log: {log}")
    after = cache_records(course)
    executed = {name: secs for pk, (name, created, secs) in sorted(after.items()) if before.get(pk) != after[pk]}
    updating = re.findall(r"updating environment: (.*)", text)
    return {
        "seconds": round(seconds, 1),
        "status": status,
        "executed": executed,
        "executed_seconds": round(sum(executed.values()), 1),
        "sphinx_environment": updating[-1].strip() if updating else None,
        "failed_notebooks": len(re.findall(r"Executing notebook failed", text)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu", "auto"], default="smoke")
    parser.add_argument("--edit", default="notebooks/03_pooling.ipynb", help="the notebook whose code changes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy and the build logs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="build only the root page and the edited notebook (a check of this script; not recorded)",
    )
    parser.add_argument("--no-record", action="store_true", help="print the entry, do not append it")
    args = parser.parse_args()
    if not (ROOT / args.edit).is_file():
        raise SystemExit(f"--edit {args.edit}: no such notebook")

    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    entry = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
             "uncommitted_changes": dirty, "machine": machine(), "profile": args.profile,
             "edited": args.edit}  # fmt: skip
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-book-"))
    try:
        course = tmp / "course"
        entry["files_copied"] = copy_tree(course)
        if args.quick:
            entry["quick"] = True
            toc = f"format: jb-book\nroot: book/intro\nchapters:\n  - file: {args.edit.removesuffix('.ipynb')}\n"
            (course / "_toc.yml").write_text(toc, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CNNBOOK_PROFILE")}
        # The copy's helpers, in the build and in its kernels (not those the environment was installed from).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(course), env.get("PYTHONPATH")]))
        env["CNNBOOK_CACHE"] = str(tmp / "cnnbook-cache")
        env["PYTHONUNBUFFERED"] = "1"
        steps = [("cold", None), ("no_change", None), ("after_edit", args.edit)]
        for step, edit in steps:
            if edit:
                entry["edited_cell"] = edit_notebook(course / edit)
            print(f"{step}: building under profile {args.profile} ...", flush=True)
            entry[step] = build(course, args.profile, env, tmp / f"build-{step}.log")
            result = entry[step]
            names = ", ".join(result["executed"]) or "none"
            print(f"{step}: {result['seconds']:.0f} s (status {result['status']}); executed: {names}", flush=True)
        edited_name = pathlib.Path(args.edit).name
        entry["only_the_edited_notebook_ran"] = list(entry["after_edit"]["executed"]) == [edited_name]
    finally:
        if args.keep:
            print(f"kept the scratch copy and build logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.quick or args.no_record:
        print(json.dumps(entry, indent=1))
        print("(not recorded: --quick or --no-record)")
    else:
        history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        history.append(entry)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(history, indent=1) + "\n")
        print(f"appended to {RESULTS.relative_to(ROOT)}")
    failed = any(entry[step]["status"] != 0 for step, _ in steps)
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
