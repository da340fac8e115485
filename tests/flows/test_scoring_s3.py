"""Scoring from and to object storage: a real S3 server on loopback (testkit/s3.py), the
model store there too, the tiny real model, the flow on Prefect's test harness.

Covers a partitioned prefix scored whole, incremental reruns, a run killed with SIGKILL and run
again (every id exactly once, no temporary objects), a corrupt object, two writers racing for one
output, missing credentials, and credentials kept out of the run's logs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.scoring import ScoringFailedError, run_scoring, score_flow
from storage import locate
from tasks.scoring import score_file
from testkit import REPOSITORY
from testkit.s3 import (
    SECRET_ACCESS_KEY,
    S3Server,
    bytes_read_under,
    keys_under,
    read_predictions,
    s3_filesystem,
    upload,
)
from testkit.scoring import (
    RecordingPredictor,
    fake_model,
    job_for,
    score_in_child_until_fault,
    write_parquet,
    write_reviews,
)
from testkit.scoring import s3_score_params as params_for
from testkit.synthetic import TINY_MODEL_NAME, make_review

DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")
ROWS_PER_DAY = 30


def write_spark_style_lake(folder: Path, days: tuple[str, ...] = DAYS) -> list[str]:
    """A partitioned dataset as Spark leaves it; returns the review ids written."""
    import random

    generator = random.Random(11)
    ids = []
    for day in days:
        partition = folder / f"day={day}"
        partition.mkdir(parents=True)
        day_ids = [f"{day}/{row}" for row in range(ROWS_PER_DAY)]
        texts = [make_review(generator.random() < 0.5, generator) for _ in day_ids]
        name = f"part-00000-{uuid.uuid4()}.c000.snappy.parquet"
        pq.write_table(pa.table({"review_id": day_ids, "text": texts}), partition / name)
        (partition / f".{name}.crc").write_bytes(b"crc")
        ids.extend(day_ids)
    (folder / "_SUCCESS").write_text("")
    return ids


def test_a_partitioned_prefix_is_scored_into_object_storage_and_reruns_are_incremental(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    lake = f"{s3_bucket}/lake"
    ids = write_spark_style_lake(tmp_path / "lake")
    upload(tmp_path / "lake", lake)

    summary = run_scoring(params_for(s3_bucket, lake))
    output_dir = f"{s3_bucket}/predictions/{TINY_MODEL_NAME}/v1"
    assert (summary.files_scored, summary.rows, summary.output_dir) == (3, len(ids), output_dir)
    assert {Path(entry.path).name for entry in summary.skipped_inputs} >= {"_SUCCESS"}
    keys = keys_under(output_dir)
    assert [key for key in keys if key.endswith("_SUCCESS")] == [
        f"day={day}/_SUCCESS" for day in DAYS
    ]
    assert not [key for key in keys if Path(key).name.startswith(".")], keys  # no temporaries
    table = read_predictions(output_dir)
    assert sorted(table.column("review_id").to_pylist()) == sorted(ids)  # each id exactly once
    for review_id, day in zip(
        table.column("review_id").to_pylist(), table.column("day").to_pylist(), strict=True
    ):
        assert review_id.startswith(str(day))  # the partition came back with its rows
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert set(table.column("model_version").to_pylist()) == {1}

    # Nothing new: nothing scored. A new night: only it. A changed file: only it, replaced.
    again = run_scoring(params_for(s3_bucket, lake))
    assert (again.files_scored, again.files_skipped) == (0, 3)
    write_spark_style_lake(tmp_path / "next", days=("2026-11-29",))
    upload(tmp_path / "next", lake)
    with_new_night = run_scoring(params_for(s3_bucket, lake))
    assert (with_new_night.files_scored, with_new_night.files_skipped) == (1, 3)
    first_day = next(key for key in keys_under(lake) if key.endswith(".parquet"))
    changed = pq.read_table(tmp_path / "lake" / first_day).slice(0, 10)
    pq.write_table(changed, tmp_path / "changed.parquet")
    s3_filesystem().put_file(str(tmp_path / "changed.parquet"), f"{lake}/{first_day}"[5:])
    after_change = run_scoring(params_for(s3_bucket, lake))
    assert (after_change.files_scored, after_change.rows_scored) == (1, 10)
    assert read_predictions(output_dir).num_rows == 10 + 3 * ROWS_PER_DAY

    # The run's parameters and logs name places, never credentials.
    assert SECRET_ACCESS_KEY not in run_logs_text(summary)


def run_logs_text(summary: Any) -> str:
    """The run's parameters and every log line of it, as one text."""
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(summary.flow_run_id))
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
            )
            return "\n".join([str(run.parameters)] + [log.message for log in logs])

    text = asyncio.run(read())
    assert summary.output_dir.split("/")[2] in text  # the logs were read: they name the bucket
    return text


