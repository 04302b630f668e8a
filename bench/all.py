"""Every benchmark in sequence, then the README's tables: one command for a quiet machine.

Usage: .venv/bin/python bench/all.py [--skip grading book training] [--submissions 4] [--workers 1 2 4]
       [--book-profile smoke] [--device cpu] [--dry-run]

Runs, each appending its entry to ``bench/results/``:

1. ``bench/grading.py --assignments <every assignment in source/> --submissions 4 --workers 1 2 4``;
2. ``bench/book.py --profile smoke`` (cold build, rebuild, rebuild after one notebook's code changed);
3. ``bench/training.py --device cpu`` (each training notebook's time to its target accuracy);

then ``bench/table.py --update-readme``. A step that fails does not stop the next ones; the exit status is 1 when
any failed. The benchmarks time the machine they run on: run this where nothing else is running (on 2 CPU
cores, expect the better part of an hour, judging by earlier runs of each part). ``--dry-run`` prints the
commands only.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEPS = ("grading", "book", "training")


def assignments() -> list[str]:
    return sorted(p.name for p in (ROOT / "source").glob("a[0-9]_*") if (p / f"{p.name}.ipynb").is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="benchmarks not to run")
    parser.add_argument("--submissions", type=int, default=4, help="grading: submissions per assignment")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="grading: worker counts")
    parser.add_argument("--book-profile", choices=["smoke", "cpu", "gpu", "auto"], default="smoke")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="training: see bench/training.py")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()
    python = sys.executable
    commands = {
        "grading": [python, "bench/grading.py", "--assignments", *assignments(),
                    "--submissions", str(args.submissions), "--workers", *map(str, args.workers)],
        "book": [python, "bench/book.py", "--profile", args.book_profile],
        "training": [python, "bench/training.py", "--device", args.device],
    }  # fmt: skip
    plan = [(step, commands[step]) for step in STEPS if step not in args.skip]
    plan.append(("table", [python, "bench/table.py", "--update-readme"]))
    failed = []
    for step, command in plan:
        shown = " ".join(part.replace(f"{ROOT}/", "") for part in command)
        print(f"== {step}: {shown}", flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        status = subprocess.run(command, cwd=ROOT, check=False).returncode
        print(f"== {step}: exit status {status} after {time.perf_counter() - start:.0f} s", flush=True)
        if status != 0:
            failed.append(step)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
