"""The predictions table: every current output under an output root in one Delta Lake table,
committed once per run (issue 21, item 8). Real runs against the test Prefect API, the tiny
trained model, Parquet inputs on disk, and the table read back by delta-rs, Polars and pyarrow."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flows.scoring import run_scoring, score_flow
from tasks.scoring.table import TABLE_FOLDER
from testkit.scoring import score_params as params_for
from testkit.scoring import write_parquet, write_reviews
from testkit.synthetic import TINY_MODEL_NAME

DAY_1, DAY_2 = "day=2026-11-01", "day=2026-11-02"


def _ids_by_file(table: pa.Table) -> dict[str, list[str]]:
    """Review ids in the table, by the input they came from (each list sorted)."""
    by_file: dict[str, list[str]] = {}
    for input_file, review_id in zip(
        table.column("input_file").to_pylist(), table.column("review_id").to_pylist(), strict=True
    ):
        by_file.setdefault(input_file, []).append(review_id)
    return {input_file: sorted(ids) for input_file, ids in by_file.items()}


def test_each_run_commits_once_and_readers_see_one_table_with_its_history(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """Night after night one commit each (none on a night with nothing new), the model's version
    and identity and the scoring run in every row, the commits naming their runs, yesterday's
    table readable by version and by time, and pandas, Polars and pyarrow reading one table."""
    inputs, out = tmp_path / "reviews", tmp_path / "out"
    params = params_for(tiny_model_store, inputs, out)
    write_reviews(inputs / DAY_1 / "part-0.parquet", rows=30, seed=1)
    first = run_scoring(params)
    assert first.table is not None and first.table.committed
    # Version 0 is the empty table the first run made; each night then commits once.
    assert (first.table.version, first.table.files_added, first.table.rows_added) == (1, 1, 30)
    write_reviews(inputs / DAY_2 / "part-0.parquet", rows=20, seed=2)
    write_reviews(inputs / DAY_2 / "part-1.parquet", rows=10, seed=3)
    second = run_scoring(params)
    assert second.table is not None
    assert (second.table.version, second.table.files_added, second.table.rows_added) == (2, 2, 30)

    path = str(out / TABLE_FOLDER)
    table = DeltaTable(path)
    rows = table.to_pyarrow_table()
    assert rows.num_rows == 60
    assert _ids_by_file(rows) == {
        f"{DAY_1}/part-0.parquet": sorted(f"part-0/{row}" for row in range(30)),
        f"{DAY_2}/part-0.parquet": sorted(f"part-0/{row}" for row in range(20)),
        f"{DAY_2}/part-1.parquet": sorted(f"part-1/{row}" for row in range(10)),
    }
    assert set(rows.column("model_name").to_pylist()) == {TINY_MODEL_NAME}
    assert set(rows.column("model_version").to_pylist()) == {1}
    assert set(rows.column("model_manifest_sha256").to_pylist()) == {first.model_manifest_sha256}
    assert set(
        zip(
            rows.column("input_folder").to_pylist(),
            rows.column("flow_run_id").to_pylist(),
            strict=True,
        )
    ) == {
        (DAY_1, first.flow_run_id),
        (DAY_2, second.flow_run_id),
    }
    # The same scores as the per-file outputs, which stay as they are.
    output = pq.read_table(out / TINY_MODEL_NAME / "v1" / DAY_1 / "part-0.parquet")
    in_table = rows.filter(pc.equal(rows.column("input_folder"), DAY_1)).sort_by("review_id")
    assert (
        in_table.column("score").to_pylist()
        == output.sort_by("review_id").column("score").to_pylist()
    )

    commits = table.history()  # newest first
    assert [commit.get("flow_run_id") for commit in commits] == [
        second.flow_run_id,
        first.flow_run_id,
        None,
    ]
    assert commits[0]["model_version"] == "1" and commits[0]["files_added"] == "2"

    # Yesterday's table, by version and by time.
    assert DeltaTable(path, version=1).to_pyarrow_table().num_rows == 30
    first_commit_time = datetime.fromtimestamp(commits[1]["timestamp"] / 1000, tz=timezone.utc)
    yesterday = DeltaTable(path)
    yesterday.load_as_version(first_commit_time + timedelta(milliseconds=1))
    assert yesterday.version() == 1 and yesterday.to_pyarrow_table().num_rows == 30

    # One table for every reader.
    assert polars.read_delta(path).height == 60
    assert len(DeltaTable(path).to_pandas()) == 60
    assert DeltaTable(path).to_pyarrow_dataset().count_rows() == 60

    quiet = run_scoring(params)
    assert quiet.table is not None and not quiet.table.committed and quiet.table.version == 2
    assert DeltaTable(path).version() == 2


def test_a_re_landed_or_retired_partition_changes_the_table_in_one_commit(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """A day re-landed under new file names: its old rows leave and its new rows arrive in the
    same commit, so no version of the table holds the day twice or half. A day retired with its
    outputs leaves the table too."""
    inputs, out = tmp_path / "reviews", tmp_path / "out"
    params = params_for(tiny_model_store, inputs, out)
    write_reviews(inputs / DAY_1 / "part-0.parquet", rows=30, seed=1)
    write_reviews(inputs / DAY_2 / "part-0.parquet", rows=30, seed=2)
    run_scoring(params)
    path = str(out / TABLE_FOLDER)

    shutil.rmtree(inputs / DAY_1)
    write_reviews(inputs / DAY_1 / "part-a.parquet", rows=25, seed=4)
    relanded = run_scoring(params)
    assert relanded.table is not None
    assert (relanded.table.files_added, relanded.table.files_removed) == (1, 1)
    assert DeltaTable(path).version() == 2  # one commit took the old rows out and the new in
    for version, name, rows_then in ((1, "part-0", 60), (2, "part-a", 55)):
        rows = DeltaTable(path, version=version).to_pyarrow_table()
        day_1 = [input_file for input_file in _ids_by_file(rows) if input_file.startswith(DAY_1)]
        assert day_1 == [f"{DAY_1}/{name}.parquet"] and rows.num_rows == rows_then, version

    shutil.rmtree(inputs / DAY_2)
    kept = run_scoring(params)
    assert kept.table is not None and not kept.table.committed  # its outputs stay: so do its rows
    retired = run_scoring(params.model_copy(update={"retire_vanished_outputs": True}))
    assert retired.table is not None and retired.table.files_removed == 1
    assert sorted(_ids_by_file(DeltaTable(path).to_pyarrow_table())) == [f"{DAY_1}/part-a.parquet"]


def test_outputs_the_table_missed_are_added_by_the_next_run(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """A night that did not write the table, or a table removed, costs nothing: the next run
    adds every output the table lacks."""
    inputs, out = tmp_path / "reviews", tmp_path / "out"
    params = params_for(tiny_model_store, inputs, out)
    write_reviews(inputs / DAY_1 / "part-0.parquet", rows=30, seed=1)
    without = run_scoring(params.model_copy(update={"write_table": False}))
    assert without.table is None and not (out / TABLE_FOLDER).exists()

    write_reviews(inputs / DAY_2 / "part-0.parquet", rows=20, seed=2)
    caught_up = run_scoring(params)
    assert caught_up.files_scored == 1 and caught_up.table is not None
    assert (caught_up.table.files_added, caught_up.table.rows_added) == (2, 50)

    shutil.rmtree(out / TABLE_FOLDER)
    rebuilt = run_scoring(params)
    assert rebuilt.files_scored == 0 and rebuilt.table is not None
    assert (rebuilt.table.version, rebuilt.table.rows_added) == (1, 50)
    assert DeltaTable(str(out / TABLE_FOLDER)).to_pyarrow_table().num_rows == 50


def test_a_commit_that_fails_ends_the_run_failed_saying_why_with_the_outputs_written(
    prefect_api: None, tiny_model_store: Path, tmp_path: Path
) -> None:
    """Two inputs whose carried column disagrees in type cannot share the table: the run ends
    Failed naming the table and the column, and every output is written all the same."""
    inputs, out = tmp_path / "reviews", tmp_path / "out"
    write_parquet(inputs / "a.parquet", {"text": ["great movie"], "source": [1]})
    write_parquet(inputs / "b.parquet", {"text": ["awful plot"], "source": ["site"]})
    state = score_flow(params_for(tiny_model_store, inputs, out), return_state=True)
    assert state.is_failed()
    assert "predictions table" in state.message and "source" in state.message, state.message
    outputs = sorted(path.name for path in (out / TINY_MODEL_NAME / "v1").glob("*.parquet"))
    assert outputs == ["a.parquet", "b.parquet"]


@pytest.mark.s3
def test_two_runs_committing_at_once_on_s3_both_land_and_nothing_is_lost(
    prefect_api: None,
    s3_bucket: str,
    s3_store: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two scoring commands of different days against the test S3 server, each stopped just
    before its commit and then let go together, commit to one table: each lands (delta-rs's
    commit is a conditional write, and a commit
    beaten to the same inputs is worked out again) or is refused saying so; the table then
    holds every row exactly once, at once or after the next run."""
    import os
    import signal
    import subprocess
    import sys

    import prefect.settings

    from storage.faults import FAULT_VARIABLE
    from testkit import REPOSITORY
    from testkit.s3 import upload

    lake = tmp_path / "lake"
    write_reviews(lake / DAY_1 / "part-0.parquet", rows=30, seed=1)
    write_reviews(lake / DAY_2 / "part-0.parquet", rows=30, seed=2)
    upload(lake, f"{s3_bucket}/lake")
    environment = {
        **os.environ,
        "PREFECT_API_URL": prefect.settings.PREFECT_API_URL.value(),
        # Each run stops before its commit; both go on together, so the commits race.
        FAULT_VARIABLE: "table.before-commit:1:stop",
    }
    command = [sys.executable, "-m", "flows.cli", "score", "--input-path", f"{s3_bucket}/lake"]
    command += ["--model-store-root", s3_store, "--model-name", TINY_MODEL_NAME]
    command += ["--output-root", f"{s3_bucket}/predictions"]
    children = [
        subprocess.Popen(
            [*command, "--partition", day],
            cwd=REPOSITORY,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for day in (DAY_1, DAY_2)
    ]
    for child in children:
        _, status = os.waitpid(child.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), child.communicate()[1][-3000:]
    for child in children:
        os.kill(child.pid, signal.SIGCONT)
    ended = [child.communicate(timeout=300) for child in children]
    for child, (_, stderr) in zip(children, ended, strict=True):
        refused = "predictions table" in stderr and "refused" in stderr
        assert child.returncode == 0 or refused, stderr[-3000:]
    if any(child.returncode for child in children):
        del environment[FAULT_VARIABLE]
        subprocess.run(command, cwd=REPOSITORY, env=environment, check=True, timeout=300)

    from storage import locate

    table_path = f"{s3_bucket}/predictions/{TABLE_FOLDER}"
    table = DeltaTable(table_path, storage_options=locate(table_path).object_store_options())
    rows = table.to_pyarrow_table()
    assert rows.num_rows == 60
    assert _ids_by_file(rows) == {
        f"{DAY_1}/part-0.parquet": sorted(f"part-0/{row}" for row in range(30)),
        f"{DAY_2}/part-0.parquet": sorted(f"part-0/{row}" for row in range(30)),
    }
    with capsys.disabled():
        exits = [child.returncode for child in children]
        tables = [line for stdout, _ in ended for line in stdout.splitlines() if "table:" in line]
        print(f"\ntwo runs at once on S3: exit statuses {exits}; {tables}")
