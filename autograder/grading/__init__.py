"""Grade a class's submissions through nbgrader, several at once, without ever corrupting the gradebook.

The stages, one module each (``command.grade`` runs them in this order):

``prepare``       the assignment in the course gradebook, and the grading setup every worker grades from
                  (``GradingSetup``; what a worker receives of it is a ``WorkerKit``)
``cluster``       where submissions are graded: a Dask cluster, local or remote; whether the sandbox is used
``canary``        the instructor's solution graded first; the batch is refused unless it gets full marks
``batch``         which submissions to grade (unchanged ones are skipped), their jobs, each saved as it finishes
``job``           one submission (``Job`` -> ``grade_job`` -> ``JobOutput``), graded by ``nbgrader autograde`` in a
                  scratch course of its own with the student's code in the sandbox (``autograder.sandbox``)
``nbgrader_run``  the grading environment, and one nbgrader process under a wall-clock limit
``forkserver``    warm starts: nbgrader forked from a process that imported nbgrader and TensorFlow once
``readout``       what an autograded notebook and nbgrader's log say (errors, notes, why it failed)
``save``          one finished submission into the course: autograded folder, gradebook (one transaction; manual
                  grades untouched), then its record (``autograder.records``)
``command``       ``autograder grade`` as a Python function, and its report

A record whose fingerprint (the submitted bytes, the timestamp, the assignment's source and the grading settings)
still matches means "graded, nothing changed": a re-run skips it, so a killed run resumes where it stopped.
"""

from ..records import FAILED, GRADED, Record, record_path, records
from .batch import grade_batch, plan, scratch_space, slug_ok
from .canary import CANARY, canary
from .cluster import Cluster, use_sandbox
from .command import GradeReport, grade, print_report
from .job import SLOTS, Job, JobOutput, fingerprint, grade_job, grading_slot, job_for
from .nbgrader_run import grading_env, run_nbgrader
from .prepare import GradingSetup, WorkerKit, prepare
from .save import save

__all__ = [
    "CANARY",
    "FAILED",
    "GRADED",
    "SLOTS",
    "Cluster",
    "GradeReport",
    "GradingSetup",
    "Job",
    "JobOutput",
    "Record",
    "WorkerKit",
    "canary",
    "fingerprint",
    "grade",
    "grade_batch",
    "grade_job",
    "print_report",
    "grading_env",
    "grading_slot",
    "job_for",
    "plan",
    "prepare",
    "record_path",
    "records",
    "run_nbgrader",
    "save",
    "scratch_space",
    "slug_ok",
    "use_sandbox",
]
