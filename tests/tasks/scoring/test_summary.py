"""A run's totals, drift check and UI report (tasks.scoring.summary and .report)."""

from __future__ import annotations

import json

from tasks.scoring import (
    FileFailure,
    FileResult,
    ScoringPlan,
    SkippedInput,
    compare_score_distributions,
    summarize_run,
)
from tasks.scoring.report import (
    ERROR_COLUMN_CHARACTERS,
    render_distribution_markdown,
    summary_table,
)
from testkit.scoring import resolved

TEST_HISTOGRAM = [0.2, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.1, 0.2]


def test_the_same_distribution_is_not_drift() -> None:
    counts = [int(share * 10_000) for share in TEST_HISTOGRAM]
    report = compare_score_distributions(counts, 5_000, resolved(TEST_HISTOGRAM), threshold=0.2)
    assert report.psi is not None and report.psi < 0.01 and not report.drifted
    assert report.verdict == "no drift" and report.run_positive_share == 0.5


def test_a_shifted_distribution_is_drift() -> None:
    counts = [0, 0, 0, 0, 0, 0, 0, 0, 3_000, 7_000]
    report = compare_score_distributions(counts, 10_000, resolved(TEST_HISTOGRAM), threshold=0.2)
    assert report.drifted and report.psi > 0.2 and "drifted" in report.message
    assert report.verdict == "drift"


def test_below_the_minimum_of_rows_there_is_no_verdict() -> None:
    """The demo's 35 sample rows scored PSI 3.76 and cried wolf; 299 rows is still noise."""
    shifted = [0, 0, 0, 0, 0, 0, 0, 0, 90, 209]
    report = compare_score_distributions(shifted, 299, resolved(TEST_HISTOGRAM), threshold=0.2)
    assert (report.verdict, report.drifted) == ("too few rows to judge", False)
    assert report.message.startswith("Too few rows to judge: 299 scored, at least 300")
    one_more = compare_score_distributions(
        [*shifted[:-1], 210], 300, resolved(TEST_HISTOGRAM), threshold=0.2
    )
    assert (one_more.verdict, one_more.drifted) == ("drift", True)


def test_a_missing_test_histogram_is_said_not_failed() -> None:
    report = compare_score_distributions([1] * 10, 5, resolved(None), threshold=0.2)
    assert report.psi is None and not report.drifted
    assert "no test_score_histogram" in report.message
    assert "fake v3" in report.message  # the model's name as it is, never capitalised


def _result(name: str, outcome: str, statuses: dict[str, int], positives: int) -> FileResult:
    return FileResult(
        input_path=f"/data/lake/day={name}/part.parquet",
        relative_path=f"day={name}/part.parquet",
        output_path=f"/out/fake/v3/day={name}/part.parquet",
        outcome=outcome,
        rows=sum(statuses.values()),
        status_counts=statuses,
        positives=positives,
        score_counts=[0] * 5 + [statuses.get("ok", 0)] + [0] * 4,
        null_ids=1,
        duplicate_ids=2,
        seconds=2.0,
        input_sha256="0" * 64,
    )


def test_the_summary_adds_up_files_rejects_ids_and_failures_and_shows_relative_paths() -> None:
    results = [
        _result("a", "scored", {"ok": 8, "empty_text": 2}, positives=6),
        _result("b", "skipped", {"ok": 4, "null_text": 1}, positives=0),
    ]
    failures = [
        FileFailure(
            input_path="/data/lake/day=c/part.parquet",
            relative_path="day=c/part.parquet",
            output_path="/out/fake/v3/day=c/part.parquet",
            error="InputFileError: day=c/part.parquet: not a readable Parquet file: Parquet "
            "magic bytes not found in footer. Either the file is corrupted or this is not a "
            "parquet file.",
        )
    ]
    plan = ScoringPlan(
        input_root="/data/lake",
        output_dir="/out/fake/v3",
        jobs=[],
        skipped=[SkippedInput(path="/data/lake/_SUCCESS", reason="writer metadata")],
    )
    summary = summarize_run(resolved(TEST_HISTOGRAM), plan, results, failures, 2.0, 0.2)
    assert (summary.files_total, summary.files_scored, summary.files_skipped) == (3, 1, 1)
    assert summary.files_failed == 1 and summary.failures == failures
    assert (summary.rows, summary.rows_scored, summary.rows_ok) == (15, 10, 12)
    assert summary.rejected_by_reason == {"empty_text": 2, "null_text": 1}
    assert (summary.null_ids, summary.duplicate_ids) == (2, 4)
    assert summary.positive_share == 0.5 and summary.rows_per_second == 5.0
    assert summary.drift.rows == 8  # drift looks at the rows scored now
    assert summary.skipped_inputs == plan.skipped

    table = summary_table(summary)
    # Failed files first, their error in the third column: readable without scrolling.
    assert [row["outcome"] for row in table[:3]] == ["failed", "scored", "skipped"]
    assert [row["file"] for row in table[:3]] == [
        "day=c/part.parquet",
        "day=a/part.parquet",
        "day=b/part.parquet",
    ]
    assert list(table[0])[:3] == ["file", "outcome", "error"]
    lines = table[0]["error"].split("  \n")
    assert " ".join(lines) == failures[0].error.replace("day=c/part.parquet: ", "")
    assert all(len(line) <= ERROR_COLUMN_CHARACTERS for line in lines), lines
    assert table[-1]["rows"] == 15 and "empty_text: 2" in table[-1]["rejected"]
    markdown = render_distribution_markdown(summary)
    assert "test split" in markdown and "`day=c/part.parquet`" in markdown
    # Everything in one bin is far from TEST_HISTOGRAM, but 8 rows cannot say so.
    assert "Warning: drift" not in markdown and "Too few rows to judge: 8 scored" in markdown
    assert "/data/lake" not in json.dumps(table) + markdown  # no absolute paths in the UI


def test_the_words_change_with_unknown_words_or_lengths_and_need_enough_reviews() -> None:
    from tasks.contract import LENGTH_EDGES, TextCounts, TextProfile
    from tasks.scoring import compare_words

    bins = len(LENGTH_EDGES) + 1
    training = TextProfile(
        reviews=25_000, oov_share=0.03, length_histogram=[0.0] * 4 + [1.0] * 1 + [0.0] * (bins - 5)
    )
    model = resolved(TEST_HISTOGRAM).model_copy(update={"training_text": training})
    same = [0] * 4 + [500] + [0] * (bins - 5)

    def counts(oov: int, lengths: list[int]) -> TextCounts:
        return TextCounts(words=10_000, oov_words=oov, length_counts=lengths)

    assert compare_words(counts(300, same), model, 0.2).verdict == "as in training"
    foreign = compare_words(counts(7_000, same), model, 0.2)
    assert foreign.verdict == "changed" and foreign.oov_share == 0.7
    assert "70.0% of the words are outside the vocabulary (training: 3.0%)" in foreign.message
    one_sentence = compare_words(counts(300, [0, 500] + [0] * (bins - 2)), model, 0.2)
    assert one_sentence.verdict == "changed" and one_sentence.length_psi > 0.2
    few = compare_words(counts(7_000, [0] * 4 + [299] + [0] * (bins - 5)), model, 0.2)
    assert few.verdict == "too few reviews to judge"
    old_version = compare_words(counts(300, same), resolved(TEST_HISTOGRAM), 0.2)
    assert old_version.verdict == "no reference"
