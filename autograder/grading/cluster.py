"""Where submissions are graded: a Dask cluster, local (threads of this process) or remote (a scheduler's
workers); and whether they run in the sandbox there."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import uuid

from ..course import Course, CourseError
from ..sandbox.isolation import isolation_problem
from .job import Job, JobOutput, grade_job
from .prepare import GradingSetup, WorkerKit


class Cluster:
    """Where submissions are graded: a Dask cluster. ``address`` names a running scheduler (its workers may be
    on other machines); without one, a local cluster of ``workers`` threads in this process, each running one
    nbgrader process at a time. Either way the same tasks (``grade_job``) run, and results come back here."""

    def __init__(self, workers: int, address: str | None = None, log=print):
        from distributed import Client, LocalCluster

        self.remote = bool(address)
        self._local = None
        if address:
            try:
                if pathlib.Path(address).is_file():  # a scheduler file (`dask scheduler --scheduler-file F`)
                    self.client = Client(scheduler_file=address, timeout="10s")
                else:
                    self.client = Client(address, timeout="10s")
            except (OSError, ValueError) as err:
                raise CourseError(
                    f"no Dask scheduler answers at {address} ({err}). Start one (`dask scheduler`) and its "
                    "workers (`dask worker ADDRESS`), or leave out --scheduler to grade on this machine."
                ) from None
            ready = self.client.scheduler_info().get("workers", {})
            if not ready:
                log(f"waiting for a worker to join the scheduler at {address}")
                try:
                    self.client.wait_for_workers(1, timeout=120)
                except Exception:  # noqa: BLE001 (distributed raises TimeoutError or its own)
                    self.client.close()
                    raise CourseError(
                        f"the Dask scheduler at {address} has no workers; start some (`dask worker {address}`, "
                        "see autograder/CLUSTER.md) and run again"
                    ) from None
        else:
            # In this process (the nbgrader runs are processes of their own); the scheduler's and the worker's
            # status servers on loopback only, on ports nobody else uses.
            self._local = LocalCluster(
                n_workers=1,
                threads_per_worker=max(1, workers),
                processes=False,
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                worker_dashboard_address="127.0.0.1:0",
            )
            self.client = Client(self._local)
        self.kit: WorkerKit | None = None
        self._kit_future = None

    def send(self, setup: GradingSetup) -> None:
        """Give every worker the setup once (not with every submission)."""
        self.kit = setup.kit()
        self._kit_future = self.client.scatter(self.kit, broadcast=True, hash=False)

    def sandbox_problem(self) -> str | None:
        """Why some worker cannot run the sandbox (None when all can)."""
        problems = self.client.run(isolation_problem)
        bad = {worker: problem for worker, problem in sorted(problems.items()) if problem}
        if not bad:
            return None
        worker, problem = next(iter(bad.items()))
        return f"{len(bad)} of {len(problems)} Dask worker(s) cannot run it, e.g. {worker}: {problem}"

    def describe(self) -> str:
        """'N workers, M threads' of the cluster now."""
        workers = self.client.scheduler_info().get("workers", {}).values()
        threads = sum(int(w.get("nthreads", 0)) for w in workers)
        return f"{len(workers)} worker(s), {threads} thread(s): submissions graded at once"

    def _job(self, job: Job):
        if self.remote:
            job.scratch = None  # the worker's own temporary directory; the course is not there
        return dataclasses.replace(job, kit=None)

    def submit(self, job: Job):
        key = f"grade-{job.assignment}-{job.student}-{uuid.uuid4().hex}"
        return self.client.submit(run_with_kit, self._job(job), self._kit_future, key=key, pure=False)

    def run_one(self, job: Job) -> JobOutput:
        return self.submit(job).result()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._local is not None:
            with contextlib.suppress(Exception):
                self._local.close()
            from ..sandbox import warm
            from . import forkserver

            forkserver.close_all()  # the local workers' fork servers (a remote worker keeps its own)
            warm.close_all()  # and their warm sandboxes

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_with_kit(job: Job, kit: WorkerKit) -> JobOutput:
    """The task a Dask worker runs: the job with the kit it received once per batch."""
    return grade_job(dataclasses.replace(job, kit=kit))


def use_sandbox(course: Course, trusted: bool, log=print, cluster: Cluster | None = None) -> bool:
    """Whether submissions run in the sandbox. Without a working sandbox (here, or on any worker of a remote
    cluster: that is where student code runs), refuse unless told they are trusted."""
    problem = cluster.sandbox_problem() if cluster is not None and cluster.remote else isolation_problem()
    if problem is None:
        return True
    if not trusted:
        raise CourseError(
            f"student code cannot be isolated on this machine: {problem}. Grading untrusted code without the "
            "sandbox would let a submission read the hidden tests, change other grades or reach the network, so "
            "nothing was graded. Install bubblewrap (`make sandbox` on Debian), or, only if every submission is "
            "trusted (your own test notebooks), pass --trust-submissions."
        )
    log(
        "WARNING: NO SANDBOX. Student code runs with the grader's own rights, files and network "
        f"({problem}). Only for trusted submissions (--trust-submissions)."
    )
    return False
