"""A Dask cluster scores from object storage and writes there: real `dask scheduler` and
`dask worker` processes on loopback (started as the README tells a user to), the loopback S3
server (testkit/s3.py) holding the reviews, the model store and the predictions.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.scoring import run_scoring, score_flow
from storage.faults import FAULT_VARIABLE
from tasks.scoring import ResolvedModel
from tasks.scoring.model import preload_version
from testkit.dask_cluster import cluster_environment, running_dask_cluster
from testkit.s3 import read_predictions, upload
from testkit.scoring import s3_score_params as params_for
from testkit.scoring import write_reviews
from testkit.servers import stopped_process, wait_until
from testkit.synthetic import TINY_MODEL_NAME

pytestmark = pytest.mark.dask

WORKERS = 2
STOP_MID_FILE = "score.before-publish:1:stop"  # the worker stops itself, for the test to kill
FILES, ROWS_PER_FILE = 4, 300


@pytest.fixture
def dask_cluster(prefect_api: None, s3_bucket: str, tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers, each its own process."""
    with running_dask_cluster(WORKERS, 1, cluster_environment(), tmp_path) as address:
        yield address


def write_lake(tmp_path: Path, bucket: str) -> list[str]:
    for number in range(FILES):
        write_reviews(
            tmp_path / "lake" / f"day={number}" / "data_0.parquet", rows=ROWS_PER_FILE, seed=number
        )
    upload(tmp_path / "lake", f"{bucket}/lake")
    return [f"data_0/{row}" for _ in range(FILES) for row in range(ROWS_PER_FILE)]


def test_an_external_dask_cluster_scores_from_and_to_object_storage_loading_once_per_worker(
    dask_cluster: str, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    expected = write_lake(tmp_path, s3_bucket)
    params = params_for(
        s3_bucket,
        f"{s3_bucket}/lake",
        task_runner="dask",
        dask_address=dask_cluster,
        max_concurrent_files=WORKERS,
    )
    summary = run_scoring(params)
    assert (summary.files_scored, summary.rows_scored) == (FILES, FILES * ROWS_PER_FILE)
    table = read_predictions(summary.output_dir)
    assert sorted(table.column("review_id").to_pylist()) == sorted(expected)  # exactly once
    assert sorted(set(table.column("day").to_pylist())) == list(range(FILES))

    # Each worker process loaded the version once, for all the files it scored.
    from distributed import Client

    model = ResolvedModel(store_root=s3_store, name=TINY_MODEL_NAME, version=1)
    with Client(dask_cluster) as client:
        loads = client.run(preload_version, model)
    key = f"{s3_store}/{TINY_MODEL_NAME}/v1"
    assert [counts[key] for counts in loads.values()] == [1] * WORKERS, loads

    again = run_scoring(params)  # a rerun on the same long-lived workers: nothing new
    assert (again.files_scored, again.files_skipped) == (0, FILES)


def test_the_local_dask_runner_scores_from_and_to_object_storage(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    expected = write_lake(tmp_path, s3_bucket)
    summary = run_scoring(
        params_for(s3_bucket, f"{s3_bucket}/lake", task_runner="local-dask", max_concurrent_files=2)
    )
    assert summary.files_scored == FILES
    table = read_predictions(summary.output_dir)
    assert sorted(table.column("review_id").to_pylist()) == sorted(expected)


class _Killer(threading.Thread):
    """In the background: wait for the worker that stopped mid-file, then kill -9 it and its
    nanny (which would start it again): a machine of the cluster lost. `killed_at` is when."""

    def __init__(self, marker: bytes) -> None:
        super().__init__(daemon=True)
        self.marker = marker
        self.killed_at: float | None = None

    def run(self) -> None:
        worker, nanny = wait_until(
            lambda: stopped_process(self.marker), 180, "a Dask worker to stop mid-file"
        )
        for pid in (nanny, worker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.killed_at = time.monotonic()


def _kill_the_worker_once_it_stops(marker: bytes) -> _Killer:
    killer = _Killer(marker)
    killer.start()
    return killer


def test_a_file_whose_worker_dies_is_scored_by_the_other_worker(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    expected = write_lake(tmp_path, s3_bucket)
    environment = cluster_environment()
    marker = f"REVIEW_SCORING_DOOMED_WORKER={uuid.uuid4().hex}"
    doomed = {**environment, FAULT_VARIABLE: STOP_MID_FILE, **dict([marker.split("=")])}
    with running_dask_cluster(
        WORKERS, 1, environment, tmp_path, worker_environments=[doomed, environment]
    ) as address:
        killer = _kill_the_worker_once_it_stops(marker.encode())
        summary = run_scoring(
            params_for(
                s3_bucket,
                f"{s3_bucket}/lake",
                task_runner="dask",
                dask_address=address,
                max_concurrent_files=WORKERS,
            )
        )
        ended = time.monotonic()
        killer.join(timeout=10)
        assert killer.killed_at is not None  # it did kill a worker mid-file
    seconds = ended - killer.killed_at
    print(f"one of two workers lost: the run ended Completed {seconds:.1f} s later")
    assert (summary.files_scored, summary.files_failed) == (FILES, 0)
    table = read_predictions(summary.output_dir)
    assert sorted(table.column("review_id").to_pylist()) == sorted(expected)  # exactly once


def test_with_no_worker_left_the_run_fails_in_bounded_time_saying_so(
    prefect_api: None,
    s3_bucket: str,
    s3_store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_lake(tmp_path, s3_bucket)
    environment = cluster_environment()
    marker = f"REVIEW_SCORING_DOOMED_WORKER={uuid.uuid4().hex}"
    doomed = {**environment, FAULT_VARIABLE: STOP_MID_FILE, **dict([marker.split("=")])}
    monkeypatch.setenv("REVIEW_SCORING_DASK_WORKER_WAIT_SECONDS", "10")
    with running_dask_cluster(1, 1, environment, tmp_path, worker_environments=[doomed]) as address:
        killer = _kill_the_worker_once_it_stops(marker.encode())
        started = time.monotonic()
        state = score_flow(
            params_for(s3_bucket, f"{s3_bucket}/lake", task_runner="dask", dask_address=address),
            return_state=True,
        )
        ended = time.monotonic()
        seconds = ended - started
        killer.join(timeout=10)
        assert killer.killed_at is not None
    assert state.is_failed()
    summary = state.result(raise_on_failure=False).summary
    assert summary["files_failed"] == FILES and summary["files_scored"] == 0
    assert "no worker for 10 s (REVIEW_SCORING_DASK_WORKER_WAIT_SECONDS)" in state.message
    assert seconds < 120, seconds  # before: waited for good
    print(
        f"no worker left: the run ended Failed {ended - killer.killed_at:.1f} s after the loss "
        "(REVIEW_SCORING_DASK_WORKER_WAIT_SECONDS=10)"
    )
