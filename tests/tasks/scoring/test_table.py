"""The predictions table below the flow: planned, scored, settled and recorded as a run does,
with the fake model, then committed (issue 21, item 8)."""

from __future__ import annotations

import shutil
from pathlib import Path

from deltalake import DeltaTable

from tasks.scoring import plan_jobs, score_file
from tasks.scoring.history import ScoringHistory, history_location, record_run
from tasks.scoring.records import TableCommit
from tasks.scoring.table import TABLE_FOLDER, sync_predictions_table
from tasks.scoring.writing import settle_output_folders
from testkit.scoring import fake_model, resolved, write_parquet


def _night(inputs: Path, out: Path, run_id: str) -> TableCommit:
    model = resolved()
    plan = plan_jobs(str(inputs), out, model)
    results = [score_file(job, fake_model()) for job in plan.jobs]
    folders = settle_output_folders(plan, results, [], model, run_id)
    record_run(plan, results, folders, model, run_id, None, str(out))
    return sync_predictions_table(str(out), model, run_id, results)


def _input_files(out: Path, version: int | None = None) -> list[str]:
    rows = DeltaTable(str(out / TABLE_FOLDER), version=version).to_pyarrow_table()
    return sorted(rows.column("input_file").to_pylist())


def test_the_table_follows_the_outputs_one_commit_a_night(tmp_path: Path) -> None:
    inputs, out = tmp_path / "reviews", tmp_path / "out"
    write_parquet(inputs / "day=1" / "x.parquet", {"text": ["great movie", "awful"]})
    write_parquet(inputs / "day=2" / "y.parquet", {"text": ["the plot"], "source": ["site"]})
    first = _night(inputs, out, "run-1")
    assert (first.committed, first.version, first.files_added, first.rows_added) == (
        True,
        1,  # version 0 is the empty table the first commit made
        2,
        3,
    )
    assert _input_files(out) == ["day=1/x.parquet", "day=1/x.parquet", "day=2/y.parquet"]
    history = ScoringHistory.read(history_location(str(out), "fake"))
    assert {scored.table_version for scored in history.inputs.values()} == {1}

    quiet = _night(inputs, out, "run-2")
    assert (quiet.committed, quiet.version) == (False, 1)

    # Re-landed under a new name: the old file's rows leave as the new one's arrive.
    (inputs / "day=1" / "x.parquet").unlink()
    write_parquet(inputs / "day=1" / "z.parquet", {"text": ["great"]})
    relanded = _night(inputs, out, "run-3")
    assert (relanded.version, relanded.files_added, relanded.files_removed) == (2, 1, 1)
    assert _input_files(out) == ["day=1/z.parquet", "day=2/y.parquet"]
    assert _input_files(out, version=1) == ["day=1/x.parquet", "day=1/x.parquet", "day=2/y.parquet"]
    assert ScoringHistory.read(history_location(str(out), "fake")).table_removals == []

    # A table made anew (removed, or another one) takes every output again.
    shutil.rmtree(out / TABLE_FOLDER)
    anew = _night(inputs, out, "run-4")
    assert (anew.version, anew.files_added) == (1, 2)
    rows = DeltaTable(str(out / TABLE_FOLDER)).to_pyarrow_table()
    provenance = zip(rows["input_file"].to_pylist(), rows["flow_run_id"].to_pylist(), strict=True)
    assert sorted(provenance) == [
        ("day=1/z.parquet", "run-3"),
        ("day=2/y.parquet", "run-1"),
    ]
    assert rows.column("source").to_pylist().count("site") == 1  # a carried column, kept
