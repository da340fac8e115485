"""How a scoring run fails, under a real Prefect API: a bad file fails alone, a bad model or
path fails before any file is read, a user's error is one line and a bug keeps its traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.scoring import (
    ScoreParams,
    ScoringFailedError,
    score_flow,
)
from model_store import ModelStore, NotFoundError
from testkit.scoring import score_params as params_for
from testkit.scoring import write_reviews
from testkit.synthetic import TINY_MAXLEN, TINY_MODEL_NAME

MODEL_NAME = TINY_MODEL_NAME


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


def test_a_file_that_takes_longer_than_its_timeout_fails_naming_the_setting(
    prefect_api: None, model_store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each file's task has a timeout (REVIEW_SCORING_FILE_TIMEOUT_SECONDS): a file that hangs
    fails alone, in words that say which setting bounds it, instead of holding the night."""
    inputs = tmp_path / "reviews"
    write_reviews(inputs / "a.parquet", rows=200_000, seed=1)  # seconds to score, even here
    monkeypatch.setenv("REVIEW_SCORING_FILE_TIMEOUT_SECONDS", "1")
    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert state.is_failed()
    [failure] = state.result(raise_on_failure=False).summary["failures"]
    assert failure["error"] == (
        "took longer than 1 s to score (REVIEW_SCORING_FILE_TIMEOUT_SECONDS)"
    ), failure
    monkeypatch.setenv("REVIEW_SCORING_FILE_TIMEOUT_SECONDS", "600")
    state = score_flow(params_for(model_store_root, inputs, tmp_path / "out"), return_state=True)
    assert state.is_completed(), state.message
