"""Partitioned review data in, partitioned predictions out: datasets written by the real producers.

DuckDB (`COPY ... PARTITION_BY`), Polars (`write_parquet(partition_by=...)`), pyarrow
(`write_dataset` with hive partitioning) and a Spark-style layout (`part-00000-<uuid>.c000.snappy
.parquet` plus `_SUCCESS` and `.crc` files) are scored by the flow with the tiny real model, and
the outputs are read back with DuckDB and Polars.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from flows.scoring import ScoreParams, run_scoring, score_flow
from tasks.scoring import ScoringSummary
from testkit.scoring import score_params as params_for
from testkit.synthetic import TINY_MODEL_NAME, make_review

DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")
ROWS_PER_DAY = 40


def reviews_table() -> pa.Table:
    import random

    generator = random.Random(7)
    rows = ROWS_PER_DAY * len(DAYS)
    return pa.table(
        {
            "review_id": [f"r{row:04d}" for row in range(rows)],
            "text": [make_review(generator.random() < 0.5, generator) for _ in range(rows)],
            "day": [DAYS[row % len(DAYS)] for row in range(rows)],
        }
    )


def write_with_duckdb(table: pa.Table, folder: Path) -> None:
    connection = duckdb.connect()
    connection.register("reviews", table)
    connection.execute(f"COPY reviews TO '{folder}' (FORMAT PARQUET, PARTITION_BY (day))")


def write_with_polars(table: pa.Table, folder: Path) -> None:
    polars.from_arrow(table).write_parquet(folder, partition_by="day")


def write_with_pyarrow(table: pa.Table, folder: Path) -> None:
    ds.write_dataset(
        table, folder, format="parquet", partitioning=["day"], partitioning_flavor="hive"
    )


def write_like_spark(table: pa.Table, folder: Path) -> None:
    for day in DAYS:
        part = table.filter(pa.compute.equal(table.column("day"), day)).drop_columns(["day"])
        partition = folder / f"day={day}"
        partition.mkdir(parents=True)
        name = f"part-00000-{uuid.uuid4()}.c000.snappy.parquet"
        pq.write_table(part, partition / name, compression="snappy")
        (partition / f".{name}.crc").write_bytes(b"crc")
    (folder / "_SUCCESS").write_text("")


PRODUCERS: dict[str, Callable[[pa.Table, Path], None]] = {
    "duckdb": write_with_duckdb,
    "polars": write_with_polars,
    "pyarrow": write_with_pyarrow,
    "spark-style": write_like_spark,
}


def read_back(output_dir: Path) -> dict[str, dict[str, str]]:
    """review_id -> (day, status) through DuckDB, Polars and pyarrow.dataset, which must agree.

    Polars, like Spark's readers, is given the glob: a folder also holds `_SUCCESS` markers.
    """
    by_duckdb = duckdb.sql(
        f"SELECT review_id, day, status FROM read_parquet('{output_dir}/**/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    by_polars = polars.read_parquet(output_dir / "**" / "*.parquet", hive_partitioning=True).select(
        "review_id", polars.col("day").cast(polars.String), "status"
    )
    from_duckdb = {row[0]: {"day": str(row[1]), "status": row[2]} for row in by_duckdb}
    from_polars = {
        row["review_id"]: {"day": row["day"], "status": row["status"]}
        for row in by_polars.iter_rows(named=True)
    }
    # Polars keeps the partition column inside its files too; pyarrow then reads it from there.
    first_file = next(output_dir.rglob("*.parquet"))
    in_files = "day" in pq.read_schema(first_file).names
    by_pyarrow = ds.dataset(
        output_dir, format="parquet", partitioning=None if in_files else "hive"
    ).to_table(columns=["review_id", "day", "status"])
    from_pyarrow = {
        row["review_id"]: {"day": str(row["day"]), "status": row["status"]}
        for row in by_pyarrow.to_pylist()
    }
    assert from_duckdb == from_polars == from_pyarrow
    return from_duckdb


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_a_whole_dataset_is_scored_into_the_same_partitions(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path, producer: str
) -> None:
    table = reviews_table()
    lake = tmp_path / "lake"
    PRODUCERS[producer](table, lake)
    summary = run_scoring(params_for(tiny_model_store, lake, tmp_path / "out"))

    output_dir = tmp_path / "out" / TINY_MODEL_NAME / "v1"
    assert summary.files_scored == len(summary.files) >= len(DAYS)
    assert summary.rows == table.num_rows and summary.files_failed == 0
    assert sorted(Path(folder).name for folder in summary.completed_folders) == [
        f"day={day}" for day in DAYS
    ]
    if producer == "spark-style":
        skipped = sorted(Path(entry.path).name for entry in summary.skipped_inputs)
        assert "_SUCCESS" in skipped and sum(name.endswith(".crc") for name in skipped) == 3
    rows = read_back(output_dir)
    expected = dict(
        zip(table.column("review_id").to_pylist(), table.column("day").to_pylist(), strict=True)
    )
    assert {review_id: row["day"] for review_id, row in rows.items()} == expected
    assert {row["status"] for row in rows.values()} == {"ok"}
    for day in DAYS:
        marker = json.loads((output_dir / f"day={day}" / "_SUCCESS").read_text())
        assert marker["rows"] == ROWS_PER_DAY and marker["model_version"] == 1

    again = run_scoring(params_for(tiny_model_store, lake, tmp_path / "out"))
    assert (again.files_scored, again.files_skipped) == (0, len(summary.files))


def run_as_scheduled(params: ScoreParams, scheduled_time: datetime) -> ScoringSummary:
    """Run the flow as a worker runs a scheduled run: a flow run in state Scheduled, then run."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(
            score_flow,
            parameters={"params": params.model_dump(mode="json")},
            state=Scheduled(scheduled_time=scheduled_time),
        )
    return ScoringSummary.model_validate(
        run_flow(score_flow, flow_run=flow_run, parameters={"params": params})
    )


