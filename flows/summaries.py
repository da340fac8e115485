"""What the command prints of a run: a few lines a person reads (the run's whole record is
`--json`), and the named recipes."""

from __future__ import annotations

from typing import Any

__all__ = ["recipes_text", "scoring_summary_text", "training_summary_text"]


def recipes_text() -> str:
    """Each named recipe: its name, what it is, the options it sets, what it measured."""
    from flows.cli import option_flag
    from tasks.training.recipes import RECIPES

    blocks = []
    for recipe in RECIPES.values():
        settings = recipe.settings.items()
        options = " ".join(f"{option_flag(name)} {value}" for name, value in settings)
        blocks.append(
            f"{recipe.name}{' (default)' if recipe.name == 'tutorial' else ''}: {recipe.summary}\n"
            f"  sets:     {options or 'nothing: every default of train --help'}\n"
            f"  measured: {recipe.measured}"
        )
    return "\n".join(blocks)


def training_summary_text(record: dict[str, Any]) -> str:
    """A few lines of what a training run made: the version, its metrics, promoted or not, where."""
    metrics = record["metrics"]
    promotion = "promoted to champion" if record["promoted"] else "not promoted"
    lines = [
        f"{record['model_name']} v{record['version']}: test accuracy "
        f"{metrics['test_accuracy']:.4f}, AUC {metrics['test_auc']:.4f} on "
        f"{metrics['test_rows']:,} reviews ({record['recipe']} recipe, {record['architecture']}, "
        f"{record['epochs_run']} epochs in {record['training_seconds']:.0f} s, "
        f"weights of epoch {record['best_epoch']})",
        f"{promotion}: {record['promotion_reason']}",
        f"model: {record['path']}",
    ]
    if record.get("flow_run_url"):
        lines.append(f"run: {record['flow_run_url']}")
    return "\n".join(lines)


def scoring_summary_text(record: dict[str, Any]) -> str:
    """A few lines of what a scoring run did: files, rows by status, outputs, the run's page."""
    from tasks.scoring import ScoringSummary

    summary = ScoringSummary.model_validate(record)
    statuses = {"ok": summary.rows_ok, **summary.rejected_by_reason}
    status_text = ", ".join(f"{status} {count:,}" for status, count in statuses.items() if count)
    lines = [
        f"{summary.model_name} v{summary.model_version}: {summary.files_scored} files scored, "
        f"{summary.files_skipped} skipped, {summary.files_failed} failed; "
        f"{summary.rows:,} rows ({status_text or 'none'}), {summary.rows_scored:,} scored now",
        f"outputs: {summary.output_dir} ({len(summary.completed_folders)} folders complete)",
    ]
    kept, replaced = summary.outputs_of_vanished_inputs, summary.outputs_replaced
    if kept or replaced or summary.outputs_retired:
        lines.append(
            f"outputs replaced {len(replaced)}, kept for gone inputs {len(kept)}, "
            f"retired {len(summary.outputs_retired)}"
        )
    earlier = summary.earlier_versions
    if earlier.files:
        verb = "rescored" if earlier.rescored else "kept (--rescore-history rescores them)"
        lines.append(f"history {verb}: {earlier.words}")
    table = summary.table
    if table is not None and table.error:
        lines.append(f"table: not updated: {table.error}")
    elif table is not None and table.committed:
        lines.append(
            f"table: {table.table} version {table.version} (rows of {table.files_added} "
            f"files added, {table.rows_added:,} rows; of {table.files_removed} removed"
            + (f"; landed after {table.refusals} refused tries)" if table.refusals else ")")
        )
    elif table is not None and table.version is not None:
        lines.append(f"table: {table.table} version {table.version} (nothing new)")
    if summary.drift.drifted:
        lines.append(f"drift: {summary.drift.message}")
    if summary.words is not None and summary.words.verdict == "changed":
        lines.append(f"words: {summary.words.message}")
    if summary.flow_run_url:
        lines.append(f"run: {summary.flow_run_url}")
    return "\n".join(lines)
