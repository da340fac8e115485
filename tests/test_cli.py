"""The `review-scoring` command: options made from the flows' parameter models, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import _params_from, build_parser, main
from flows.scoring import ScoreParams
from flows.training import TrainParams


def test_every_flow_parameter_is_an_option() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--source",
            "parquet",
            "--data-path",
            "d",
            "--architecture",
            "gru",
            "--epochs",
            "3",
            "--no-restore-best-weights",
            "--pooling",
            "max",
        ]
    )
    params = _params_from(args, TrainParams)
    assert (params.source, params.architecture, params.epochs) == ("parquet", "gru", 3)
    assert params.restore_best_weights is False and params.pooling == "max"
    assert params.embedding_dim == 32  # untouched options keep the flow's defaults
    args = parser.parse_args(["score", "--input-path", "x", "--task-runner", "local-dask"])
    assert _params_from(args, ScoreParams).task_runner == "local-dask"
    with pytest.raises(SystemExit):
        parser.parse_args(["score", "--task-runner", "spark"])


def test_impossible_parameter_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--maxlen", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --maxlen:") and "\n" not in error


def test_models_command_uses_the_settings_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVIEW_SCORING_MODEL_STORE_ROOT", str(tmp_path / "store"))
    assert main(["models", "show", "imdb-sentiment"]) == 1
    assert "imdb-sentiment" in capsys.readouterr().err
