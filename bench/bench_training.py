"""Train every built-in recipe on the real IMDB Parquet; print a table of accuracy, AUC, epochs
used, seconds per epoch, scoring rows/s and behaviour checks, and choose on validation accuracy.

    python bench/bench_training.py --data ../shared/data/imdb                 # every recipe
    python bench/bench_training.py --data ../shared/data/imdb --only ngrams   # one group
    python bench/bench_training.py --data ../shared/data/imdb --seeds 1       # one seed each

Choosing honestly: recipes are compared on the validation split (the best epoch's validation
accuracy); the test split is read once per trained model, to report.

Targets (issue 5): a built-in recipe at >= 0.91 mean test accuracy over 3 seeds, each training in
<= 2 minutes on 2 cores, scoring at >= 5x the tutorial LSTM's rows/s; the tutorial LSTM at
>= 0.86 mean over 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tasks.training import TrainingConfig, build_model, train_model
from tasks.training.data import PaddedData, load_parquet_reviews, pad_data
from tasks.training.evaluation import evaluate_model
from tasks.training.recipes import RECIPES

# The behaviour checks the tests run too (testkit/behaviour.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testkit.behaviour import behaviour_failures, scorer

TUTORIAL = TrainingConfig()
BEST = RECIPES["best"].settings
DATA = ("num_words", "maxlen")
# The n-gram recipes' common settings: one small hidden layer, stopped by the validation loss.
NGRAMS = TrainingConfig(
    architecture="ngrams", units=16, dropout_rate=0.5, epochs=10, early_stopping_patience=1
)


def _with(config: TrainingConfig, **changes: object) -> TrainingConfig:
    """A copy with some fields changed, checked like any recipe."""
    return TrainingConfig.model_validate({**config.model_dump(), **changes})


# (name, group, data settings, recipe)
RUNS: list[tuple[str, str, dict[str, int], TrainingConfig]] = [
    ("tutorial-lstm", "tutorial", {"num_words": 10_000, "maxlen": 250}, TUTORIAL),
    (
        "gru",
        "variants",
        {"num_words": 10_000, "maxlen": 250},
        _with(TUTORIAL, architecture="gru"),
    ),
    (
        "bilstm",
        "variants",
        {"num_words": 10_000, "maxlen": 250},
        _with(TUTORIAL, architecture="bilstm"),
    ),
    (
        "cnn",
        "cnn",
        {"num_words": 20_000, "maxlen": 500},
        _with(
            TUTORIAL,
            architecture="cnn",
            embedding_dim=64,
            units=64,
            kernel_size=5,
            dropout_rate=0.5,
            early_stopping_patience=1,
        ),
    ),
    ("bigrams-500", "ngrams", {"num_words": 20_000, "maxlen": 500}, NGRAMS),
    ("bigrams-1000", "ngrams", {"num_words": 20_000, "maxlen": 1000}, NGRAMS),
    (
        "bigrams-1000-256k",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=262_144),
    ),
    (
        "bigrams-1000-256k-count",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=262_144, ngram_weighting="count"),
    ),
    (
        "trigrams-1000-256k",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, ngram_order=3, hash_buckets=262_144),
    ),
    (
        "bigrams-1000-1m",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=1_048_576),
    ),
    (
        "bigrams-1000-1m-drop02",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=1_048_576, dropout_rate=0.2),
    ),
    (
        "bigrams-1000-1m-32",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=1_048_576, units=32),
    ),
    (
        "bigrams-1000-1m-50k",
        "ngrams",
        {"num_words": 50_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=1_048_576),
    ),
    (
        "nb-bigrams-1000-1m",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=1_048_576, ngram_weighting="nb"),
    ),
    (
        # `--recipe best` (tasks/training/recipes.py), its settings taken from there.
        "nb-bigrams-1000-1m-50k",
        "ngrams",
        {name: BEST[name] for name in ("num_words", "maxlen")},
        _with(TUTORIAL, **{name: value for name, value in BEST.items() if name not in DATA}),
    ),
    (
        "nb-trigrams-1000-2m",
        "ngrams",
        {"num_words": 20_000, "maxlen": 1000},
        _with(NGRAMS, ngram_order=3, hash_buckets=2_097_152, ngram_weighting="nb"),
    ),
    (
        "bigrams-1000-256k-50k",
        "ngrams",
        {"num_words": 50_000, "maxlen": 1000},
        _with(NGRAMS, hash_buckets=262_144),
    ),
]


def scoring_rows_per_second(config: TrainingConfig, data: PaddedData, **sizes: int) -> float:
    """Prediction throughput of the recipe's shape (weights do not change it) on train rows,
    through scoring's two steps (prepare, then predict) in its blocks of 4,096 rows, one
    thread: the model's share of a scoring run, without reading and tokenizing."""
    from tasks.scoring import scoring_steps

    prepare, predict_prepared = scoring_steps(build_model(config, **sizes))
    rows = data.x_train[:16_384]
    predict_prepared(prepare(rows[:4096]))  # compile first
    started = time.perf_counter()
    for start in range(0, len(rows), 4096):
        predict_prepared(prepare(rows[start : start + 4096]))
    return len(rows) / (time.perf_counter() - started)


