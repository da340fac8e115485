"""The training flow end to end under a real Prefect API, on small synthetic labeled Parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.training import TrainParams, train_flow
from model_store import ModelStore
from tests.synthetic import write_labeled_dataset

TINY = {
    "source": "parquet",
    "num_words": 60,
    "maxlen": 16,
    "embedding_dim": 8,
    "units": 8,
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 0.01,
}


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return write_labeled_dataset(tmp_path / "imdb", train_rows=500, test_rows=150)


def test_training_flow_registers_promotes_and_reports(
    prefect_api: None, dataset: Path, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    store_root = tmp_path / "models"
    params = TrainParams(**TINY, data_path=str(dataset), model_store_root=str(store_root))
    first = train_flow(params)
    assert first["version"] == 1 and first["promoted"] is True
    assert first["metrics"]["test_accuracy"] > 0.85

    store = ModelStore(store_root)
    manifest = store.manifest("imdb-sentiment", 1)
    for key in (
        "params",
        "metrics",
        "data_fingerprint",
        "library_versions",
        "created_at",
        "run_id",
    ):
        assert manifest[key], key
    assert manifest["params"]["architecture"] == "lstm"
    assert manifest["params"]["epochs"] == 2
    assert manifest["data_fingerprint"].startswith("sha256:")
    assert {"model.keras", "vocabulary.json", "history.json", "curves.png"} <= set(
        manifest["files"]
    )
    assert len(manifest["metrics"]["test_score_histogram"]) == 10
    assert store.aliases("imdb-sentiment") == {"champion": 1}
    loaded = store.load("imdb-sentiment", "champion")
    assert loaded.vocabulary["maxlen"] == 16 and loaded.vocabulary["source"] == "parquet"

    # A worse model (one unit, one epoch, a tiny learning rate) is registered but not promoted.
    worse = train_flow(
        TrainParams(
            **{**TINY, "units": 1, "epochs": 1, "learning_rate": 0.0001},
            data_path=str(dataset),
            model_store_root=str(store_root),
        )
    )
    assert worse["version"] == 2
    assert worse["metrics"]["test_accuracy"] < first["metrics"]["test_accuracy"]
    assert worse["promoted"] is False and "worse" in worse["promotion_reason"]
    assert store.aliases("imdb-sentiment") == {"champion": 1}

    # The same good recipe again matches the champion, so `auto` promotes it ...
    again = train_flow(params)
    assert again["version"] == 3
    assert again["metrics"]["test_accuracy"] == first["metrics"]["test_accuracy"]
    assert again["promoted"] is True
    assert store.aliases("imdb-sentiment") == {"champion": 3}
    # ... and `never` leaves the champion where it is, `always` moves it even to a worse model.
    never = train_flow(params.model_copy(update={"promote": "never"}))
    assert never["promoted"] is False and store.aliases("imdb-sentiment") == {"champion": 3}
    always = train_flow(
        TrainParams(
            **{**TINY, "units": 1, "epochs": 1, "learning_rate": 0.0001},
            data_path=str(dataset),
            model_store_root=str(store_root),
            promote="always",
        )
    )
    assert always["promoted"] is True
    assert store.aliases("imdb-sentiment") == {"champion": always["version"]}

    async def read_artifacts() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["imdb-sentiment-training"])
                )
            )

    import asyncio

    artifacts = asyncio.run(read_artifacts())
    assert any("promoted to `champion`" in (artifact.data or "") for artifact in artifacts)
    assert any("data:image/png;base64," in (artifact.data or "") for artifact in artifacts)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxlen": 0}, "maxlen"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"architecture": "transformer"}, "architecture"),
        ({"source": "parquet", "data_path": None}, "data_path is required"),
    ],
)
def test_impossible_parameters_fail_before_anything_runs(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainParams(**{**TINY, "data_path": "somewhere", **change})


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
