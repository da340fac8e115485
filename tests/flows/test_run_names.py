"""Run names that tell runs apart (issue 24, item 7), without a Prefect API: the date and time
in the run's zone, the partition or input folder, and the version that scores."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from flows.run_names import scoring_run_name, training_run_name
from flows.scoring import ScoreParams
from flows.training import TrainParams

NIGHT = datetime(2026, 12, 7, 23, 30, tzinfo=timezone.utc)


def test_a_scoring_run_is_named_by_its_night_input_and_version(tmp_path: Path) -> None:
    from model_store import ModelStore
    from testkit.store import MODEL_NAME, build_tiny_model, register

    model_store = ModelStore(tmp_path / "models")
    register(model_store, build_tiny_model(1))
    model_store.set_alias(MODEL_NAME, "champion", 1)
    store = {"model_store_root": str(tmp_path / "models"), "model_name": MODEL_NAME}
    nightly = ScoreParams(input_path="s3://lake/reviews/", timezone="Europe/Paris", **store)
    # 23:30 UTC is 00:30 the next day in Paris; the alias as the version it names now.
    assert scoring_run_name(nightly, NIGHT) == "score 2026-12-08 00:30 reviews v1 (champion)"
    partition = nightly.model_copy(update={"partition": "day={scheduled_date}", "model_ref": "7"})
    assert scoring_run_name(partition, NIGHT) == "score 2026-12-08 00:30 day=2026-12-08 v7"


def test_a_name_never_stops_a_run(tmp_path: Path) -> None:
    """An alias the store cannot resolve (no store yet) names the run by the alias; the run
    itself then fails saying why."""
    params = ScoreParams(input_path=str(tmp_path / "landing"), model_store_root=str(tmp_path))
    assert scoring_run_name(params, NIGHT) == "score 2026-12-07 23:30 landing champion"
    # A partition template the run will refuse still names it, as written.
    bad = params.model_copy(update={"partition": "day={date}"})
    assert scoring_run_name(bad, NIGHT) == "score 2026-12-07 23:30 day={date} champion"


def test_a_training_run_is_named_by_recipe_and_data() -> None:
    params = TrainParams(source="parquet", data_path="s3://bucket/imdb/", architecture="gru")
    assert training_run_name(params) == "train gru on parquet imdb"
    assert training_run_name(TrainParams()) == "train lstm on keras"