def summarize(name: str, rows: list[dict]) -> dict:
    """One table row per recipe: means over its seeds."""
    accuracy = [row["accuracy"] for row in rows]
    return {
        "recipe": name,
        "seeds": len(rows),
        "val_accuracy": statistics.mean(row["val_accuracy"] for row in rows),
        "accuracy": statistics.mean(accuracy),
        "spread": max(accuracy) - min(accuracy),
        "auc": statistics.mean(row["auc"] for row in rows),
        "epochs_run": statistics.mean(row["epochs_run"] for row in rows),
        "best_epoch": statistics.mean(row["best_epoch"] for row in rows),
        "seconds_per_epoch": statistics.mean(row["seconds_per_epoch"] for row in rows),
        "train_seconds": max(row["train_seconds"] for row in rows),
        "rows_per_second": rows[0]["rows_per_second"],
        "behaviour_failures": max(len(row["behaviour_failures"]) for row in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imdb"))
    parser.add_argument("--only", help="run one group: tutorial, variants, cnn or ngrams")
    parser.add_argument("--recipes", nargs="*", help="run these recipes by name")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per recipe (1, 2, 3 ...)")
    parser.add_argument("--epochs", type=int, help="override every run's epoch count (quick check)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    arguments = parser.parse_args()

    runs: dict[str, list[dict]] = {}
    datasets: dict[tuple[int, int], tuple[PaddedData, object]] = {}
    for name, group, data_settings, config in RUNS:
        if (arguments.only and group != arguments.only) or (
            arguments.recipes and name not in arguments.recipes
        ):
            continue
        key = (data_settings["num_words"], data_settings["maxlen"])
        if key not in datasets:
            started = time.perf_counter()
            labeled = load_parquet_reviews(arguments.data, **data_settings)
            datasets[key] = (pad_data(labeled), labeled.vocabulary)
            print(f"# loaded {key} in {time.perf_counter() - started:.1f}s", flush=True)
        data, vocabulary = datasets[key]
        rows_per_second = scoring_rows_per_second(config, data, **data_settings)
        for seed in range(1, arguments.seeds + 1):
            run_config = _with(config, seed=seed)
            if arguments.epochs:
                run_config = _with(run_config, epochs=arguments.epochs)
            trained = train_model(data, run_config, **data_settings)
            epochs_run = len(trained.history["loss"])
            metrics = evaluate_model(trained.model, data)  # the one read of the test split
            row = {
                "recipe": name,
                **data_settings,
                "config": run_config.model_dump(),
                "seed": seed,
                "val_accuracy": trained.history["val_accuracy"][trained.best_epoch - 1],
                "accuracy": metrics.test_accuracy,
                "auc": metrics.test_auc,
                "epochs_run": epochs_run,
                "best_epoch": trained.best_epoch,
                "train_seconds": round(trained.seconds, 1),
                "seconds_per_epoch": round(trained.seconds / epochs_run, 1),
                "rows_per_second": round(rows_per_second),
                "behaviour_failures": behaviour_failures(scorer(trained.model, vocabulary)),
            }
            runs.setdefault(name, []).append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)

    table = [summarize(name, rows) for name, rows in runs.items()]
    print(
        "\n| recipe | seeds | val acc | test acc (mean) | spread | AUC | epochs run (best) "
        "| s/epoch | max train s | scoring rows/s | behaviour failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        print(
            f"| {row['recipe']} | {row['seeds']} | {row['val_accuracy']:.4f} "
            f"| {row['accuracy']:.4f} | {row['spread']:.4f} | {row['auc']:.4f} "
            f"| {row['epochs_run']:.1f} ({row['best_epoch']:.1f}) | {row['seconds_per_epoch']:.1f} "
            f"| {row['train_seconds']:.1f} | {row['rows_per_second']:,} "
            f"| {row['behaviour_failures']} |"
        )
    chosen = max(table, key=lambda row: row["val_accuracy"], default=None)
    if chosen:
        print(
            f"\nchosen on validation accuracy: {chosen['recipe']} "
            f"(val {chosen['val_accuracy']:.4f})"
            f": test accuracy {chosen['accuracy']:.4f} mean over {chosen['seeds']} seeds, "
            f"longest training {chosen['train_seconds']:.1f}s (target >= 0.91 within 120 s)"
        )
        tutorial = next((row for row in table if row["recipe"] == "tutorial-lstm"), None)
        if tutorial:
            print(
                f"tutorial LSTM: {tutorial['accuracy']:.4f} mean over {tutorial['seeds']} seeds "
                f"(target >= 0.86); chosen recipe scores at "
                f"{chosen['rows_per_second'] / tutorial['rows_per_second']:.1f}x its rows/s "
                "(target >= 5x)"
            )
    for name, rows in runs.items():
        for failure in {line for row in rows for line in row["behaviour_failures"]}:
            print(f"behaviour {name}: {failure}")
    if arguments.json:
        arguments.json.write_text(json.dumps({"runs": runs, "table": table}, indent=2))


if __name__ == "__main__":
    main()
