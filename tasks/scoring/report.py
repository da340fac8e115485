"""What the Prefect UI shows of a run: the summary table and the score-distribution page.

Paths here are relative to the input root, so artifacts and alerts say which partition without
showing where the data lives; the full paths stay in the logs and the flow's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.contract import HISTOGRAM_BINS
from tasks.scoring.contract import STATUS_OK
from tasks.scoring.records import ScoringSummary

__all__ = [
    "DRIFT_DETECTED",
    "drift_event",
    "drift_headline",
    "rejected_text",
    "render_distribution_markdown",
    "summary_table",
]

# The event each scoring run emits with its drift verdict; automations subscribe to these names.
DRIFT_DETECTED = "review-scoring.drift.detected"
_DRIFT_EVENTS = {
    "drift": DRIFT_DETECTED,
    "no drift": "review-scoring.drift.not-detected",
}
_NOT_JUDGED = "review-scoring.drift.not-judged"


def drift_headline(summary: ScoringSummary) -> str:
    """The verdict in a few words, for the run's final state (what the runs list shows)."""
    drift = summary.drift
    if drift.verdict in ("drift", "no drift"):
        return (
            f"{drift.verdict}: PSI {drift.psi:.4f} over {drift.rows:,} rows "
            f"(threshold {drift.threshold:g})"
        )
    if drift.verdict == "too few rows to judge":
        return f"drift: too few rows to judge ({drift.rows:,})"
    return f"drift: not judged ({drift.verdict})"


def drift_event(summary: ScoringSummary) -> tuple[str, dict[str, Any]]:
    """The event's name and payload: the verdict, the PSI, the rows judged, the model."""
    drift = summary.drift
    return _DRIFT_EVENTS.get(drift.verdict, _NOT_JUDGED), {
        "verdict": drift.verdict,
        "psi": drift.psi,
        "threshold": drift.threshold,
        "rows": drift.rows,
        "message": drift.message,
        "model_name": summary.model_name,
        "model_version": summary.model_version,
        "model_manifest_sha256": summary.model_manifest_sha256,
        # The words (vocabulary coverage and lengths against training), which move first.
        **(
            {
                "words_verdict": summary.words.verdict,
                "oov_share": summary.words.oov_share,
                "training_oov_share": summary.words.training_oov_share,
                "length_psi": summary.words.length_psi,
                "words_message": summary.words.message,
            }
            if summary.words
            else {}
        ),
    }


def rejected_text(status_counts: Mapping[str, int]) -> str:
    """'empty_text: 2, null_text: 1', or 'none'."""
    rejected = {key: value for key, value in status_counts.items() if key != STATUS_OK}
    return ", ".join(f"{key}: {value}" for key, value in sorted(rejected.items())) or "none"


# The error column's width in characters: the UI draws a table cell on one line unless its
# markdown breaks it, and a 1440 px window holds the file, outcome and this much of an error.
ERROR_COLUMN_CHARACTERS = 60


def error_cell(error: str, relative_path: str) -> str:
    """A file's error for its table row: without the file's name in front (the row's first
    column has it), in lines of ERROR_COLUMN_CHARACTERS joined by markdown hard breaks."""
    import textwrap

    for prefix in (f"{relative_path}: ", f"{relative_path.rsplit('/', 1)[-1]}: "):
        error = error.replace(prefix, "", 1)
    return "  \n".join(textwrap.wrap(error, ERROR_COLUMN_CHARACTERS, break_on_hyphens=False))


def summary_table(summary: ScoringSummary) -> list[dict[str, Any]]:
    """One row per file, then a total row: what the UI's summary table shows. Failed files come
    first and their error is the third column, in short lines, so it reads without scrolling
    the table."""
    table: list[dict[str, Any]] = [
        {
            "file": failure.relative_path,
            "outcome": "failed",
            "error": error_cell(failure.error, failure.relative_path),
            "rows": None,
            "rejected": "",
            "positive_share": None,
            "rows_per_second": None,
        }
        for failure in summary.failures
    ]
    for result in summary.files:
        ok = result.status_counts.get(STATUS_OK, 0)
        table.append(
            {
                "file": result.relative_path,
                "outcome": result.outcome,
                "error": "",
                "rows": result.rows,
                "rejected": rejected_text(result.status_counts),
                "positive_share": round(result.positives / ok, 4) if ok else None,
                "rows_per_second": round(result.rows / result.seconds, 1)
                if result.outcome == "scored" and result.seconds > 0
                else None,
            }
        )
    table.append(
        {
            "file": f"total ({summary.files_total} files)",
            "outcome": f"{summary.files_scored} scored, {summary.files_skipped} skipped, "
            f"{summary.files_failed} failed",
            "error": "",
            "rows": summary.rows,
            "rejected": rejected_text(summary.rejected_by_reason),
            "positive_share": summary.positive_share,
            "rows_per_second": summary.rows_per_second,
        }
    )
    return table


def _bar(share: float, width: int = 20) -> str:
    return "█" * round(share * width)


def _share_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render_distribution_markdown(summary: ScoringSummary) -> str:
    """Markdown: this run's score histogram next to the test split's, and the verdict."""
    drift = summary.drift
    lines = [f"## Scores of {summary.model_name} v{summary.model_version}", ""]
    sentence = drift.message + "."
    lines += [f"> **Warning: drift.** {sentence}" if drift.drifted else sentence, ""]
    test = drift.test_histogram
    lines += ["| score | this run | | test split | |", "|---|---:|---|---:|---|"]
    for index, share in enumerate(drift.run_histogram):
        low, high = index / HISTOGRAM_BINS, (index + 1) / HISTOGRAM_BINS
        bracket = "]" if index == HISTOGRAM_BINS - 1 else ")"
        test_cells = f"{test[index]:.1%} | {_bar(test[index])}" if test else "n/a | "
        lines.append(
            f"| [{low:.1f}, {high:.1f}{bracket} | {share:.1%} | {_bar(share)} | {test_cells} |"
        )
    lines += [
        "",
        f"Positive share: this run {_share_text(drift.run_positive_share)}, "
        f"test split {_share_text(drift.test_positive_rate)}.",
        "",
        f"Files: {summary.files_scored} scored, {summary.files_skipped} skipped, "
        f"{summary.files_failed} failed. Rows: {summary.rows} ({summary.rows_scored} scored now, "
        f"{summary.rows_per_second} rows/s); rejected: {rejected_text(summary.rejected_by_reason)}"
        f"; review ids null: {summary.null_ids}, repeated: {summary.duplicate_ids}.",
    ]
    if summary.skipped_inputs:
        lines += ["", f"Skipped beside the data: {len(summary.skipped_inputs)} entries."]
    if summary.failures:
        lines += ["", "### Failed files", ""]
        lines += [f"- `{failure.relative_path}`: {failure.error}" for failure in summary.failures]
    return "\n".join(lines) + "\n"
