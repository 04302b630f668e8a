"""Seconds per submission and submissions per hour: stock ``nbgrader autograde`` against ``autograder grade`` with
1, 2 and 4 workers (a local Dask cluster), with the sandbox (the default) and, with ``--trusted``, without it.

Usage: .venv/bin/python bench/grading.py [--assignments a2_conv_arithmetic a4_keras_cnn] [--submissions 8]
       [--workers 1 2 4] [--trusted] [--cold] [--cold-sandbox]

For each assignment, builds one set of submissions (the reference solution, the blank student version and wrong
answers from ``tests/wrong_answers/``), copies it into fresh course directories and grades it there: stock
nbgrader (``generate_assignment`` then one ``autograde`` of the whole class), then ``autograder grade --standin
--no-canary --workers N`` for each N (``--no-canary``, so all runs grade exactly the same notebooks). With
``--trusted``, each worker count is also graded without the sandbox; ``sandbox_slowdown_workers_N`` is the
sandboxed run's time over the trusted one's: what isolation costs. With ``--cold``, each worker count is also
graded with warm starts off (``c.Autograder.warm_start = False``: nbgrader started afresh for each submission);
``warm_start_speedup_workers_N`` is the cold run's time over the warm one's. With ``--cold-sandbox``, also with
warm sandboxes off (``c.Autograder.warm_sandbox = False``: each submission's sandbox starts cold and imports its
libraries again); ``warm_sandbox_speedup_workers_N`` is that run's time over the default's. Checks that all the
gradebooks agree, and appends the timings with the date, the commit and the machine to
``bench/results/grading.json``. Grading uses the stand-in datasets (``--standin``; stock nbgrader gets
``CNNBOOK_STANDIN=1``), as this machine cannot download the real ones.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.fresh_clone import machine  # noqa: E402
from tests.support import harness  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "grading.json"
BIN = pathlib.Path(sys.executable).parent


def submissions(assignment: str, count: int) -> dict:
    """``count`` submissions: the reference, the blank student version and the wrong answers, taken again in
    that order (as ``NAME_2``, ``NAME_3``, ...) when the class is larger than the corpus."""
    release = harness.read(harness.release_path(assignment))
    reference = harness.reference_solutions(harness.read(harness.source_path(assignment)))
    corpus = [("reference", harness.fill(release, reference)), ("blank", release)]
    for answer in harness.wrong_answers(assignment, full=True):
        corpus.append((answer.student, harness.fill(release, {**reference, **answer.replace})))
    out = {}
    for index in range(count):
        name, nb = corpus[index % len(corpus)]
        out[name if index < len(corpus) else f"{name}_{index // len(corpus) + 1}"] = nb
    return out


STAGES = (
    "warm_sandbox", "prepare", "sandbox_start", "student_cells", "tests", "nbgrader", "readout", "course_write",
)  # fmt: skip


def stages(folder: pathlib.Path, assignment: str) -> dict:
    """Mean seconds per submission of each stage, from the records ``autograder grade`` wrote: the warm sandbox's
    start (first use of a slot), the scratch course, then inside nbgrader's process the sandbox's start, the
    student's cells in it and the tests in the grader; nbgrader's process in all (its start, its other
    preprocessors and its own gradebook included: ``nbgrader_rest`` is what is left of it), reading the result,
    and writing it into the course."""
    records = [json.loads(p.read_text()) for p in (folder / ".autograder" / assignment / "records").glob("*.json")]
    if not records:
        return {}
    mean = {key: sum(r.get("stages", {}).get(key, 0.0) for r in records) / len(records) for key in STAGES}
    mean["nbgrader_rest"] = mean["nbgrader"] - mean["sandbox_start"] - mean["student_cells"] - mean["tests"]
    mean["total_in_worker"] = sum(r.get("seconds", 0.0) for r in records) / len(records)
    return {key: round(value, 2) for key, value in mean.items()}


def course(folder: pathlib.Path, assignment: str, subs: dict) -> pathlib.Path:
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "source" / assignment, folder / "source" / assignment)
    for student, nb in subs.items():
        (folder / "submitted" / student / assignment).mkdir(parents=True)
        harness.nbformat.write(nb, folder / "submitted" / student / assignment / f"{assignment}.ipynb")
    return folder


def scores(folder: pathlib.Path, assignment: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(assignment)}


def run(command: list[str], cwd: pathlib.Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assignments", nargs="+", default=["a2_conv_arithmetic", "a4_keras_cnn"])
    parser.add_argument("--submissions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="also grade without the sandbox (--trust-submissions) at each worker count: what isolation costs",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="also grade with warm starts off (c.Autograder.warm_start = False) at each worker count: what the "
        "template process saves",
    )
    parser.add_argument(
        "--cold-sandbox",
        action="store_true",
        help="also grade with warm sandboxes off (c.Autograder.warm_sandbox = False) at each worker count: what "
        "forking each sandbox from the slot's warm sandbox saves",
    )
    args = parser.parse_args()
    env = harness.grading_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    os.environ["PATH"] = env["PATH"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    entry = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": commit,
             "machine": machine(), "assignments": {}}  # fmt: skip
    for assignment in args.assignments:
        subs = submissions(assignment, args.submissions)
        n = len(subs)
        row = {"submissions": n}
        with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
            tmp = pathlib.Path(tmp)
            stock = course(tmp / "stock", assignment, subs)
            run([str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"], stock, env)
            seconds = run([str(BIN / "nbgrader"), "autograde", assignment, "--force"], stock, env)
            row["stock_nbgrader_autograde"] = {
                "seconds": round(seconds, 1),
                "per_submission": round(seconds / n, 2),
                "per_hour": round(3600 * n / seconds),
            }
            print(f"{assignment}: stock nbgrader autograde {seconds:.0f} s for {n}", flush=True)
            expected = scores(stock, assignment)
            variants = [("", True, "")]  # label suffix, sandboxed, lines added to the course's configuration
            variants += [("_trusted", False, "")] if args.trusted else []
            variants += [("_cold", True, "c.Autograder.warm_start = False")] if args.cold else []
            cold_sandbox = "c.Autograder.warm_sandbox = False"
            variants += [("_cold_sandbox", True, cold_sandbox)] if args.cold_sandbox else []
            for workers in args.workers:
                for suffix, sandboxed, settings in variants:
                    label = f"autograder_workers_{workers}{suffix}"
                    folder = course(tmp / label, assignment, subs)
                    if settings:
                        with open(folder / "nbgrader_config.py", "a", encoding="utf-8") as config:
                            config.write(f"\n{settings}\n")
                    command = [sys.executable, "-m", "autograder", "grade", assignment, "--standin", "--no-canary",
                               "--workers", str(workers)]  # fmt: skip
                    if not sandboxed:
                        command.append("--trust-submissions")
                    seconds = run(command, folder, env)
                    got = scores(folder, assignment)
                    if got != expected:
                        raise SystemExit(f"{label}: scores differ from stock nbgrader's: {got} != {expected}")
                    row[label] = {
                        "seconds": round(seconds, 1),
                        "per_submission": round(seconds / n, 2),
                        "per_hour": round(3600 * n / seconds),
                        "time_over_stock": round(seconds / row["stock_nbgrader_autograde"]["seconds"], 2),
                        "stages_per_submission": stages(folder, assignment),
                    }
                    print(f"{assignment}: {label} {seconds:.0f} s for {n}", flush=True)
                if args.trusted:
                    trusted = row[f"autograder_workers_{workers}_trusted"]["seconds"]
                    row[f"sandbox_slowdown_workers_{workers}"] = round(
                        row[f"autograder_workers_{workers}"]["seconds"] / trusted, 2
                    )
                if args.cold:
                    cold = row[f"autograder_workers_{workers}_cold"]["seconds"]
                    row[f"warm_start_speedup_workers_{workers}"] = round(
                        cold / row[f"autograder_workers_{workers}"]["seconds"], 2
                    )
                if args.cold_sandbox:
                    cold = row[f"autograder_workers_{workers}_cold_sandbox"]["seconds"]
                    row[f"warm_sandbox_speedup_workers_{workers}"] = round(
                        cold / row[f"autograder_workers_{workers}"]["seconds"], 2
                    )
            one = row.get("autograder_workers_1", {}).get("seconds")
            for workers in args.workers:
                if one and workers != 1:
                    row[f"autograder_workers_{workers}"]["speedup_over_1_worker"] = round(
                        one / row[f"autograder_workers_{workers}"]["seconds"], 2
                    )
        row["same_scores_in_all_runs"] = True
        entry["assignments"][assignment] = row
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(entry)
    RESULTS.write_text(json.dumps(history, indent=1) + "\n")
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
