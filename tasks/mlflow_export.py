"""A model version as an MLflow model: `review-scoring models export NAME VERSION --format mlflow`.

Its pyfunc takes a DataFrame with a `text` column of raw reviews and returns, row for row, `score`,
`label` and `status` as a scoring run writes them: each row's status from the scoring code, the
text tokenized by training's tokenizer (tasks/text.py) with the version's vocabulary, so
`mlflow models serve` or `mlflow.pyfunc.spark_udf` label a review as the nightly run does. The
code it runs (the packages tasks, storage and model_store) travels inside the model, in MLflow's
code folder: loading it needs the listed libraries, not this project. Needs the `mlflow` extra.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# MLflow quiet on the command line (its own stderr handler, bound at import, would print its INFO
# lines), and the model's requirements its own list, not a copy of whatever uv.lock sits in the
# current folder.
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")

import mlflow.pyfunc
import numpy as np
import pandas as pd

__all__ = ["MLFLOW_TEXT_COLUMN", "ReviewSentimentModel", "export_mlflow_model"]

MLFLOW_TEXT_COLUMN = "text"
# The packages the model's code folder holds: what the pyfunc imports from this project.
_PACKAGES = ("tasks", "storage", "model_store")
# The libraries that code imports, pinned at the versions that trained and exported it.
_REQUIREMENTS = (
    "keras",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
    "matplotlib",
)
_TENSORFLOW_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow")
# Rows predicted at a time: the scoring flow's own batch.
_PREDICT_ROWS = 4096


class ReviewSentimentModel(mlflow.pyfunc.PythonModel):
    """Raw review texts in, the version's scores, labels and row statuses out."""

    def load_context(self, context: Any) -> None:
        import keras

        import tasks.layers  # noqa: F401 (registers the n-gram bag layer before loading)
        from tasks.scoring.model import ScoringModel, keras_predictor
        from tasks.text import Vocabulary

        model = keras.saving.load_model(context.artifacts["model"], safe_mode=True)
        vocabulary = json.loads(Path(context.artifacts["vocabulary"]).read_text("utf-8"))
        self.scoring_model = ScoringModel(
            name=context.model_config["model_name"],
            version=int(context.model_config["version"]),
            vocabulary=Vocabulary.from_dict(vocabulary),
            predict_prepared=keras_predictor(model),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        import pyarrow as pa

        from tasks.contract import labels_for
        from tasks.scoring.encoding import classify_texts, encode_for_model

        texts = (
            model_input[MLFLOW_TEXT_COLUMN]
            if isinstance(model_input, pd.DataFrame)
            else pd.Series(model_input)
        )
        statuses, to_score, scored_texts = classify_texts(pa.array(texts, from_pandas=True))
        ids = encode_for_model(scored_texts, self.scoring_model)
        scores = np.full(len(texts), np.nan, dtype=np.float32)
        labels = np.full(len(texts), None, dtype=object)
        if len(ids):
            predicted = np.concatenate(
                [
                    self.scoring_model.predict(ids[start : start + _PREDICT_ROWS])
                    for start in range(0, len(ids), _PREDICT_ROWS)
                ]
            )
            scores[to_score] = predicted
            labels[to_score] = labels_for(predicted)
        return pd.DataFrame(
            {"score": scores, "label": labels, "status": statuses.to_numpy(zero_copy_only=False)},
            index=texts.index,
        )


_MODEL_CODE = """\
from mlflow.models import set_model

from tasks.mlflow_export import ReviewSentimentModel

set_model(ReviewSentimentModel())
"""


def _requirements() -> list[str]:
    pinned = [f"{name}=={importlib.metadata.version(name)}" for name in _REQUIREMENTS]
    for name in _TENSORFLOW_DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
            break
    return pinned


def export_mlflow_model(store_root: str, name: str, ref: int | str, destination: Path) -> Path:
    """Write version `ref` of `name` as an MLflow model folder at `destination` (which must not
    exist), staged beside it and renamed into place; returns it. The model's metadata names the
    version and its manifest's sha256."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from model_store import ModelStore
    from model_store.version_folder import VOCABULARY_FILE
    from storage import InvalidParameterError

    destination = Path(destination).absolute()
    if destination.exists():
        raise InvalidParameterError(f"{destination}: exists; name a folder that does not")
    if not destination.parent.is_dir():
        raise InvalidParameterError(f"{destination.parent}: no such folder")
    store = ModelStore(store_root)
    project = Path(__file__).resolve().parent.parent
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", MLFLOW_TEXT_COLUMN)]),
        outputs=Schema(
            [ColSpec("float", "score"), ColSpec("string", "label"), ColSpec("string", "status")]
        ),
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    # MLflow's "model from code": loading runs this file, no pickle is read.
    model_code = staging / "review_sentiment_model.py"
    model_code.write_text(_MODEL_CODE, encoding="utf-8")
    try:
        with store.verified_files(name, ref) as (version, files):
            mlflow.pyfunc.save_model(
                path=staging / "model",
                python_model=str(model_code),
                artifacts={
                    "model": str(files / "model.keras"),
                    "vocabulary": str(files / VOCABULARY_FILE),
                },
                code_paths=[str(project / package) for package in _PACKAGES],
                signature=signature,
                # MLflow loads the saved model and predicts these: an export that cannot score
                # fails here, not where it is served.
                input_example=pd.DataFrame(
                    {MLFLOW_TEXT_COLUMN: ["a moving, wonderful film", "a dull waste of time"]}
                ),
                pip_requirements=_requirements(),
                model_config={"model_name": name, "version": version},
                metadata={
                    "model_name": name,
                    "version": version,
                    "manifest_sha256": store.manifest_sha256(name, version),
                },
            )
        for cache in (staging / "model").rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        os.replace(staging / "model", destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
