"""What the scoring tests share: a fake predictor passed in as the model, and review files.

The fake stands in for Keras where a test is about files, rows and statuses rather than the
network; the flow tests score with a real tiny model.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flows.scoring import ScoreParams
from storage.faults import FAULT_VARIABLE
from tasks.scoring import ResolvedModel, ScoringJob, ScoringModel
from tasks.text import Vocabulary
from testkit import REPOSITORY
from testkit.synthetic import TINY_MODEL_NAME, make_review

WORD_INDEX = {"the": 1, "movie": 2, "great": 3, "awful": 4, "was": 5, "plot": 6}
VOCABULARY = Vocabulary(word_index=WORD_INDEX, num_words=8, maxlen=6)


class RecordingPredictor:
    """A score from the ids, and a log of the batch sizes it was given."""

    def __init__(self) -> None:
        self.batch_rows: list[int] = []

    def __call__(self, token_ids: np.ndarray) -> np.ndarray:
        self.batch_rows.append(token_ids.shape[0])
        # "great" (id 6) pushes up, "awful" (id 7 >= num_words, so OOV 2) pushes down.
        great = (token_ids == 6).sum(axis=1)
        unknown = (token_ids == 2).sum(axis=1)
        return (1.0 / (1.0 + np.exp(-(great - unknown).astype(np.float32)))).astype(np.float32)


def fake_model(predictor: RecordingPredictor | None = None) -> ScoringModel:
    return ScoringModel(
        name="fake",
        version=3,
        vocabulary=VOCABULARY,
        predict_prepared=predictor or RecordingPredictor(),
    )


# What the fake version is (ModelStore.manifest_sha256 of a real one).
FAKE_MANIFEST_SHA256 = "f" * 64


def resolved(
    histogram: list[float] | None = None, manifest_sha256: str = FAKE_MANIFEST_SHA256
) -> ResolvedModel:
    return ResolvedModel(
        store_root="unused",
        name="fake",
        version=3,
        manifest_sha256=manifest_sha256,
        test_score_histogram=histogram,
    )


def job_for(input_path: Path, output_root: Path, batch_size: int = 4, **columns: Any) -> ScoringJob:
    """A job for a file at the top of its input root, as plan_jobs would make it."""
    return ScoringJob(
        input_path=str(input_path),
        relative_path=input_path.name,
        output_path=str(output_root / "fake" / "v3" / input_path.name),
        model=resolved(),
        batch_size=batch_size,
        **columns,
    )


def write_parquet(path: Path, columns: dict[str, Any], row_group_size: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


MALFORMED_TEXTS = [
    "The movie was great",
    None,
    "",
    "   \t\n",
    "awful awful plot " * 5000,  # very long: truncated to maxlen like training does
    "Ünïcödé 🎬 ça va — 映画 great\u200b\u3000",
    "great",
    "The plot...",
    None,
    "\u3000",
    "was great!",
]
MALFORMED_STATUSES = [
    "ok",
    "null_text",
    "empty_text",
    "empty_text",
    "ok",
    "ok",
    "ok",
    "ok",
    "null_text",
    "empty_text",
    "ok",
]


def malformed_table() -> dict[str, Any]:
    """Nulls, empty and blank texts, a very long text, odd Unicode, repeated ids, extra columns."""
    rows = len(MALFORMED_TEXTS)
    return {
        "review_id": [f"r{index % 4}" for index in range(rows)],  # repeated on purpose
        "text": pa.array(MALFORMED_TEXTS, type=pa.string()),
        "label": pa.array([index % 2 for index in range(rows)], type=pa.int8()),
        "rating": pa.array([float(index) for index in range(rows)]),
        "source": [f"site-{index}" for index in range(rows)],
    }


def write_reviews(path: Path, rows: int, seed: int, with_ids: bool = True) -> Path:
    """Synthetic short reviews with a `day` column; ids `<stem>/<row>` unless told otherwise."""
    generator = random.Random(seed)
    columns: dict[str, Any] = {
        "text": [make_review(generator.random() < 0.5, generator) for _ in range(rows)],
        "day": pa.array([seed] * rows, type=pa.int32()),
    }
    if with_ids:
        columns["review_id"] = [f"{path.stem}/{row}" for row in range(rows)]
    return write_parquet(path, columns, row_group_size=max(rows // 3, 1))


def invalid_utf8_strings(values: list[bytes | None]) -> pa.Array:
    """A string column holding bytes that are not UTF-8, as a careless writer can produce."""
    binary = pa.array(values, type=pa.binary())
    return pa.Array.from_buffers(
        pa.string(), len(binary), binary.buffers(), null_count=binary.null_count
    )


def score_params(
    store_root: Path | str, input_path: Path | str, output_root: Path | str, **more: Any
) -> ScoreParams:
    """Scoring parameters for the tiny model in `store_root`."""
    return ScoreParams(
        input_path=str(input_path),
        output_root=str(output_root),
        model_store_root=str(store_root),
        model_name=TINY_MODEL_NAME,
        **more,
    )


def s3_score_params(bucket: str, input_path: str, **more: Any) -> ScoreParams:
    """Scoring parameters with the store and the predictions in `bucket`, small batches."""
    return score_params(
        f"{bucket}/models", input_path, f"{bucket}/predictions", **{"batch_size": 16, **more}
    )


_CHILD_SCRIPT = """
import json, sys
from flows.scoring import ScoreParams, run_scoring
run_scoring(ScoreParams.model_validate(json.loads(sys.argv[1])))
"""


def score_in_child_until_fault(params: ScoreParams, fault: str) -> None:
    """Run the scoring flow in a fresh process against this process's Prefect API, and check
    that it died by SIGKILL at `fault` (storage/faults.py)."""
    from prefect.settings import PREFECT_API_URL

    environment = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        FAULT_VARIABLE: fault,
    }
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_SCRIPT, params.model_dump_json()],
        cwd=REPOSITORY,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-3000:]
