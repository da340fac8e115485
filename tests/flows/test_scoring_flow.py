"""score_flow end to end on a real store with a tiny trained model (Prefect's test harness).

Covers row accounting, encoding parity with the training code path, incremental reruns, the
parameters and runners, run names, and a Dask cluster (failures: test_scoring_failures.py; a
killed run resumed: test_scoring_recovery.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flows.scoring import (
    ScoreParams,
    build_task_runner,
    run_scoring,
    score_flow,
)
from model_store import ModelStore
from tasks.scoring import ResolvedModel, load_scoring_model
from tasks.scoring.table import TABLE_FOLDER
from tasks.text import Vocabulary, encode_texts, pad_sequences
from testkit.scoring import score_params as params_for
from testkit.scoring import write_reviews
from testkit.synthetic import TINY_MAXLEN, TINY_MODEL_NAME, TINY_NUM_WORDS

MODEL_NAME = TINY_MODEL_NAME


def write_messy(path: Path) -> Path:
    """Nulls, empty and blank texts, a very long text, odd Unicode, duplicate ids, extra columns."""
    texts = [
        "Great movie, loved it",
        None,
        "",
        "  \n\t",
        "terrible boring awful " * 20_000,
        "Ünïcödé 🎬 — 映画 wonderful\u200b \u3000 ",
        "dull",
        None,
        "superb",
    ]
    table = pa.table(
        {
            "review_id": ["a", "b", "a", "c", "d", "a", "e", "f", "g"],
            "text": pa.array(texts, type=pa.string()),
            "label": pa.array([1, 0, 1, 0, 0, 1, 0, 1, 1], type=pa.int8()),
            "note": [f"n{index}" for index in range(len(texts))],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def output_tables(output_dir: Path) -> dict[str, pa.Table]:
    return {path.stem: pq.read_table(path) for path in sorted(output_dir.glob("*.parquet"))}


def test_every_input_row_gives_one_output_row_with_the_version(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "normal.parquet", rows=250, seed=1)
    write_reviews(inputs / "noids.parquet", rows=40, seed=2, with_ids=False)
    write_messy(inputs / "messy.parquet")
    params = params_for(model_store_root, inputs, tmp_path / "out", batch_size=64)

    state = score_flow(params, return_state=True)
    assert state.is_completed()
    summary = state.result()
    output_dir = tmp_path / "out" / MODEL_NAME / "v1"
    assert summary["model_version"] == 1 and summary["output_dir"] == str(output_dir)
    assert (summary["files_total"], summary["files_scored"], summary["files_failed"]) == (3, 3, 0)
    assert summary["rows"] == summary["rows_scored"] == 250 + 40 + 9
    assert summary["rejected_by_reason"] == {"empty_text": 2, "null_text": 2}

    outputs = output_tables(output_dir)
    assert set(outputs) == {"normal", "noids", "messy"}
    for stem, table in outputs.items():
        source = pq.read_table(inputs / f"{stem}.parquet")
        assert table.num_rows == source.num_rows
        assert set(table.column("model_version").to_pylist()) == {1}
        assert set(table.column("model_name").to_pylist()) == {MODEL_NAME}
        expected_ids = (
            source.column("review_id").to_pylist()
            if "review_id" in source.column_names
            else [f"{stem}:{row}" for row in range(source.num_rows)]
        )
        assert table.column("review_id").to_pylist() == expected_ids
    messy = outputs["messy"]
    assert messy.column("status").to_pylist() == [
        "ok",
        "null_text",
        "empty_text",
        "empty_text",
        "ok",
        "ok",
        "ok",
        "null_text",
        "ok",
    ]
    assert messy.column("input_label").to_pylist() == [1, 0, 1, 0, 0, 1, 0, 1, 1]
    assert messy.column("note").to_pylist()[-1] == "n8"
    assert outputs["normal"].column("day").to_pylist() == [1] * 250
    assert not list(output_dir.glob(".*"))  # no temporaries left
    marker = json.loads((output_dir / "_SUCCESS").read_text())
    assert marker["flow_run_id"] == str(state.state_details.flow_run_id)
    assert marker["rows"] == 250 + 40 + 9 and marker["model_version"] == 1
    assert summary["completed_folders"] == [str(output_dir)]
    assert summary["duplicate_ids"] == 2  # write_messy has "a" three times

    artifacts = _artifacts_of(state.state_details.flow_run_id)
    assert {"scoring-progress", "scoring-summary", "scoring-score-distribution"} <= set(artifacts)
    assert artifacts["scoring-progress"].data == 100.0
    assert "test split" in artifacts["scoring-score-distribution"].data


def _artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in artifacts if artifact.key}


def test_flow_scores_equal_the_model_on_training_encoded_reviews(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    texts = [
        "Great wonderful film, loved the actors!",
        "Awful. Boring plot<br />and clumsy scenes",
        "the movie " * 40 + "superb",  # longer than maxlen: truncated as in training
        "Unknownword zzz qqq",
        "DULL dull Dull waste",
    ]
    inputs = tmp_path / "reviews"
    inputs.mkdir()
    pq.write_table(pa.table({"text": texts}), inputs / "parity.parquet")
    summary = run_scoring(params_for(model_store_root, inputs, tmp_path / "out", batch_size=2))

    loaded = ModelStore(model_store_root).load(MODEL_NAME, "champion")
    vocabulary = Vocabulary.from_dict(loaded.vocabulary)
    token_ids = pad_sequences(
        encode_texts(texts, vocabulary),
        vocabulary.maxlen,
        padding=vocabulary.padding,
        truncating=vocabulary.truncating,
    )
    expected = loaded.model.predict(token_ids, verbose=0).reshape(-1)
    output = pq.read_table(Path(summary.output_dir) / "parity.parquet")
    np.testing.assert_allclose(output.column("score").to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert output.column("label").to_pylist() == [
        "positive" if score >= 0.5 else "negative" for score in expected
    ]


def test_rerun_skips_done_files_and_picks_up_new_ones(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=30, seed=1)
    write_reviews(inputs / "day2.parquet", rows=30, seed=2)
    params = params_for(model_store_root, inputs, tmp_path / "out")
    first = run_scoring(params)
    assert (first.files_scored, first.files_skipped) == (2, 0)
    output = tmp_path / "out" / MODEL_NAME / "v1" / "day1.parquet"
    written = output.stat().st_mtime_ns

    write_reviews(inputs / "day3.parquet", rows=30, seed=3)
    second = run_scoring(params)
    assert (second.files_scored, second.files_skipped, second.rows_scored) == (1, 2, 30)
    assert second.rows == 90 and second.model_version == 1
    assert output.stat().st_mtime_ns == written  # untouched


def test_a_night_with_nothing_new_reads_no_input_and_runs_no_file_task(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """Planning compares each input's size and modification time with the history beside the
    outputs: an unchanged input is counted, not read, and gets no task (issue 21, item 1)."""
    import os

    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    inputs = tmp_path / "reviews"
    for day in ("day1", "day2"):
        write_reviews(inputs / f"{day}.parquet", rows=30, seed=len(day))
    params = params_for(model_store_root, inputs, tmp_path / "out")
    run_scoring(params)
    history = json.loads((tmp_path / "out" / MODEL_NAME / "_scoring-history.json").read_text())
    assert sorted(history["inputs"]) == ["day1.parquet", "day2.parquet"]

    # Same size, same modification time, bytes that are not Parquet: read, it would fail.
    day1 = inputs / "day1.parquet"
    status = day1.stat()
    day1.write_bytes(b"\0" * status.st_size)
    os.utime(day1, ns=(status.st_atime_ns, status.st_mtime_ns))
    quiet = run_scoring(params)
    assert (quiet.files_scored, quiet.files_skipped, quiet.files_failed) == (0, 2, 0)
    assert quiet.rows == 60 and quiet.files == []
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[quiet.flow_run_id])
            )
        )
    assert task_runs and not [run.name for run in task_runs if run.name.startswith("score-file")]

    # A changed modification time is a changed input: read (and here, refused as not Parquet).
    os.utime(day1, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    changed = score_flow(params, return_state=True)
    assert changed.is_failed() and "day1.parquet" in changed.message


def test_after_a_promotion_new_data_gets_the_champion_and_history_is_rescored_when_asked(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """A new champion labels the next night's new data; the nights before keep their labels
    (no surprise rescore of the whole history), and the run says what rescoring them would cost,
    until --rescore-history asks for it (issue 21, item 4)."""
    import shutil

    store_root = tmp_path / "store"
    shutil.copytree(model_store_root, store_root)
    inputs = tmp_path / "reviews"
    for day in ("day1", "day2"):
        write_reviews(inputs / f"{day}.parquet", rows=30, seed=len(day))
    params = params_for(store_root, inputs, tmp_path / "out")
    run_scoring(params)
    store = ModelStore(store_root)
    version = store.load(MODEL_NAME, 1)
    store.register(
        MODEL_NAME, version.model, version.vocabulary, params={}, metrics={}, data_fingerprint="b"
    )
    store.promote(MODEL_NAME, 2, mode="always")

    write_reviews(inputs / "day3.parquet", rows=30, seed=3)
    night = run_scoring(params)
    assert (night.model_version, night.files_scored, night.files_skipped) == (2, 1, 0)
    earlier = night.earlier_versions
    assert (earlier.files, earlier.rows, earlier.versions, earlier.rescored) == (2, 60, [1], False)
    assert earlier.rows_per_second and earlier.estimated_seconds is not None
    assert sorted(
        path.name for path in (tmp_path / "out" / MODEL_NAME / "v2").glob("*.parquet")
    ) == ["day3.parquet"]

    table_path = str(tmp_path / "out" / TABLE_FOLDER)
    versions = DeltaTable(table_path).to_pyarrow_table().select(["input_file", "model_version"])
    assert sorted(zip(*versions.to_pydict().values(), strict=True)) == [
        *[("day1.parquet", 1)] * 30,
        *[("day2.parquet", 1)] * 30,
        *[("day3.parquet", 2)] * 30,
    ]

    rescored = run_scoring(params.model_copy(update={"rescore_history": True}))
    assert (rescored.files_scored, rescored.earlier_versions.rescored) == (2, True)
    # The history's rows move to v2 in one commit of the predictions table.
    assert rescored.table is not None and rescored.table.files_added == 2
    assert DeltaTable(table_path).version() == rescored.table.version == 3
    rows = DeltaTable(table_path).to_pyarrow_table()
    assert rows.num_rows == 90 and set(rows.column("model_version").to_pylist()) == {2}
    assert sorted(
        path.name for path in (tmp_path / "out" / MODEL_NAME / "v2").glob("*.parquet")
    ) == [
        "day1.parquet",
        "day2.parquet",
        "day3.parquet",
    ]
    assert run_scoring(params).earlier_versions.files == 0  # all labeled by v2 now


def test_another_stores_version_of_the_same_name_and_number_rescores(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """Two stores' `v1`: the second store's run does not take the first one's outputs for its
    own; outputs, `_SUCCESS` and the summary name the model by its manifest's sha256."""
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=30, seed=1)
    first_store = ModelStore(model_store_root)
    version = first_store.load(MODEL_NAME, 1)
    other_root = tmp_path / "other-store"
    other_store = ModelStore(other_root)
    other_store.register(
        MODEL_NAME,
        version.model,
        version.vocabulary,
        params={},
        metrics={},
        data_fingerprint="another training",
    )
    other_store.set_alias(MODEL_NAME, "champion", 1)
    first = run_scoring(params_for(model_store_root, inputs, tmp_path / "out"))
    second = run_scoring(params_for(other_root, inputs, tmp_path / "out"))
    assert (second.files_scored, second.files_skipped) == (1, 0)
    identity = ModelStore(other_root).manifest_sha256(MODEL_NAME, 1)
    assert first.model_manifest_sha256 == first_store.manifest_sha256(MODEL_NAME, 1) != identity
    assert (second.model_manifest_sha256, second.model_store) == (identity, str(other_root))
    output_dir = tmp_path / "out" / MODEL_NAME / "v1"
    column = pq.read_table(output_dir / "day1.parquet").column("model_manifest_sha256")
    assert set(column.to_pylist()) == {identity}
    marker = json.loads((output_dir / "_SUCCESS").read_text())
    assert (marker["model_manifest_sha256"], marker["model_store"]) == (identity, str(other_root))


