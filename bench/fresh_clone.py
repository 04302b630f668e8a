"""Time the two README commands on a fresh clone: `make book` and `make test`.

Usage: .venv/bin/python bench/fresh_clone.py [--profile smoke]
Clones the current commit into a temporary folder (nothing installed there yet) and runs, in order:
`make test` (what CI runs: creates .venv, builds the book under the smoke profile, runs the suite), then
`make book` with the given profile (a cold build for cpu/gpu; with smoke it finds the execution cache warm).
Appends the timings with the date, commit and machine to bench/results/fresh_clone.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fresh_clone.json"


def timed(command: list[str], cwd: pathlib.Path, env: dict) -> tuple[float, int]:
    start = time.perf_counter()
    status = subprocess.run(command, cwd=cwd, env=env, check=False).returncode
    return time.perf_counter() - start, status


def notebook_seconds(clone: pathlib.Path) -> dict:
    """Each notebook's execution time in the clone's execution cache (the last profile built)."""
    python = clone / ".venv" / "bin" / "python"
    code = (
        "import json; from jupyter_cache import get_cache; "
        "c = get_cache('_build/.jupyter_cache'); "
        "print(json.dumps({r.uri.rsplit('/', 1)[-1]: round(r.data.get('execution_seconds', 0), 1) "
        "for r in c.list_cache_records()}))"
    )
    out = subprocess.run([str(python), "-c", code], cwd=clone, capture_output=True, text=True, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}


def machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "system": platform.platform()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        clone = pathlib.Path(tmp) / "course"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CNNBOOK_PROFILE")}
        env["CNNBOOK_PROFILE"] = args.profile
        test_s, test_status = timed(["make", "test"], clone, env)
        book_s, book_status = timed(["make", "book"], clone, env)
        notebooks = notebook_seconds(clone)
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine(),
        "profile": args.profile,
        "make_test_fresh_clone_seconds": round(test_s, 1),
        "make_test_status": test_status,
        "make_book_after_test_seconds": round(book_s, 1),
        "make_book_status": book_status,
        "notebook_execution_seconds": notebooks,
    }
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(record)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if book_status == test_status == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
