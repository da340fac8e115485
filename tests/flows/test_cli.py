"""The `review-scoring` command: options made from the flows' parameter models, clear errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flows.cli import _params_from, build_parser, main
from flows.scoring import ScoreParams
from flows.training import TrainParams
from tasks.training import ARCHITECTURES


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


def test_help_lists_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["train", "--help"])
    assert exit_status.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name in TrainParams.model_fields:
        assert f"--{name.replace('_', '-')}" in shown, name
    assert "(default: 10000)" in shown and "(default: lstm)" in shown


def test_the_cli_and_the_ui_form_offer_the_one_list_of_architectures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    form = TrainParams.model_json_schema()["properties"]["architecture"]
    assert form["enum"] == list(ARCHITECTURES)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"--architecture {{{','.join(ARCHITECTURES)}}}" in capsys.readouterr().out


def test_impossible_parameter_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--maxlen", "0"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --maxlen:") and "\n" not in error


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("train", "--model-name"),
        ("train", "--data-path"),
        ("train", "--model-store-root"),
        ("score", "--input-path"),
        ("score", "--model-name"),
    ],
)
def test_an_empty_option_is_refused_not_taken_for_the_default(
    command: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, option, ""]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {option}:") and "empty" in error and "\n" not in error


def _train_without_data(tmp_path: Path, *options: str) -> list[str]:
    """A training that would fail on its data (there is none), if it ever got that far."""
    return ["train", "--source", "parquet", "--data-path", str(tmp_path / "no-data"), *options]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


def test_a_bad_model_name_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    command = _train_without_data(
        tmp_path, "--model-name", "../evil", "--model-store-root", str(store_root)
    )
    assert main(command) == 1
    error = _one_error_line(capsys)
    assert "invalid model name '../evil'" in error and "no-data" not in error
    assert not store_root.exists()


def test_a_store_root_that_is_a_file_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    store_root.write_text("not a folder")
    assert main(_train_without_data(tmp_path, "--model-store-root", str(store_root))) == 1
    error = _one_error_line(capsys)
    assert f"model_store_root: {store_root} is not a folder" in error and "no-data" not in error


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes in a 0o500 folder anyway"
)
def test_a_store_root_without_write_permission_fails_before_any_data_is_read(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "models"
    store_root.mkdir(mode=0o500)
    try:
        assert main(_train_without_data(tmp_path, "--model-store-root", str(store_root))) == 1
    finally:
        store_root.chmod(0o700)
    error = _one_error_line(capsys)
    assert f"model_store_root: cannot write in {store_root}" in error


def test_the_data_is_checked_once_the_destination_is_fine(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = _train_without_data(tmp_path, "--model-store-root", str(tmp_path / "models"))
    assert main(command) == 1
    assert "data_path:" in _one_error_line(capsys)
    assert (tmp_path / "models").is_dir() and not any((tmp_path / "models").iterdir())


def test_a_scoring_error_is_one_line_too(
    prefect_api: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_root = tmp_path / "empty-store"
    command = ["score", "--model-store-root", str(store_root), "--input-path", str(tmp_path)]
    assert main(command) == 1
    assert "imdb-sentiment" in _one_error_line(capsys)


def test_models_command_uses_the_settings_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REVIEW_SCORING_MODEL_STORE_ROOT", str(tmp_path / "store"))
    assert main(["models", "show", "imdb-sentiment"]) == 1
    assert "imdb-sentiment" in capsys.readouterr().err