def test_one_partition_a_night_for_three_nights_keeps_every_night_exactly_once(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The nightly set-up: `partition="day={scheduled_date}"`, one scheduled run per night."""
    table = reviews_table()
    lake = tmp_path / "lake"
    write_with_duckdb(table, lake)
    nightly = params_for(
        tiny_model_store,
        lake,
        tmp_path / "out",
        partition="day={scheduled_date}",
        timezone="Europe/Paris",
    )
    counts = []
    for day in DAYS:
        # 23:30 UTC the evening before is already `day` in Paris.
        evening_before = datetime.fromisoformat(f"{day}T23:30:00+00:00") - timedelta(days=1)
        summary = run_as_scheduled(nightly, evening_before)
        counts.append((day, summary.files_scored, summary.rows_scored))
        assert [result.relative_path.split("/")[0] for result in summary.files] == [f"day={day}"]
    rows = read_back(tmp_path / "out" / TINY_MODEL_NAME / "v1")
    assert len(rows) == table.num_rows  # every night's rows, each exactly once
    expected = dict(
        zip(table.column("review_id").to_pylist(), table.column("day").to_pylist(), strict=True)
    )
    assert {review_id: row["day"] for review_id, row in rows.items()} == expected
    with capsys.disabled():
        print(f"\nthree nights (day, files scored, rows scored): {counts}; read back {len(rows)}")

    # A night whose partition never landed fails loudly, naming what is there.
    with pytest.raises(FileNotFoundError, match=r"day=2026-11-29 not found.*day=2026-11-28"):
        run_as_scheduled(nightly, datetime(2026, 11, 29, 2, tzinfo=timezone.utc))


def test_scoring_one_partition_folder_directly_also_keeps_the_nights_apart(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """input_path=<lake>/day=<date> each night (the set-up that used to overwrite)."""
    table = reviews_table()
    lake = tmp_path / "lake"
    write_with_polars(table, lake)
    for day in DAYS:
        run_scoring(params_for(tiny_model_store, lake / f"day={day}", tmp_path / "out"))
    rows = read_back(tmp_path / "out" / TINY_MODEL_NAME / "v1")
    assert len(rows) == table.num_rows


def test_date_folders_without_a_key_keep_their_folder_night_after_night(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """`<lake>/2026-11-27/reviews.parquet` with `partition="{scheduled_date}"`: each night's
    outputs land in their own date folder, with a `_SUCCESS` that later nights leave alone (they
    used to lose the folder, then collide with the first night's file name)."""
    table = reviews_table()
    lake = tmp_path / "lake"
    for day in DAYS:
        (lake / day).mkdir(parents=True)
        day_rows = table.filter(pa.compute.equal(table.column("day"), day)).drop_columns(["day"])
        pq.write_table(day_rows, lake / day / "reviews.parquet")
    nightly = params_for(tiny_model_store, lake, tmp_path / "out", partition="{scheduled_date}")
    output_dir = tmp_path / "out" / TINY_MODEL_NAME / "v1"
    for day in DAYS:
        summary = run_as_scheduled(nightly, datetime.fromisoformat(f"{day}T02:00:00+00:00"))
        assert [result.relative_path for result in summary.files] == [f"{day}/reviews.parquet"]
    for day in DAYS:
        assert pq.read_table(output_dir / day / "reviews.parquet").num_rows == ROWS_PER_DAY
        assert (output_dir / day / "_SUCCESS").is_file(), day
    assert not (output_dir / "reviews.parquet").exists()


def _write_day(lake: Path, day: str, names: list[str]) -> None:
    """The producer (re)lands `day`: the folder holds exactly `names`, the day's rows split
    among them."""
    table = reviews_table()
    rows = table.filter(pa.compute.equal(table.column("day"), day)).drop_columns(["day"])
    folder = lake / f"day={day}"
    if folder.exists():
        for old in folder.iterdir():
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    share = rows.num_rows // len(names)
    for index, name in enumerate(names):
        last = index == len(names) - 1
        pq.write_table(rows.slice(index * share, None if last else share), folder / name)


def test_a_partition_folder_is_a_unit_over_re_landing_retention_and_single_files(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """A folder's outputs and `_SUCCESS` describe exactly its current inputs: a re-landed day
    (new file names) is rescored with no output of its old files left; a day whose folder is
    gone keeps its outputs, reported, until retire_vanished_outputs removes them; a run of one
    file of a folder never writes `_SUCCESS`, and takes an old one away when it changes an
    output (hostile-test findings 1 to 4)."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    output_dir = out / TINY_MODEL_NAME / "v1"
    for day in DAYS:
        _write_day(lake, day, ["part-0.parquet", "part-1.parquet"])
    assert run_scoring(params_for(tiny_model_store, lake, out)).files_scored == 6

    # Re-landed under new names: rescored, the old names' outputs gone, one row per input row.
    _write_day(lake, DAYS[0], ["part-a.parquet", "part-b.parquet", "part-c.parquet"])
    relanded = run_scoring(params_for(tiny_model_store, lake, out))
    first_day = output_dir / f"day={DAYS[0]}"
    assert sorted(Path(path).name for path in relanded.outputs_replaced) == [
        "part-0.parquet",
        "part-1.parquet",
    ]
    assert sorted(path.name for path in first_day.glob("*.parquet")) == [
        "part-a.parquet",
        "part-b.parquet",
        "part-c.parquet",
    ]
    assert pq.read_table(first_day).num_rows == ROWS_PER_DAY
    assert json.loads((first_day / "_SUCCESS").read_text())["rows"] == ROWS_PER_DAY

    # A day's folder removed upstream (retention): its outputs stay, and the run says so.
    for input_file in (lake / f"day={DAYS[1]}").iterdir():
        input_file.unlink()
    (lake / f"day={DAYS[1]}").rmdir()
    kept = run_scoring(params_for(tiny_model_store, lake, out))
    second_day = output_dir / f"day={DAYS[1]}"
    assert len(kept.outputs_of_vanished_inputs) == 2 and not kept.outputs_retired
    assert len(list(second_day.glob("*.parquet"))) == 2 and (second_day / "_SUCCESS").exists()
    retired = run_scoring(params_for(tiny_model_store, lake, out, retire_vanished_outputs=True))
    assert len(retired.outputs_retired) == 2
    assert list(second_day.glob("*.parquet")) == [] and not (second_day / "_SUCCESS").exists()

    # One file of a folder: a changed output takes the folder's `_SUCCESS` away, and the run
    # of that one file does not write it back; the folder's next whole run does.
    third_day = lake / f"day={DAYS[2]}"
    pq.write_table(
        pq.read_table(third_day / "part-1.parquet").slice(0, 5), third_day / "part-1.parquet"
    )
    single = run_scoring(params_for(tiny_model_store, third_day / "part-1.parquet", out))
    assert single.files_scored == 1 and single.completed_folders == []
    assert not (output_dir / f"day={DAYS[2]}" / "_SUCCESS").exists()
    whole = run_scoring(params_for(tiny_model_store, lake, out))
    assert (whole.files_scored, whole.files_skipped) == (0, 5)
    assert (output_dir / f"day={DAYS[2]}" / "_SUCCESS").exists()