def test_a_killed_run_on_object_storage_resumes_and_every_row_appears_exactly_once(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    files, rows_per_file = 6, 2_000
    for number in range(files):
        write_reviews(
            tmp_path / "reviews" / f"part{number}.parquet", rows=rows_per_file, seed=number
        )
    upload(tmp_path / "reviews", f"{s3_bucket}/reviews")
    # One file at a time; the run dies with the third file's output made on this machine but
    # not yet uploaded.
    params = params_for(s3_bucket, f"{s3_bucket}/reviews", max_concurrent_files=1)
    output_dir = f"{s3_bucket}/predictions/{TINY_MODEL_NAME}/v1"
    score_in_child_until_fault(params, "score.before-publish:3")
    done_at_kill = [key for key in keys_under(output_dir) if key.endswith(".parquet")]
    assert sorted(done_at_kill) == ["part0.parquet", "part1.parquet"]
    assert all(not key.startswith(".") for key in keys_under(output_dir))  # nothing half-made

    summary = run_scoring(params)
    assert (summary.files_skipped, summary.files_scored) == (
        len(done_at_kill),
        files - len(done_at_kill),
    )
    assert sorted(keys_under(output_dir)) == sorted(
        [f"part{number}.parquet" for number in range(files)] + ["_SUCCESS"]
    )
    ids = read_predictions(output_dir).column("review_id").to_pylist()
    expected = [f"part{number}/{row}" for number in range(files) for row in range(rows_per_file)]
    assert sorted(ids) == sorted(expected)  # every input row exactly once


def test_a_corrupt_object_fails_alone_and_names_itself(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    write_reviews(tmp_path / "reviews" / "good.parquet", rows=20, seed=1)
    (tmp_path / "reviews" / "bad.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    upload(tmp_path / "reviews", f"{s3_bucket}/reviews")
    state = score_flow(params_for(s3_bucket, f"{s3_bucket}/reviews"), return_state=True)
    assert state.is_failed() and "1 of 2 files failed" in state.message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ScoringFailedError) and error.summary is not None
    assert (error.summary["files_scored"], error.summary["rows"]) == (1, 20)
    [failure] = error.summary["failures"]
    assert failure["relative_path"] == "bad.parquet"
    assert "bad.parquet: not a readable Parquet file" in failure["error"]


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_writers_racing_for_one_output_leave_one_output_with_each_row_once(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    root = request.getfixturevalue("s3_bucket") if where == "s3" else str(tmp_path / "out")
    source = write_parquet(
        tmp_path / "in" / "day.parquet",
        {"review_id": [f"r{i}" for i in range(12)], "text": ["great movie"] * 12},
    )
    output = f"{root}/fake/v3/day.parquet"
    job = job_for(source, tmp_path).model_copy(update={"output_path": output})
    # Both writers find no output, then wait for each other before predicting: both publish.
    both_checked = threading.Barrier(2, timeout=30)

    class Waiting(RecordingPredictor):
        def __call__(self, token_ids: np.ndarray) -> np.ndarray:
            if not self.batch_rows:
                both_checked.wait()
            return super().__call__(token_ids)

    outcomes: list[str] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            outcomes.append(score_file(job, fake_model(Waiting())).outcome)
        except BaseException as error:  # handed to the test below
            errors.append(error)

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert not errors, errors
    assert sorted(outcomes) == ["scored", "skipped"]  # the loser found the winner's output
    table = pq.read_table(locate(output).open_read())
    assert sorted(table.column("review_id").to_pylist()) == sorted(f"r{i}" for i in range(12))
    assert [name for name, _ in locate(output).parent.child_names()] == ["day.parquet"]


def test_missing_credentials_fail_the_run_with_one_clear_line(
    prefect_api: None, s3_bucket: str, s3_store: str
) -> None:
    from prefect.settings import PREFECT_API_URL

    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    environment["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "score",
            "--input-path",
            f"{s3_bucket}/reviews",
            "--model-store-root",
            s3_store,
            "--model-name",
            TINY_MODEL_NAME,
        ],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stderr[-3000:]
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {s3_store}/{TINY_MODEL_NAME}") and "no credentials" in last
    assert "AWS_ACCESS_KEY_ID" in last


def test_a_re_landed_prefix_keeps_no_output_of_its_old_files_in_object_storage(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    """The producer rewrites day=X/ under new names: the old names' outputs go, and a day
    whose prefix is gone keeps its outputs until they are retired (as on a local disk)."""
    lake = f"{s3_bucket}/lake"
    write_spark_style_lake(tmp_path / "lake")
    upload(tmp_path / "lake", lake)
    run_scoring(params_for(s3_bucket, lake))
    output_dir = f"{s3_bucket}/predictions/{TINY_MODEL_NAME}/v1"
    filesystem = s3_filesystem()
    first_day, second_day = (f"{lake}/day={day}"[5:] for day in DAYS[:2])
    [old_name] = [key for key in keys_under(f"s3://{first_day}") if key.endswith(".parquet")]
    filesystem.mv(f"{first_day}/{old_name}", f"{first_day}/part-relanded.parquet")
    filesystem.rm(second_day, recursive=True)

    relanded = run_scoring(params_for(s3_bucket, lake))
    assert [Path(uri).name for uri in relanded.outputs_replaced] == [old_name]
    assert len(relanded.outputs_of_vanished_inputs) == 1
    assert sorted(key for key in keys_under(output_dir) if key.startswith(f"day={DAYS[0]}/")) == [
        f"day={DAYS[0]}/_SUCCESS",
        f"day={DAYS[0]}/part-relanded.parquet",
    ]
    retired = run_scoring(params_for(s3_bucket, lake, retire_vanished_outputs=True))
    assert len(retired.outputs_retired) == 1
    assert not [key for key in keys_under(output_dir) if key.startswith(f"day={DAYS[1]}/")]
    assert read_predictions(output_dir).num_rows == 2 * ROWS_PER_DAY


def test_a_night_plans_from_one_listing_and_reads_no_unchanged_input(
    prefect_api: None, s3_server: S3Server, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    """The second night of a lake: nothing new is nothing read (0 bytes of input served, no
    task); one new partition is that partition's bytes and one task (issue 21, item 1)."""
    lake = f"{s3_bucket}/lake"
    write_spark_style_lake(tmp_path / "lake")
    upload(tmp_path / "lake", lake)
    first = run_scoring(params_for(s3_bucket, lake))
    assert first.files_scored == len(DAYS)
    read_before = bytes_read_under(s3_server, lake)

    quiet = run_scoring(params_for(s3_bucket, lake))
    assert (quiet.files_scored, quiet.files_skipped, quiet.files) == (0, len(DAYS), [])
    assert quiet.rows == len(DAYS) * ROWS_PER_DAY
    assert bytes_read_under(s3_server, lake) == read_before  # not a byte of any input

    write_spark_style_lake(tmp_path / "next", days=("2026-11-29",))
    upload(tmp_path / "next", lake)
    new_night = run_scoring(params_for(s3_bucket, lake))
    assert (new_night.files_scored, new_night.files_skipped) == (1, len(DAYS))
    [new_file] = [path for path in (tmp_path / "next").rglob("*.parquet")]
    assert bytes_read_under(s3_server, lake) - read_before == new_file.stat().st_size


def test_a_missing_output_bucket_fails_the_run_once_naming_the_bucket(
    prefect_api: None, s3_bucket: str, s3_store: str, tmp_path: Path
) -> None:
    for number in range(3):
        write_reviews(tmp_path / "reviews" / f"part{number}.parquet", rows=5, seed=number)
    upload(tmp_path / "reviews", f"{s3_bucket}/reviews")
    params = params_for(s3_bucket, f"{s3_bucket}/reviews").model_copy(
        update={"output_root": "s3://no-such-bucket-for-predictions/nightly"}
    )
    state = score_flow(params, return_state=True)
    assert state.is_failed()
    assert state.message.count("bucket no-such-bucket-for-predictions does not exist") == 1
    assert "output_root" in state.message
    error = state.result(raise_on_failure=False)
    assert not isinstance(error, ScoringFailedError)  # refused before any file was scored
