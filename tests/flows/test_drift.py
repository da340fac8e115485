"""Drift an operator can act on (issue 22, item 7), under a real Prefect API: the verdict is in
the run's final state (what the runs list shows) and in an event about the run, compared with the
version's own held-out predictions, with no verdict from too few rows."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from flows.scoring import score_flow
from tasks.scoring.report import DRIFT_DETECTED
from testkit.scoring import score_params
from testkit.synthetic import write_labeled_parquet


def events_about(flow_run_id: object) -> list[dict[str, Any]]:
    """The review-scoring events the server holds about that flow run."""
    import prefect.settings

    body = json.dumps(
        {
            "filter": {
                "event": {"prefix": ["review-scoring."]},
                "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
                "any_resource": None,
            },
            "limit": 50,
        }
    ).encode()
    request = urllib.request.Request(
        f"{prefect.settings.PREFECT_API_URL.value()}/events/filter",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return list(json.loads(response.read())["events"])


def score(model_store_root: Path, reviews: Path, output_root: Path) -> tuple[Any, dict[str, Any]]:
    """The run's final state, and the one drift event the run emitted."""
    from testkit.servers import wait_until

    state = score_flow(score_params(model_store_root, reviews, output_root), return_state=True)
    [event] = wait_until(lambda: events_about(state.state_details.flow_run_id), 30, "the event")
    return state, event


@pytest.mark.parametrize(
    ("rows", "positive_only", "event", "headline"),
    [
        # Reviews from the training source that the model never saw: not drift.
        (1000, False, "review-scoring.drift.not-detected", "no drift: PSI 0.0"),
        # The source changed (only praise now): drift, with its PSI.
        (1000, True, DRIFT_DETECTED, "drift: PSI "),
        # The demo's 35 samples cried wolf (PSI 3.76): no verdict below 300 rows.
        (35, True, "review-scoring.drift.not-judged", "drift: too few rows to judge (35)"),
    ],
)
def test_each_run_says_its_drift_verdict_in_its_state_and_an_event(
    prefect_api: None,
    model_store_root: Path,
    tmp_path: Path,
    rows: int,
    positive_only: bool,
    event: str,
    headline: str,
) -> None:
    reviews = write_labeled_parquet(
        tmp_path / "reviews" / "unseen.parquet", rows, seed=4242, positive_only=positive_only
    )
    state, emitted = score(model_store_root, reviews.parent, tmp_path / "out")
    assert state.is_completed()
    assert state.message.startswith(headline), state.message
    assert emitted["event"] == event
    payload = emitted["payload"]
    assert payload["rows"] == rows and payload["threshold"] == 0.2
    assert (payload["model_name"], payload["model_version"]) == ("tiny-sentiment", 1)
    assert payload["verdict"] in state.message or payload["verdict"] == "too few rows to judge"
    assert (payload["psi"] > 0.2) == (event == DRIFT_DETECTED) or rows < 300
    # The run's deployment, flow and tags come along as related resources.
    related = {resource["prefect.resource.role"] for resource in emitted["related"]}
    assert "flow" in related, emitted["related"]


FRENCH_WORDS = ["le", "film", "était", "vraiment", "magnifique", "les", "acteurs", "jouent"]
FRENCH_WORDS += ["bien", "une", "histoire", "émouvante", "et", "belle", "je", "recommande"]


def write_french_reviews(path: Path, rows: int) -> Path:
    """Reviews in another language than the version was trained on."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    generator = random.Random(7)
    texts = [
        " ".join(generator.choices(FRENCH_WORDS, k=12)).capitalize() + "." for _ in range(rows)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"review_id": [str(i) for i in range(rows)], "text": texts}), path)
    return path


def test_each_version_records_the_words_of_its_training_split(model_store_root: Path) -> None:
    """Item 8: the share of words outside the vocabulary and the review lengths, per version."""
    from model_store import ModelStore
    from tasks.contract import LENGTH_EDGES
    from testkit.synthetic import TINY_MODEL_NAME

    metrics = ModelStore(model_store_root).manifest(TINY_MODEL_NAME, 1)["metrics"]
    training_text = metrics["training_text"]
    assert training_text["reviews"] == 400  # testkit.store.train_tiny_store's training rows
    assert 0.0 <= training_text["oov_share"] < 0.1
    assert len(training_text["length_histogram"]) == len(LENGTH_EDGES) + 1
    assert abs(sum(training_text["length_histogram"]) - 1.0) < 1e-4


def test_a_change_of_language_shows_in_the_words_in_the_summary_and_the_event(
    prefect_api: None, model_store_root: Path, tmp_path: Path
) -> None:
    """Item 8: French reviews, to a version trained on English ones: most words are outside its
    vocabulary, which the summary, the log and the event say, whatever the scores do."""
    write_french_reviews(tmp_path / "reviews" / "fr.parquet", 1000)
    state, emitted = score(model_store_root, tmp_path / "reviews", tmp_path / "out")
    assert state.is_completed()
    words = state.result()["words"]
    assert words["verdict"] == "changed", words
    assert words["oov_share"] > 0.9 and words["training_oov_share"] < 0.1
    assert words["message"].startswith("The words of 1000 reviews have changed")
    payload = emitted["payload"]
    assert payload["words_verdict"] == "changed" and payload["oov_share"] > 0.9

    # English reviews from the training source: the words are as in training.
    write_labeled_parquet(tmp_path / "english" / "en.parquet", 1000, seed=99)
    state, emitted = score(model_store_root, tmp_path / "english", tmp_path / "out-en")
    assert state.result()["words"]["verdict"] == "as in training"
    assert emitted["payload"]["words_verdict"] == "as in training"
