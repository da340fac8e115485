"""A version exported as an MLflow model (issue 26, item 7): loaded by MLflow's own
`mlflow.pyfunc.load_model` in a process that cannot import this checkout, it scores raw texts as
the project's scoring code does. Real MLflow (mlflow-skinny), a real tiny Keras model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testkit import REPOSITORY as REPO
from testkit.synthetic import TINY_MODEL_NAME

pytest.importorskip("mlflow", reason="the mlflow extra (make venv installs every extra)")

TEXTS = [
    "a wonderful film, the best acting and a moving story",
    "dull, boring and far too long; the worst film this year",
    "",
    None,
    "   ",
    "unseenword anotherunseenword",
    "great great great " * 200,  # longer than the padding keeps
]

# Runs in a child whose sys.path has no entry for this checkout: what it imports of the project
# comes from the model's own code folder.
_LOAD_AND_PREDICT = """
import json, sys
from pathlib import Path
checkout = Path(sys.argv[1]).resolve()
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != checkout]
import mlflow.pyfunc
import pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[2])
texts = json.loads(Path(sys.argv[3]).read_text())
predicted = model.predict(pd.DataFrame({"text": texts}))
import tasks
print(json.dumps({
    "tasks_from": tasks.__file__,
    "score": [None if value != value else float(value) for value in predicted["score"]],
    "label": [value if isinstance(value, str) else None for value in predicted["label"]],
    "status": list(predicted["status"]),
    "metadata": model.metadata.metadata,
}))
"""


def _export(store_root: Path, cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`review-scoring models export tiny-sentiment ... --format mlflow`, the real command."""
    command = [sys.executable, "-m", "flows.cli", "models", "export", TINY_MODEL_NAME, *arguments]
    return subprocess.run(
        [*command, "--format", "mlflow"],
        cwd=cwd,
        env={**os.environ, "REVIEW_SCORING_MODEL_STORE_ROOT": str(store_root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _project_scores(store_root: Path) -> tuple[np.ndarray, list[str | None], list[str]]:
    """The scoring flow's own code path: row statuses, training's tokenizer, the loaded version."""
    import pyarrow as pa

    from tasks.contract import labels_for
    from tasks.scoring import classify_texts, encode_for_model, load_scoring_model, resolve_model

    model = load_scoring_model(resolve_model(str(store_root), TINY_MODEL_NAME, 1))
    statuses, to_score, texts = classify_texts(pa.array(TEXTS, type=pa.string()))
    scores = np.full(len(TEXTS), np.nan)
    scores[to_score] = model.predict(encode_for_model(texts, model))
    labels: list[str | None] = [None] * len(TEXTS)
    for row, label in zip(np.flatnonzero(to_score), labels_for(scores[to_score]), strict=True):
        labels[row] = str(label)
    return scores, labels, statuses.to_pylist()


def test_the_mlflow_model_scores_as_the_project_does(
    tiny_model_store: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "exported"
    exporting = _export(tiny_model_store, REPO, "champion", "--output", str(exported))
    assert exporting.returncode == 0, exporting.stderr[-3000:]
    assert exporting.stdout.startswith(f"{TINY_MODEL_NAME} v1: MLflow model at {exported}")
    assert exporting.stderr == "", exporting.stderr  # MLflow's INFO lines and warnings stay out
    assert (exported / "MLmodel").is_file() and (exported / "code" / "tasks").is_dir()
    assert not list(tmp_path.glob(".exported.*")), "the staging folder is left behind"

    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(TEXTS))
    child = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT, str(REPO), str(exported), str(texts_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    loaded = json.loads(child.stdout.strip().splitlines()[-1])
    assert loaded["tasks_from"].startswith(str(exported / "code")), loaded["tasks_from"]
    assert loaded["metadata"]["model_name"] == TINY_MODEL_NAME
    assert loaded["metadata"]["version"] == 1

    scores, labels, statuses = _project_scores(tiny_model_store)
    assert loaded["status"] == statuses
    assert statuses.count("ok") == 4, statuses  # the two texts with words, the unknown words too
    mlflow_scores = np.array([np.nan if value is None else value for value in loaded["score"]])
    np.testing.assert_allclose(mlflow_scores, scores, atol=1e-5, equal_nan=True)
    assert loaded["label"] == labels
    assert {"positive", "negative"} <= set(labels)


def test_an_export_never_writes_over_a_folder(tiny_model_store: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")

    refused = _export(tiny_model_store, tmp_path, "1", "--output", str(taken))
    assert (refused.returncode, refused.stderr) == (
        1,
        f"error: {taken}: exists; name a folder that does not\n",
    )
    assert [path.name for path in taken.iterdir()] == ["keep.txt"]
    missing = _export(tiny_model_store, tmp_path, "7")
    assert missing.returncode == 1 and missing.stderr.startswith("error: "), missing.stderr
    assert len(missing.stderr.splitlines()) == 1 and "7" in missing.stderr
    assert list(tmp_path.iterdir()) == [taken]
