"""score_flow end to end on a real store with a tiny trained model (Prefect's test harness).

Covers row accounting, encoding parity with the training code path, incremental reruns, bad
files, early model errors, a SIGKILLed run resumed exactly once, and a Dask cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.scoring import (
    ScoreParams,
    ScoringFailedError,
    build_task_runner,
    run_scoring,
    score_flow,
)
from model_store import ModelStore, NotFoundError
from tasks.scoring import ResolvedModel, load_scoring_model
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


def test_a_bad_file_fails_alone_and_the_flow_ends_failed(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "good.parquet", rows=20, seed=1)
    (inputs / "broken.parquet").write_text("this is not parquet")
    pq.write_table(pa.table({"body": ["no text column"]}), inputs / "notext.parquet")
    pq.write_table(pa.table({"text": pa.array([], type=pa.string())}), inputs / "empty.parquet")

    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ScoringFailedError)
    summary = error.summary
    assert summary["files_scored"] == 2 and summary["files_failed"] == 2  # empty is a normal night
    failed = {failure["relative_path"]: failure["error"] for failure in summary["failures"]}
    assert set(failed) == {"broken.parquet", "notext.parquet"}
    for name, message in failed.items():
        assert name in message and str(inputs) not in message  # relative in the UI and alerts
    assert "'text'" in failed["notext.parquet"]
    assert str(inputs) not in state.message and "broken.parquet" in state.message
    output_dir = tmp_path / "out" / MODEL_NAME / "v1"
    assert sorted(path.name for path in output_dir.iterdir()) == ["empty.parquet", "good.parquet"]


@pytest.mark.parametrize(
    ("model_name", "model_ref"), [(MODEL_NAME, "no-such-alias"), ("no-such-model", "champion")]
)
def test_unknown_model_or_alias_fails_before_any_file_is_read(
    prefect_api: None, model_store_root: Path, tmp_path: Path, model_name: str, model_ref: str
) -> None:
    params = ScoreParams(
        input_path=str(tmp_path / "does-not-exist"),  # reading it would raise FileNotFoundError
        output_root=str(tmp_path / "out"),
        model_store_root=str(model_store_root),
        model_name=model_name,
        model_ref=model_ref,
    )
    with pytest.raises(NotFoundError):
        score_flow(params)
    assert not (tmp_path / "out").exists()


def test_overlapping_input_and_output_are_refused(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=5, seed=1)
    with pytest.raises(ValueError, match="overlap"):
        score_flow(params_for(model_store_root, inputs, inputs / "predictions"))
    assert not (inputs / "predictions").exists()


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


def test_a_damaged_version_fails_before_any_file_is_read(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    import shutil

    from model_store import IntegrityError

    damaged_root = tmp_path / "models"
    shutil.copytree(model_store_root, damaged_root)
    model_file = damaged_root / MODEL_NAME / "versions" / "1" / "model.keras"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError):
        score_flow(params_for(damaged_root, tmp_path / "does-not-exist", tmp_path / "out"))
    assert not (tmp_path / "out").exists()


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


def test_an_output_folder_that_cannot_be_made_is_not_retried(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """Only I/O hiccups are retried: a file where the model's output folder goes cannot heal."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=5, seed=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MODEL_NAME).write_text("a file where a folder should be")
    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    [scoring] = [run for run in task_runs if run.name.startswith("score-file")]
    assert scoring.run_count == 1 and scoring.state.is_failed()


def _error_logs(flow_run_id: Any) -> list[str]:
    """The run's ERROR log lines as the UI shows them (task runs' lines included)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]),
                level=LogFilterLevel(ge_=40),
            )
        )
    return [log.message for log in logs]


def test_expected_failures_are_one_error_line_and_a_state_message_without_traceback(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "good.parquet", rows=10, seed=1)

    unknown = score_flow(
        params_for(model_store_root, inputs, tmp_path / "out", model_ref="99"), return_state=True
    )
    assert unknown.is_failed()
    assert f"unknown version 99 of '{MODEL_NAME}'" in unknown.message
    [line] = _error_logs(unknown.state_details.flow_run_id)
    assert "unknown version 99" in line and "Traceback" not in line

    (inputs / "day=2" / "broken.parquet").parent.mkdir()
    (inputs / "day=2" / "broken.parquet").write_text("not parquet")
    broken = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert broken.is_failed() and broken.message.startswith("1 of 2 files failed: ")
    [line] = _error_logs(broken.state_details.flow_run_id)
    assert "Traceback" not in line and line.count("day=2/broken.parquet") == 1
    assert str(inputs) not in broken.message and broken.message.count("broken.parquet") == 1


def test_a_bug_in_one_file_keeps_its_traceback_in_the_run_log(
    prefect_api: None, model_store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.scoring.tasks

    score_file = tasks.scoring.tasks.score_file

    def score_file_with_a_bug(job: Any, model: Any) -> Any:
        if job.relative_path == "bug.parquet":
            raise KeyError("a bug in the code, not in the data")
        return score_file(job, model)

    monkeypatch.setattr(tasks.scoring.tasks, "score_file", score_file_with_a_bug)
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "good.parquet", rows=10, seed=1)
    write_reviews(inputs / "bug.parquet", rows=10, seed=2)
    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert state.is_failed() and "a bug in the code" in state.message
    logged = "\n".join(_error_logs(state.state_details.flow_run_id))
    assert "Traceback" in logged and "a bug in the code, not in the data" in logged


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
    assert run.name == f"score {today} champion"


def test_a_version_safe_mode_refuses_fails_before_any_file_is_read(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """A version planted past register's own safe-mode check (an older store, a hand copy)."""
    import keras

    from model_store import check_keras_archive

    lambda_model = keras.Sequential(
        [
            keras.Input((TINY_MAXLEN,)),
            keras.layers.Lambda(lambda batch: batch * 2.0),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    store_root = tmp_path / "models"
    vocabulary = ModelStore(model_store_root).load(MODEL_NAME, 1).vocabulary
    ModelStore(store_root, check_model=check_keras_archive).register(
        MODEL_NAME, lambda_model, vocabulary, params={}, metrics={}, data_fingerprint="sha256:x"
    )
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "day1.parquet", rows=5, seed=1)
    state = score_flow(
        params_for(store_root, inputs, tmp_path / "out", model_ref="1"), return_state=True
    )
    assert state.is_failed() and "Lambda" in state.message
    assert not (tmp_path / "out").exists()  # refused once, before any input was read
