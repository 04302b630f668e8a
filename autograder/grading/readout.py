"""What an autograded notebook and nbgrader's log say: errors per graded cell, the first error, the sandbox's stop,
the executor's notes, and why nbgrader failed."""

from __future__ import annotations

from .. import notebooks


def cell_errors(nb) -> dict[str, str]:
    """grade id -> 'Name: message' of the error a graded cell raised."""
    out = {}
    for cell in nb.cells:
        grade_id = notebooks.grade_id(cell)
        for output in cell.get("outputs", []) if grade_id else []:
            if output.get("output_type") == "error":
                out[grade_id] = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
    return out


def sandbox_stopped(nb) -> str:
    """The message of the first 'the sandbox stopped' error (the student's process died: a limit, its own exit)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and output.get("ename") == "SandboxStopped":
                return str(output.get("evalue", ""))
    return ""


def executor_notes(nb) -> list[str]:
    """What the sandboxed executor reported in the notebook's metadata: the student's names it refused to hand to
    the tests, and a grader process that had to keep root."""
    info = nb.metadata.get("autograder", {})
    notes = []
    refused = info.get("refused_names") or {}
    if refused:
        shown = ", ".join(f"{name} ({why})" for name, why in sorted(refused.items())[:12])
        more = f" and {len(refused) - 12} more" if len(refused) > 12 else ""
        notes.append(f"names from the student's code not given to the tests: {shown}{more}")
    if str(info.get("sandbox", "")).startswith("cold: "):  # a warm sandbox was asked for and could not be used
        notes.append(f"the sandbox started {info['sandbox']}")
    if str(info.get("privileges", "")).startswith("kept root"):
        notes.append(f"the grader's test process {info['privileges']}")
    return notes


def first_error(nb) -> str:
    """'cell N: Name: message' of the first cell that raised, graded or not (the cause of what follows)."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".strip()
                return f"cell {index}: {message}"
    return ""


def failure_reason(log_text: str) -> str:
    if "DeadKernelError" in log_text or "Kernel died" in log_text or "kernel died" in log_text:
        return (
            "the Python kernel died while running the notebook (the code used too much memory or ended the "
            "process, e.g. exit() or os._exit())"
        )
    errors = [line.split("]", 1)[-1].strip() for line in log_text.splitlines() if "[AutogradeApp | ERROR]" in line]
    detail = next((e for e in reversed(errors) if not e.startswith("There was an error")), "")
    return f"nbgrader could not grade it: {detail or 'see the log'}"
