"""The training flow end to end under a real Prefect API, on small synthetic labeled Parquet.

The module trains three times, once each in `runs`: a good model from the command line (auto:
promoted, there is no champion), a worse one (auto: not promoted), the worse recipe again with
`--promote always` (promoted); the tests read what those runs left.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from flows.cli import main
from flows.settings import get_settings
from flows.training import TrainParams, train_flow
from model_store import ModelStore
from tasks.training import TrainingConfig
from testkit.synthetic import TINY_RECIPE, write_labeled_dataset

TINY = TINY_RECIPE
WORSE = {**TINY, "units": 1, "epochs": 1, "learning_rate": 0.0001}
MODEL = "imdb-sentiment"


def _options(params: dict[str, Any]) -> list[str]:
    return [
        part
        for name, value in params.items()
        for part in (f"--{name.replace('_', '-')}", str(value))
    ]


@pytest.fixture(scope="module")
def runs(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three runs' results, and the champion after each, in one store."""
    dataset = write_labeled_dataset(tmp_path_factory.mktemp("imdb"), train_rows=400, test_rows=100)
    store_root = tmp_path_factory.mktemp("models")
    store = ModelStore(store_root)
    where = {"data_path": str(dataset), "model_store_root": str(store_root)}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["train", "--json", *_options({**TINY, **where, "architecture": "gru"})])
    assert status == 0
    first = json.loads(printed.getvalue())
    recorded = {"first": first, "champion_after_first": store.aliases(MODEL)}
    recorded["worse"] = train_flow(TrainParams(**WORSE, **where))
    recorded["champion_after_worse"] = store.aliases(MODEL)
    recorded["always"] = train_flow(TrainParams(**WORSE, **where, promote="always"))
    recorded["champion_after_always"] = store.aliases(MODEL)
    recorded["store"] = store
    return recorded


def test_the_command_line_trains_registers_and_promotes(runs: dict[str, Any]) -> None:
    first = runs["first"]
    assert first["model_name"] == MODEL and first["version"] == 1
    assert first["promoted"] is True and "no champion" in first["promotion_reason"]
    assert first["metrics"]["test_accuracy"] > 0.85
    assert runs["champion_after_first"] == {"champion": 1}


def test_the_manifest_records_the_run(runs: dict[str, Any]) -> None:
    store = runs["store"]
    manifest = store.manifest(MODEL, 1)
    for key in (
        "params",
        "metrics",
        "data_fingerprint",
        "library_versions",
        "created_at",
        "run_id",
    ):
        assert manifest[key], key
    assert manifest["params"]["architecture"] == "gru"
    assert manifest["params"]["epochs"] == 2
    assert manifest["data_fingerprint"].startswith("sha256:")
    assert {"model.keras", "vocabulary.json", "history.json", "curves.png"} <= set(
        manifest["files"]
    )
    assert len(manifest["metrics"]["test_score_histogram"]) == 10
    loaded = store.load(MODEL, 1)
    assert loaded.vocabulary["maxlen"] == 16 and loaded.vocabulary["source"] == "parquet"


def test_a_worse_model_is_registered_but_not_promoted(runs: dict[str, Any]) -> None:
    worse = runs["worse"]
    assert worse["version"] == 2
    assert worse["metrics"]["test_accuracy"] < runs["first"]["metrics"]["test_accuracy"]
    assert worse["promoted"] is False and "worse" in worse["promotion_reason"]
    assert runs["champion_after_worse"] == {"champion": 1}


def test_promote_always_moves_the_champion_even_to_a_worse_model(runs: dict[str, Any]) -> None:
    always = runs["always"]
    assert always["version"] == 3 and always["promoted"] is True
    assert runs["champion_after_always"] == {"champion": 3}


def training_reports(model_name: str) -> list[Any]:
    """The training report artifacts of a model, as the Prefect UI reads them."""
    import asyncio

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read_artifacts() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[f"{model_name}-training"])
                )
            )

    return asyncio.run(read_artifacts())


def test_the_ui_shows_the_report_and_the_curves(runs: dict[str, Any]) -> None:
    artifacts = training_reports(MODEL)
    assert any("promoted to `champion`" in (artifact.data or "") for artifact in artifacts)
    assert any("data:image/png;base64," in (artifact.data or "") for artifact in artifacts)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxlen": 0}, "maxlen"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"architecture": "transformer"}, "architecture"),
        ({"source": "parquet", "data_path": None}, "data_path is required"),
        ({"data_path": ""}, "data_path"),
        ({"model_name": ""}, "model_name"),
        ({"model_store_root": ""}, "model_store_root"),
        ({"word_index_path": ""}, "word_index_path"),
    ],
)
def test_impossible_parameters_fail_before_anything_runs(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainParams(**{**TINY, "data_path": "somewhere", **change})


def test_the_recipe_is_declared_once() -> None:
    # TrainParams takes TrainingConfig's fields (type, default, limits, description) as they are.
    for name, field in TrainingConfig.model_fields.items():
        assert repr(TrainParams.model_fields[name]) == repr(field), name
    params = TrainParams(**TINY, data_path="somewhere", architecture="bilstm")
    assert params.training_config() == TrainingConfig(
        architecture="bilstm", embedding_dim=8, units=8, epochs=2, batch_size=32, learning_rate=0.01
    )


def test_settings_fill_in_what_the_parameters_leave_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REVIEW_SCORING_MODEL_NAME", "from-environment")
    resolved = get_settings().resolve(model_name=None, model_store_root=str(tmp_path))
    assert resolved.model_name == "from-environment"
    assert resolved.model_store_root == str(tmp_path)
    assert get_settings().resolve(model_name="given").model_name == "given"
    with pytest.raises(ValueError, match="model_name: empty"):
        get_settings().resolve(model_name="")
    with pytest.raises(ValueError, match="no such setting: input_path"):
        get_settings().resolve(input_path="x")


def test_bad_data_fails_and_registers_nothing(prefect_api: None, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "bad"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["good", "bad"], "label": [1, 1]}), folder / "train.parquet")
    pq.write_table(pa.table({"text": ["fine", "poor"], "label": [1, 0]}), folder / "test.parquet")
    store_root = tmp_path / "models"
    params = TrainParams(**TINY, data_path=str(folder), model_store_root=str(store_root))
    with pytest.raises(ValueError, match="only label 1 present"):
        train_flow(params)
    assert ModelStore(store_root).list_models() == []


@pytest.mark.s3
def test_a_store_in_object_storage_keeps_the_curves_and_the_report_shows_them(
    prefect_api: None, s3_bucket: str, tmp_path: Path
) -> None:
    dataset = write_labeled_dataset(tmp_path / "imdb", train_rows=200, test_rows=60)
    store_root = f"{s3_bucket}/models"
    result = train_flow(
        TrainParams(
            **{**TINY, "epochs": 1},
            data_path=str(dataset),
            model_store_root=store_root,
            model_name="s3-sentiment",
        )
    )
    assert result["path"].startswith("s3://")
    stored = ModelStore(store_root).manifest("s3-sentiment", result["version"])["files"]
    assert "curves.png" in stored
    (report,) = training_reports("s3-sentiment")
    assert "data:image/png;base64,iVBORw0KGgo" in report.data  # the PNG signature, encoded