def test_a_version_is_loaded_once_per_process(model_store_root: Path) -> None:
    first = load_scoring_model(
        ResolvedModel(store_root=str(model_store_root), name=MODEL_NAME, version=1)
    )
    again = load_scoring_model(
        ResolvedModel(store_root=str(model_store_root / "."), name=MODEL_NAME, version=1)
    )
    assert again is first and first.version == 1
    assert first.vocabulary.maxlen == TINY_MAXLEN
    assert first.vocabulary.num_words == TINY_NUM_WORDS


def test_params_are_checked_and_runners_built() -> None:
    with pytest.raises(ValueError, match="dask_address"):
        ScoreParams(task_runner="dask")
    with pytest.raises(ValueError, match="batch_size"):
        ScoreParams(batch_size=0)
    with pytest.raises(ValueError, match="must differ"):
        ScoreParams(text_column="x", id_column="x")
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    threads = build_task_runner(ScoreParams(max_concurrent_files=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    local = build_task_runner(ScoreParams(task_runner="local-dask", max_concurrent_files=2))
    assert isinstance(local, DaskTaskRunner)
    assert local.cluster_kwargs == {
        "n_workers": 1,
        "threads_per_worker": 2,
        "processes": True,
        "preload": ["tasks.scoring.worker"],
    }
    remote = build_task_runner(ScoreParams(task_runner="dask", dask_address="tcp://h:8786"))
    assert remote.address == "tcp://h:8786"
    schema = ScoreParams.model_json_schema()["properties"]
    assert schema["batch_size"]["minimum"] == 1 and schema["batch_size"]["description"]


@pytest.mark.dask
def test_a_dask_cluster_gives_the_same_output_as_threads(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    from distributed import LocalCluster

    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=120, seed=1)
    write_reviews(inputs / "day2.parquet", rows=80, seed=2, with_ids=False)
    write_messy(inputs / "messy.parquet")
    threads = run_scoring(params_for(model_store_root, inputs, tmp_path / "threads", batch_size=32))
    # One worker process (importing TensorFlow is the slow part), two files at a time in it.
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
    ) as cluster:
        dask = run_scoring(
            params_for(
                model_store_root,
                inputs,
                tmp_path / "dask",
                batch_size=32,
                task_runner="dask",
                dask_address=cluster.scheduler_address,
            )
        )
    assert (dask.files_scored, dask.rows, dask.model_version) == (3, threads.rows, 1)
    from_threads = output_tables(Path(threads.output_dir))
    from_dask = output_tables(Path(dask.output_dir))
    assert set(from_threads) == set(from_dask) == {"day1", "day2", "messy"}
    for stem, table in from_threads.items():
        other = from_dask[stem]
        assert table.schema.remove_metadata() == other.schema.remove_metadata()
        for name in table.column_names:
            if name == "scored_at":
                continue
            if name == "score":
                np.testing.assert_allclose(
                    table.column(name).to_numpy(zero_copy_only=False).astype(float),
                    other.column(name).to_numpy(zero_copy_only=False).astype(float),
                    rtol=1e-6,
                )
            else:
                assert table.column(name).equals(other.column(name)), (stem, name)


@pytest.mark.parametrize("field", ["input_path", "output_root", "model_name", "model_store_root"])
def test_empty_path_and_name_parameters_are_refused_not_defaulted(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ScoreParams(**{field: ""})


def test_runs_are_named_by_date_and_model_ref(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    from datetime import datetime, timezone

    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=5, seed=1)
    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    today = datetime.now(timezone.utc).date().isoformat()
    # The input's folder and the version the alias named: runs of a day tell apart.
    assert re.fullmatch(rf"score {today} \d{{2}}:\d{{2}} reviews v1 \(champion\)", run.name), (
        run.name
    )
