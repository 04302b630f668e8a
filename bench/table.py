"""The Markdown tables of ``bench/README.md``, made from the latest entries of ``bench/results/*.json``.

Usage: .venv/bin/python bench/table.py [--update-readme]

Prints one table per benchmark: grading (for each assignment, its latest entry: seconds per submission and
submissions per hour for stock nbgrader and for ``autograder grade`` at each number of workers, with the ratio to
stock), book builds (the latest entry per profile), the fresh clone (the latest per profile) and training time to
target (the latest entry per device). A benchmark without results says "not yet measured". ``--update-readme``
writes the tables into ``bench/README.md`` between the lines ``<!-- begin: bench/table.py -->`` and
``<!-- end: bench/table.py -->``, so that the README's numbers are regenerated, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- begin: bench/table.py -->", "<!-- end: bench/table.py -->"
NOT_YET = "Not yet measured"


def load(name: str) -> list[dict]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else []


def measured(entry: dict) -> str:
    """When, at which commit, on what: ``2026-12-03, f1187fc, 2 CPUs``."""
    machine = entry.get("machine", {})
    commit = entry.get("commit", "")[:7] + ("+" if entry.get("uncommitted_changes") else "")
    return f"{entry.get('date', '?')[:10]}, {commit}, {machine.get('cpus', '?')} CPUs"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value) -> str:
    return "–" if value is None else f"{value:,.0f} s" if value >= 100 else f"{value:.1f} s"


# ----------------------------------------------------------------------------------------------------- grading


def grading_cell(run: dict | None, submissions: int, stock: float | None) -> str:
    if not run:
        return "–"
    total = run["seconds"]
    per_submission = run.get("per_submission", total / submissions)
    per_hour = run.get("per_hour", round(3600 * submissions / total))
    text = f"{per_submission:.1f} s, {per_hour:,}/h"
    ratio = run.get("time_over_stock", round(total / stock, 2) if stock else None)
    return text + (f", {ratio:.2f}× stock" if ratio is not None else "")


def grading() -> str:
    history = load("grading")
    if not history:
        return f"### Grading\n\n{NOT_YET} (`bench/grading.py`)."
    latest = {}  # assignment -> (entry, row) of the newest entry that graded it
    for entry in history:
        for assignment, row in entry.get("assignments", {}).items():
            latest[assignment] = (entry, row)
    workers = sorted(
        {
            int(key.rsplit("_", 1)[1])
            for _, row in latest.values()
            for key in row
            if key.startswith("autograder_workers_") and key[-1].isdigit()
        }
    )
    header = ["assignment", "submissions", "stock `nbgrader autograde`"]
    header += [f"`grade --workers {n}`" for n in workers] + ["speedup over 1 worker", "measured"]
    rows, sandbox, warm, zygote, stages = [], [], [], [], []
    for assignment in sorted(latest):
        entry, row = latest[assignment]
        n = row["submissions"]
        stock = row.get("stock_nbgrader_autograde")
        cells = [assignment, n, grading_cell(stock, n, None)]
        cells += [grading_cell(row.get(f"autograder_workers_{w}"), n, stock and stock["seconds"]) for w in workers]
        one = row.get("autograder_workers_1", {}).get("seconds")
        speedups = []
        for w in workers:
            run = row.get(f"autograder_workers_{w}")
            if w != 1 and run and one:
                speedups.append(f"{w}: {run.get('speedup_over_1_worker', round(one / run['seconds'], 2)):.2f}×")
        cells += [", ".join(speedups) or "–", measured(entry)]
        rows.append(cells)
        for w in workers:
            plain = row.get(f"autograder_workers_{w}")
            for variant, key, ratio, unit, out in (
                ("_trusted", "sandbox_slowdown_workers_", lambda a, b: a / b, "", sandbox),
                ("_cold", "warm_start_speedup_workers_", lambda a, b: b / a, "×", warm),
                ("_cold_sandbox", "warm_sandbox_speedup_workers_", lambda a, b: b / a, "×", zygote),
            ):
                other = row.get(f"autograder_workers_{w}{variant}")
                if plain and other:
                    value = row.get(f"{key}{w}", round(ratio(plain["seconds"], other["seconds"]), 2))
                    cells = [grading_cell(plain, n, None), grading_cell(other, n, None)]
                    out.append([assignment, w, *cells, f"{value:.2f}{unit}", measured(entry)])
            for variant, name in (("", "default"), ("_cold_sandbox", "cold sandbox"), ("_cold", "cold starts")):
                spent = (row.get(f"autograder_workers_{w}{variant}") or {}).get("stages_per_submission")
                if spent:
                    stages.append([assignment, w, name] + [f"{spent.get(k, 0.0):.2f}" for k in STAGE_COLUMNS])
    text = (
        "### Grading (`bench/results/grading.json`)\n\nSeconds per submission, submissions per hour, and time "
        "relative to stock nbgrader (below 1: faster),\nfor each assignment's latest entry:\n\n"
        + table(header, rows)
    )
    if sandbox:
        header = [
            "assignment",
            "workers",
            "sandboxed",
            "`--trust-submissions` (no sandbox)",
            "sandboxed / trusted",
            "measured",
        ]
        text += "\n\nThe sandbox's cost, same submissions graded both ways:\n\n" + table(header, sandbox)
    if warm:
        header = ["assignment", "workers", "warm starts (default)", "cold starts", "speedup", "measured"]
        text += (
            "\n\nWarm starts (`grading/forkserver.py`: each submission's nbgrader forked from a process "
            "with nbgrader and TensorFlow imported) against cold starts (`c.Autograder.warm_start = False`), same "
            "submissions, same run:\n\n" + table(header, warm)
        )
    if zygote:
        header = ["assignment", "workers", "warm sandboxes (default)", "cold sandboxes", "speedup", "measured"]
        text += (
            "\n\nWarm sandboxes (`sandbox/zygote.py`: each submission's sandboxed process forked from the slot's "
            "warm sandbox, with the student's libraries imported) against cold sandboxes (`c.Autograder."
            "warm_sandbox = False`), same submissions, same run:\n\n" + table(header, zygote)
        )
    if stages:
        header = ["assignment", "workers", "run", *(f"`{k}`" for k in STAGE_COLUMNS)]
        text += (
            "\n\nWhere a submission's time goes, mean seconds per submission from the records (each worker's "
            "own time; with two workers two submissions are in flight at once, so these add up to about twice the "
            "wall time per submission). `nbgrader` is nbgrader's whole process; `sandbox_start`, `student_cells` "
            "and `tests` are inside it and `nbgrader_rest` is the rest of it (its start, its other steps, its "
            "gradebook):\n\n" + table(header, stages)
        )
    return text


STAGE_COLUMNS = (
    "warm_sandbox", "prepare", "sandbox_start", "student_cells", "tests", "nbgrader_rest", "nbgrader", "readout",
    "course_write", "total_in_worker",
)  # fmt: skip


# -------------------------------------------------------------------------------------------------------- book


def book() -> str:
    history = [entry for entry in load("book") if not entry.get("quick")]
    if not history:
        return f"### Book builds\n\n{NOT_YET} (`bench/book.py`)."
    latest = {entry["profile"]: entry for entry in history}
    header = [
        "profile",
        "cold build",
        "rebuild, nothing changed",
        "rebuild after one notebook's code changed",
        "notebooks executed (cold / unchanged / edited)",
        "measured",
    ]
    rows = []
    for profile, entry in sorted(latest.items()):
        steps = [entry.get(step, {}) for step in ("cold", "no_change", "after_edit")]
        failed = ["failed" if step.get("status") else "" for step in steps]
        times = [
            f"{seconds(step.get('seconds'))}{' (' + bad + ')' if bad else ''}" for step, bad in zip(steps, failed)
        ]
        edited = pathlib.Path(entry.get("edited", "?")).stem
        executed = " / ".join(str(len(step.get("executed", {}))) for step in steps)
        after = ", ".join(pathlib.Path(name).stem for name in steps[2].get("executed", {})) or "none"
        rows.append(
            [
                f"`{profile}`",
                times[0],
                times[1],
                f"{times[2]} (edited `{edited}`)",
                f"{executed} ({after})",
                measured(entry),
            ]
        )
    return "### Book builds (`bench/results/book.json`)\n\n" + table(header, rows)


def fresh_clone() -> str:
    history = load("fresh_clone")
    if not history:
        return f"### Fresh clone\n\n{NOT_YET} (`bench/fresh_clone.py`)."
    latest = {entry["profile"]: entry for entry in history}
    header = ["profile", "`make test` on a fresh clone", "`make book` right after", "measured"]
    rows, notes = [], []
    for profile, entry in sorted(latest.items()):
        rows.append(
            [
                f"`{profile}`",
                seconds(entry.get("make_test_fresh_clone_seconds")),
                seconds(entry.get("make_book_after_test_seconds")),
                measured(entry),
            ]
        )
        per_notebook = entry.get("notebook_execution_seconds", {})
        if per_notebook and "error" not in per_notebook:
            listed = ", ".join(f"{name[:2]} {secs:.0f} s" for name, secs in sorted(per_notebook.items()))
            notes.append(f"Notebook execution under `{profile}` in that build: {listed}.")
    return (
        "### Fresh clone (`bench/results/fresh_clone.json`)\n\n" + table(header, rows) + "\n\n" + "\n".join(notes)
    )


# ---------------------------------------------------------------------------------------------------- training


def target_text(run: dict, relative: float) -> str:
    if run.get("target") is None:
        return run.get("target_source", "–")
    if run.get("target_kind") == "stated":
        return f"{run['target']:.3f} ({run['target_source']})"
    return f"{run['target']:.3f} ({relative} × best)"


def training() -> str:
    history = load("training")
    if not history:
        return f"### Training time to target\n\n{NOT_YET} (`bench/training.py`)."
    latest = {}
    for entry in history:
        latest[(entry["device"], entry["profile"])] = entry
    parts = ["### Training time to target (`bench/results/training.json`)"]
    header = [
        "notebook",
        "run",
        "data",
        "target",
        "reached",
        "final test accuracy",
        "epochs, training time",
        "notebook: all fits / whole run",
    ]
    for (device, profile), entry in sorted(latest.items()):
        rows = []
        for name, notebook in entry["notebooks"].items():
            totals = f"{seconds(notebook['training_seconds'])} / {seconds(notebook['wall_seconds'])}"
            if notebook["status"] != "ok":
                rows.append([name, "(failed)", "", "", "", "", "", totals])
            for run in notebook["runs"]:
                if run["label"] not in notebook["main_runs"]:
                    continue
                reached = "not reached"
                if run.get("epochs_to_target"):
                    reached = f"epoch {run['epochs_to_target']}, {seconds(run['seconds_to_target'])}"
                final = run.get("final_test_accuracy")
                rows.append(
                    [
                        name,
                        run["label"],
                        run.get("data") or "?",
                        target_text(run, entry.get("relative_target")),
                        reached,
                        "–" if final is None else f"{final:.3f}",
                        f"{len(run['epochs'])}, {seconds(run['training_seconds'])}",
                        totals,
                    ]
                )
                name, totals = "", ""  # once per notebook
        seen = entry.get("device_seen_by_kernel", device)
        parts.append(
            f"`--device {device}` (profile `{profile}`, {seen}), data `{entry.get('data')}`, "
            f"{measured(entry)}:\n\n" + table(header, rows)
        )
    return "\n\n".join(parts)


def render() -> str:
    return "\n\n".join([grading(), book(), fresh_clone(), training()]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update-readme", action="store_true", help=f"write the tables into {README.name}")
    args = parser.parse_args()
    text = render()
    if not args.update_readme:
        print(text, end="")
        return 0
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme or END not in readme:
        print(f"{README.relative_to(ROOT)} lacks the lines {BEGIN} and {END}", file=sys.stderr)
        return 1
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")
    print(f"updated {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
