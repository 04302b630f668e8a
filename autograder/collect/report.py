"""What collecting did: the report saved as ``.autograder/<assignment>/collect.json``, and its printed form."""

from __future__ import annotations

import dataclasses

from rich.markup import escape
from rich.table import Table

from ..intake import MISSING, UNREADABLE
from .write import KEPT_NEWER, NEW, UNCHANGED, UPDATED


@dataclasses.dataclass
class Report:
    """One collect of an export: what was taken for each student (or why a student the export names has no
    notebook: status missing or unreadable), and every file that was not taken (with why)."""

    assignment: str
    export: str
    pattern: str
    regex: str
    due: str | None
    due_from: str  # "--due" or "gradebook" ("" without a due date)
    dry_run: bool
    collected_at: str
    students: dict[str, dict] = dataclasses.field(default_factory=dict)
    several: list[dict] = dataclasses.field(default_factory=list)  # student, taken, why, ignored
    unmatched: list[str] = dataclasses.field(default_factory=list)  # notebooks the pattern gave to no student
    not_notebooks: list[str] = dataclasses.field(default_factory=list)
    refused: list[dict] = dataclasses.field(default_factory=list)  # file, reason
    patterns_tried: dict[str, int] = dataclasses.field(default_factory=dict)
    top_folder_left_out: str = ""  # the export's one top folder, when paths matched without it

    def counts(self) -> dict[str, int]:
        out = {NEW: 0, UPDATED: 0, UNCHANGED: 0, KEPT_NEWER: 0, MISSING: 0, UNREADABLE: 0}
        for row in self.students.values():
            out[row["status"]] += 1
        return out


# ----------------------------------------------------------------------------------------------- printing
def print_report(report: Report, out) -> None:
    """The report on the console ``out``: the students' notebooks, the files not collected, the counts."""
    tried = ", ".join(f"{name} {n}" for name, n in report.patterns_tried.items())
    out.print(
        escape(
            f"{report.export}: file names read as a {report.pattern} export "
            + (f"inside its top folder {report.top_folder_left_out}/ " if report.top_folder_left_out else "")
            + f"(notebooks matched per pattern: {tried})"
        ),
        soft_wrap=True,
    )
    if report.due_from == "--due":
        stored = "not stored: dry run" if report.dry_run else "stored in the gradebook"
        out.print(escape(f"due {report.due} ({stored}); later submissions are late"), soft_wrap=True)
    elif report.due:
        out.print(escape(f"due {report.due} (from the gradebook); later submissions are late"), soft_wrap=True)
    verb = "would be collected (dry run: nothing written)" if report.dry_run else "collected"
    counts = report.counts()
    absent = counts[MISSING] + counts[UNREADABLE]
    collected = len(report.students) - absent
    title = f"{report.assignment}: {collected} student(s) {verb}"
    table = Table(title=title + (f", {absent} without a notebook to grade" if absent else ""))
    for column in ("student", "file in the export", "status", "submitted (UTC)", "late"):
        table.add_column(column, overflow="fold")
    for student, row in report.students.items():
        stamp = row["timestamp"][:19] if row["timestamp"] else "-"
        late = f"yes ({row['late_by']})" if row["late"] else ""
        table.add_row(*map(escape, (student, row["file"], row["status"], stamp, late)))
    out.print(table)
    for student, row in report.students.items():
        for note in row["notes"]:
            out.print(escape(f"  {student}: {note}"), soft_wrap=True)
    skipped = _skipped(report)
    if skipped:
        table = Table(title="Not collected")
        table.add_column("file in the export", overflow="fold")
        table.add_column("why", overflow="fold")
        for path, why in skipped:
            table.add_row(escape(path), escape(why))
        out.print(table)
    late = sum(1 for row in report.students.values() if row["late"])
    parts = [f"{counts[NEW]} new", f"{counts[UPDATED]} updated", f"{counts[UNCHANGED]} unchanged"]
    if counts[KEPT_NEWER]:
        parts.append(f"{counts[KEPT_NEWER]} kept newer")
    verb = "would be collected" if report.dry_run else "collected"
    out.print(
        f"{collected} student(s) {verb}: {', '.join(parts)}; {counts[MISSING]} without a notebook, "
        f"{counts[UNREADABLE]} unreadable; {late} late; {len(skipped)} file(s) skipped",
        soft_wrap=True,
    )
    if report.dry_run:
        out.print(
            escape(f"Next: run it again without --dry-run, then autograder grade {report.assignment}"),
            soft_wrap=True,
        )
    else:
        out.print(escape(f"Next: autograder grade {report.assignment}"), soft_wrap=True)


def _skipped(report: Report) -> list[tuple[str, str]]:
    rows = [(p, "not a notebook") for p in report.not_notebooks]
    rows += [(p, "matched no student (the file-name pattern did not match)") for p in report.unmatched]
    rows += [(r["file"], r["reason"]) for r in report.refused]
    rows += [(p, f"another notebook of {s['student']}") for s in report.several for p in s["ignored"]]
    return sorted(rows)
