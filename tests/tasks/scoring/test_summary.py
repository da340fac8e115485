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
from tasks.scoring.report import render_distribution_markdown, summary_table
from testkit.scoring import resolved

TEST_HISTOGRAM = [0.2, 0.1, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.1, 0.2]


def test_the_same_distribution_is_not_drift() -> None:
    counts = [int(share * 10_000) for share in TEST_HISTOGRAM]
    report = compare_score_distributions(counts, 5_000, resolved(TEST_HISTOGRAM), threshold=0.2)
    assert report.psi is not None and report.psi < 0.01 and not report.drifted
    assert report.run_positive_share == 0.5


def test_a_shifted_distribution_is_drift() -> None:
    counts = [0, 0, 0, 0, 0, 0, 0, 0, 3_000, 7_000]
    report = compare_score_distributions(counts, 10_000, resolved(TEST_HISTOGRAM), threshold=0.2)
    assert report.drifted and report.psi > 0.2 and "drifted" in report.message


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
            error="InputFileError: day=c/part.parquet: not a readable Parquet file",
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
    assert [row["outcome"] for row in table[:3]] == ["scored", "skipped", "failed"]
    assert [row["file"] for row in table[:3]] == [
        "day=a/part.parquet",
        "day=b/part.parquet",
        "day=c/part.parquet",
    ]
    assert table[-1]["rows"] == 15 and "empty_text: 2" in table[-1]["rejected"]
    markdown = render_distribution_markdown(summary)
    assert "test split" in markdown and "`day=c/part.parquet`" in markdown
    assert "Warning: drift" in markdown  # everything in one bin is far from TEST_HISTOGRAM
    assert "/data/lake" not in json.dumps(table) + markdown  # no absolute paths in the UI
