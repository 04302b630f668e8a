"""Real servers for the tests, started as separate processes on loopback and stopped afterwards.

- ``postgres()``: a private PostgreSQL server (Debian's ``postgresql`` package, installed by ``make postgres``)
  in a throw-away data directory, listening on 127.0.0.1 only. ``AUTOGRADER_TEST_POSTGRES_URL`` names an existing
  server instead (each use gets a fresh database in it).
- ``dask_cluster(n)``: a Dask scheduler and ``n`` workers (``dask scheduler`` / ``dask worker`` from this Python
  environment), each its own process, as an instructor would start them on a cluster.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bin() -> pathlib.Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return pathlib.Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return pathlib.Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL is not installed: run `make postgres` (Debian's postgresql package)")


def _as(user: str | None) -> dict:
    """subprocess arguments that run a command as ``user`` (PostgreSQL refuses to run as root)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres():
    """Yield the URL of an empty database on a PostgreSQL server of this test run."""
    given = os.environ.get("AUTOGRADER_TEST_POSTGRES_URL")
    if given:
        yield _fresh_database(given)
        return
    binaries = _postgres_bin()
    user = "postgres" if os.getuid() == 0 else None
    folder = pathlib.Path(tempfile.mkdtemp(prefix="autograder-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        for path in (folder, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = free_port()
    log = folder / "server.log"
    try:
        subprocess.run(
            [binaries / "initdb", "-D", data, "-U", "grader", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            **_as(user),
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=100"
        subprocess.run(
            [binaries / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            **_as(user),
        )
        subprocess.run(
            [binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://grader@127.0.0.1:{port}/gradebook"
    finally:
        subprocess.run(
            [binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, **_as(user)
        )
        shutil.rmtree(folder, ignore_errors=True)


def _fresh_database(url: str) -> str:
    import sqlalchemy

    name = f"gradebook_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return str(sqlalchemy.engine.make_url(url).set(database=name))


@contextlib.contextmanager
def dask_cluster(workers: int, threads: int = 1, env: dict | None = None):
    """Yield (scheduler address, [worker addresses]) of a Dask cluster of separate processes on loopback."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="autograder-dask-"))
    info = folder / "scheduler.json"
    env = dict(env or os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    processes = []

    def start(*command: str, log: str):
        out = open(folder / log, "wb")  # noqa: SIM115 (closed when the cluster stops)
        processes.append((subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env), out))

    try:
        start(
            str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(free_port()),
            "--no-dashboard", "--scheduler-file", str(info), log="scheduler.log",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            assert processes[0][0].poll() is None, (folder / "scheduler.log").read_text()
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for n in range(workers):
            start(
                str(BIN / "dask"), "worker", address, "--nthreads", str(threads), "--nworkers", "1",
                "--host", "127.0.0.1", "--no-dashboard", "--name", f"worker-{n}", log=f"worker-{n}.log",
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
            addresses = sorted(client.scheduler_info()["workers"])
        yield address, addresses
    finally:
        for process, out in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            out.close()
        shutil.rmtree(folder, ignore_errors=True)
