"""A real Dask cluster on loopback for the tests and the benchmark: `dask scheduler` and
`dask worker` processes started as the README tells a user to start them, with the project's
preload, reaching the Prefect API and the S3 server through their environment only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from testkit import REPOSITORY

# From this interpreter's environment, whatever `dask` is on PATH.
DASK_SCHEDULER = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
DASK_WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]
_LOOPBACK = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]


def cluster_environment() -> dict[str, str]:
    """This process's environment for a scheduler, its workers and other processes of a run: the
    Prefect API this process uses, and the project importable."""
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PYTHONPATH": str(REPOSITORY),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


@contextlib.contextmanager
def running_dask_cluster(
    workers: int,
    threads: int,
    environment: dict[str, str],
    folder: Path,
    timeout_seconds: float = 180,
    worker_environments: list[dict[str, str]] | None = None,
) -> Iterator[str]:
    """A scheduler and `workers` worker processes of `threads` threads each; the scheduler's
    address once every worker has joined (its preload imported). `worker_environments` gives
    each worker its own environment (a fault for one of them, say)."""
    from distributed import Client

    scheduler_file = folder / f"scheduler-{workers}x{threads}.json"
    processes = [
        subprocess.Popen(
            [*DASK_SCHEDULER, *_LOOPBACK, "--port", "0", "--scheduler-file", str(scheduler_file)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + timeout_seconds
        while not scheduler_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the Dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        worker = [*DASK_WORKER, address, "--nthreads", str(threads), *_LOOPBACK]
        for number in range(workers):
            processes.append(
                subprocess.Popen(
                    [*worker, "--preload", "tasks.scoring.worker"],
                    env=worker_environments[number] if worker_environments else environment,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=timeout_seconds)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
