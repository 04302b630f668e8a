"""What a student reads: every message of a Gradescope ``results.json``, and the advice a submission that could not
be graded gets, shared with the feedback pages (``autograder feedback``).

Nothing here grades or reads files: each function takes the facts and returns the text.
"""

from __future__ import annotations

import pathlib

from .. import submission as submissions

STUDENT_REDOWNLOAD = (
    "download your notebook again (Colab: File > Download > Download .ipynb) and submit that file again"
)
WHEN_SHOWN = {
    "after_published": "when your instructor publishes the grades",
    "after_due_date": "after the due date",
    "hidden": "only to your instructor",
}
GRADING_SIDE = (
    "Your notebook was received, but the autograder could not run because of a problem on the grading side, not "
    "in your notebook, so it has no score yet. Your instructor sees the details and will grade it again; you do "
    "not need to submit again."
)
GRADER_FAILED = (
    "Your notebook was received, but the autograder failed while grading it (a problem on the grading side, not "
    "in your notebook), so it has no score yet. Your instructor sees the details."
)
STANDIN = "\nSTAND-IN DATA: graded on the course's stand-in datasets, for testing the course: not a valid grade."
UNSANDBOXED = (
    "\nWARNING: graded WITHOUT the sandbox. Bubblewrap does not work in this container and the bundle was built "
    "with --trust-submissions: the student's code ran with the grader's rights, so it could read the hidden tests "
    "and change its own results. Your instructor knows this setting."
)


# ------------------------------------------------------------------------------- not graded: why, what to do
def what_to_do(reason: str) -> str:
    """The advice for a submission that could not be graded, from the grader's reason."""
    if submissions.REDOWNLOAD in reason:
        return STUDENT_REDOWNLOAD[0].upper() + STUDENT_REDOWNLOAD[1:] + "."
    if "longer than the limit" in reason:
        return (
            "Your notebook ran for longer than grading allows. Look for a loop that never ends or training that "
            "runs too long, then run it top to bottom (Runtime > Restart session and run all), check that it "
            "finishes in a few minutes, and submit it again."
        )
    if "kernel died" in reason:
        return (
            "Your code stopped Python while it ran (too much memory, or exit()). Run the notebook top to bottom "
            "(Runtime > Restart session and run all), fix the cell that fails, and submit it again."
        )
    return (
        "Run the notebook top to bottom (Runtime > Restart session and run all), check it works, and submit it "
        "again. If this page stays the same, write to your instructor."
    )


def student_reason(reason: str, course_root: pathlib.Path, student: str | None = None) -> str:
    """The grader's reason as the student reads it: the student's advice in place of the instructor's, "your
    notebook" in place of ``student``'s, and no path of the course's machine."""
    reason = reason.replace(submissions.REDOWNLOAD, STUDENT_REDOWNLOAD)
    if student:
        reason = reason.replace(f"{student}'s notebook", "your notebook")
    return reason.replace(f"{course_root}/", "").replace(str(course_root), "the course")


def not_graded(reason: str, advice: str) -> str:
    return f"Your notebook could not be graded, so it gets no points yet: {reason}\n\nWhat to do: {advice}"


# --------------------------------------------------------------------------------- the submission's files
def how_to_upload(expected: str) -> str:
    return f"Upload one file, your notebook {expected} (in Colab: File > Download > Download .ipynb)."


def no_notebook(others: list[str], expected: str) -> str:
    found = f" Your submission holds: {', '.join(others[:10])}." if others else " Your submission is empty."
    return f"No notebook (.ipynb file) was found, so nothing was graded.{found} {how_to_upload(expected)}"


def several_notebooks(names: list[str], expected: str) -> str:
    return (
        f"Your submission holds {len(names)} notebooks ({', '.join(names[:10])}); it must hold exactly one, so "
        f"nothing was graded. {how_to_upload(expected)}"
    )


def too_large(name: str, limit_mb: int, expected: str) -> str:
    return (
        f"{name} is larger than {limit_mb} MB, so it was not graded. Clear its outputs (Edit > Clear all "
        f"outputs), download it again and resubmit. {how_to_upload(expected)}"
    )


def graded_as(name: str, expected: str) -> str:
    return f"Your file {name} was graded as {expected} (next time, upload it under that name)."


# ------------------------------------------------------------------------------------------- a graded one
def outcome(checks: str, score: float, top: float, error: str | None) -> str:
    """One test's output: what it checks, its points and, when it lost some, the exception (no traceback)."""
    lines = [f"What it checks: {checks}"] if checks else []
    if score >= top:
        lines.append(f"Passed: {score:g} / {top:g} points.")
    else:
        lines.append(f"Failed: {score:g} / {top:g} points.")
        lines.append(error or "The test gave no points.")
    return "\n".join(lines)


def graded_summary(assignment: str, tests: list[dict], hidden_visibility: str, notes: list[str]) -> list[str]:
    """The first lines of a graded submission's output: how many tests, ``notes``, then the score, unless a test
    hides some of its points until later."""
    lines = [f"{assignment}: your notebook was graded by the course's autograder ({len(tests)} tests).", *notes]
    later = [t for t in tests if t["visibility"] != "visible"]
    if later:
        when = WHEN_SHOWN.get(hidden_visibility, "later")
        return lines + [
            f"{len(later)} of the {len(tests)} tests also run hidden checks: their results and points are shown "
            f"{when}."
        ]
    total, top = sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)
    return lines + [f"Score: {total:g} / {top:g}."]


def cell_errors(errors: list[str]) -> list[str]:
    if not errors:
        return []
    return ["Cells (not tests) that raised an error; tests after them may fail because of it:"] + [
        f"- {error}" for error in errors
    ]


def repairs(changes: list[str]) -> list[str]:
    if not changes:
        return []
    return ["Changes made to your notebook so it could be graded (your answers were not changed):"] + [
        f"- {change}" for change in changes
    ]


def graded_by_hand(waiting: list[str]) -> list[str]:
    return ["Graded by your instructor, not here: " + ", ".join(waiting) + "."] if waiting else []
