"""``autograder collect ASSIGNMENT EXPORT``: file an LMS export's notebooks where nbgrader reads them.

Students download their notebook from Colab and upload it to the course's LMS; the instructor downloads the LMS's
export of one assignment (a zip, or a folder) and runs this command, which files each student's notebook as
``submitted/<student>/<assignment>/<assignment>.ipynb`` (with nbgrader's ``timestamp.txt`` beside it when the
export says when it was submitted). Every student the export names gets a row, those without a notebook too, and
what the export says of each (the LMS's late mark included) is kept for grading's report, the feedback pages and
the grade files (``autograder.intake``). An export whose notebooks mostly do not look like the assignment is
refused unless forced. The report is printed and saved as ``.autograder/<assignment>/collect.json``.

The stages: ``lms`` reads the export and matches its file names with the LMS's patterns, ``choose`` takes one
notebook per student, ``write`` files it (and the due date), ``report`` says what was done; ``command`` runs them
(``collect_export``, the keyword API; ``run``, the command line's).
"""

from .choose import attempt
from .command import collect_export, run
from .lms import choose_pattern, id_problem, match, notebook_name, owners, parse_time, patterns, student_id
from .report import Report, print_report
from .write import parse_due, utc_text

__all__ = [
    "Report",
    "attempt",
    "choose_pattern",
    "collect_export",
    "id_problem",
    "match",
    "notebook_name",
    "owners",
    "parse_due",
    "parse_time",
    "patterns",
    "print_report",
    "run",
    "student_id",
    "utc_text",
]
