"""Benchmark the scoring flow against plain Keras `predict` and a naive script; print every ratio
of issue 10 from one run.

    python bench/bench_scoring.py                          # 200k and 1M rows, tutorial LSTM
    python bench/bench_scoring.py --rows 20000 --naive-rows 5000 --raw-rows 20000   # quick look

Every measurement runs in its own subprocess, so each peak RSS (ru_maxrss) is that run's alone.
Input is IMDB review text from ../shared/data/imdb repeated to size (ids made unique), written
once into --work-dir and reused. Without --model-store the tutorial architecture, untrained
(throughput does not depend on the weights), is registered in a temporary store with the Keras
word index.

Measured:
  raw        plain Keras model.predict(batch_size=1024) of the loaded version on ids already
             padded: the bar. Measured before and after the flows; the faster run is the bar.
  flow       run_scoring end to end (Prefect run, model verify and load, XLA compile, read,
             tokenize, predict, write, summary) in a process that has imported its modules
  startup    the fixed part on its own: imports, model load, compile, a flow run on one row
  naive      pandas reads everything, Python tokenizes, model.predict at its default batch size
             (timed after its model load, which is generous to it)
  stages     the flow's per-batch work one stage at a time: CPU microseconds per row
  overlap    one process, interleaved, so the ratios share one machine load: raw predict,
             the compiled predict loop, score_file with and without the tokenizing thread; and
             the largest difference between score_file's scores and model.predict's
  tokenizer  the vectorized tokenizer against Keras's rule in plain Python, over every IMDB text
  recipes    every architecture (tutorial settings, untrained): score_file against its own
             model.predict, and whether its embedding was folded into its LSTM
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script: this folder is on sys.path.
from scoring_children import CHILDREN

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data" / "imdb"
MODEL_NAME = "bench-lstm"
DEFAULT_BATCH_SIZE = 4096  # tasks.scoring.DEFAULT_BATCH_SIZE, without importing it here
# Issue 10's targets.
TARGET_RAW_RATIO, TARGET_NAIVE_RATIO, TARGET_DIFFERENCE, TARGET_RSS_RATIO = 1.5, 5.0, 1e-5, 1.3
# Issue 14's: the best recipe's flow against the tutorial LSTM's.
TARGET_RECIPE_RATIO = 5.0


# ----------------------------------------------------------------------------- preparation


def write_input(data_dir: Path, rows: int, path: Path, row_group_rows: int = 10_000) -> Path:
    """IMDB texts repeated to `rows`, streamed to Parquet so this step's memory stays small."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.read_metadata(path).num_rows == rows:
        return path
    source = pa.concat_tables(
        [
            pq.read_table(data_dir / name, columns=["review_id", "text"])
            for name in ("train.parquet", "test.parquet")
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    schema = pa.schema([("review_id", pa.string()), ("text", pa.string())])
    written = 0
    with pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
        repeat = 0
        while written < rows:
            take = min(source.num_rows, rows - written)
            chunk = source.slice(0, take)
            ids = [f"{review_id}#{repeat}" for review_id in chunk.column("review_id").to_pylist()]
            table = pa.table({"review_id": ids, "text": chunk.column("text")}, schema=schema)
            writer.write_table(table, row_group_size=row_group_rows)
            written += take
            repeat += 1
    os.replace(temporary, path)
    return path


# Issue 14: the best recipe (the README's command) against the tutorial LSTM, both through the
# flow: (data settings, recipe fields changed from the tutorial's).
FLOW_RECIPES: dict[str, tuple[dict[str, int], dict[str, Any]]] = {
    "tutorial-lstm": ({"num_words": 10_000, "maxlen": 250}, {}),
    "ngrams-nb-50k-1000-1m": (
        {"num_words": 50_000, "maxlen": 1000},
        {
            "architecture": "ngrams",
            "units": 16,
            "dropout_rate": 0.5,
            "hash_buckets": 1_048_576,
            "ngram_weighting": "nb",
        },
    ),
}


def register_recipe_model(
    store_root: Path,
    data_dir: Path,
    name: str = MODEL_NAME,
    sizes: dict[str, int] | None = None,
    changes: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """A recipe, untrained (throughput does not depend on the weights), as `name`'s champion
    with the Keras word index; by default the tutorial's Embedding(10000, 32) -> LSTM(32) ->
    Dense(1, sigmoid) on 250 ids."""
    from model_store import ModelStore
    from tasks.text import Vocabulary
    from tasks.training import TrainingConfig, build_model

    sizes = sizes or {"num_words": 10_000, "maxlen": 250}
    config = TrainingConfig(**(changes or {}))
    vocabulary = Vocabulary.from_word_index_file(data_dir / "imdb_word_index.json", **sizes)
    model = build_model(config, **sizes)
    store = ModelStore(store_root)
    version = store.register(
        name,
        model,
        vocabulary.to_dict(),
        params={"architecture": config.architecture, "note": "untrained, for throughput only"},
        metrics={},
        data_fingerprint="bench",
    )
    store.set_alias(name, "champion", version.version)
    return name, "champion"


def run_child(kind: str, args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """One measurement in a fresh process; returns the JSON it prints last."""
    options = {
        "input": None,
        "output": None,
        "rows": 0,
        "model_store": args.model_store,
        "model_name": args.model_name,
        "ref": args.ref,
        "batch_size": args.batch_size,
        "max_concurrent_files": args.max_concurrent_files,
        "data_dir": args.data_dir,
        "raw_rows": args.raw_rows,
    }
    options.update(overrides)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_API_URL": args.api_url}
    completed = subprocess.run(
        command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main


@contextlib.contextmanager
def prefect_api(api_url: str | None) -> Iterator[str]:
    """The given Prefect API, or a temporary server started once, so no run pays for one."""
    if api_url:
        yield api_url
        return
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield str(PREFECT_API_URL.value())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="200000,1000000", help="comma-separated flow sizes")
    parser.add_argument("--raw-rows", type=int, default=50_000, help="rows for raw predict")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="rows for the naive run")
    parser.add_argument("--stage-rows", type=int, default=20_000, help="rows for the breakdown")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--recipe-rows", type=int, default=20_000, help="rows per architecture")
    parser.add_argument("--flow-runs", type=int, default=2, help="runs per size; the best counts")
    parser.add_argument(
        "--recipe-flow-rows",
        type=int,
        default=200_000,
        help="rows for each recipe of FLOW_RECIPES through the flow (0: skip)",
    )
    parser.add_argument("--max-concurrent-files", type=int, default=1)
    parser.add_argument("--model-store", default=None, help="store root; default: a temp store")
    parser.add_argument("--model-name", default=None)
    parser.add_argument("--ref", default="champion")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="IMDB Parquet folder")
    parser.add_argument("--work-dir", default=str(REPOSITORY / "bench" / "results" / "work"))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument(
        "--api-url",
        default=os.environ.get("PREFECT_API_URL"),
        help="Prefect API to use; default: PREFECT_API_URL, else a temporary server",
    )
    # For the measured children only.
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _check(value: float, target: float, higher_is_better: bool = True) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "NOT MET"


def print_summary(results: dict[str, Any], sizes: list[int]) -> None:
    raw_speed = max(run["rows_per_second"] for run in results["raw"])
    naive_speed = results["naive"]["rows_per_second"]
    print(f"\nsummary (load average at start {results['load_average']})")
    print(
        "  bar: plain Keras predict(batch_size=1024), the best of "
        f"{len(results['raw'])} measurements through the run: {raw_speed:,.0f} rows/s"
    )
    print(f"  naive script: {naive_speed:,.0f} rows/s")
    print("  | measurement | value | target | |")
    print("  |---|---|---|---|")
    for size in sizes:
        flow = results["flow"][size]
        speed = flow["rows_per_second"]
        print(
            f"  | flow {size:,} rows: rows/s | {speed:,.0f} | | |\n"
            f"  | flow {size:,} / raw predict | {speed / raw_speed:.2f}x | "
            f">= {TARGET_RAW_RATIO}x | {_check(speed / raw_speed, TARGET_RAW_RATIO)} |\n"
            f"  | flow {size:,} / naive script | {speed / naive_speed:.2f}x | "
            f">= {TARGET_NAIVE_RATIO}x | {_check(speed / naive_speed, TARGET_NAIVE_RATIO)} |"
        )
    difference = results["overlap"]["max_abs_difference_from_keras_predict"]
    print(
        f"  | largest score difference from Keras predict | {difference:.1e} | "
        f"<= {TARGET_DIFFERENCE:.0e} | {_check(difference, TARGET_DIFFERENCE, False)} |"
    )
    if len(sizes) >= 2:
        small, large = results["flow"][sizes[0]], results["flow"][sizes[-1]]
        rss_ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        print(
            f"  | peak RSS {sizes[-1]:,} / {sizes[0]:,} rows | {rss_ratio:.2f}x "
            f"({large['peak_rss_mib']:.0f} / {small['peak_rss_mib']:.0f} MiB) | "
            f"<= {TARGET_RSS_RATIO}x | {_check(rss_ratio, TARGET_RSS_RATIO, False)} |"
        )
    startup = results["startup"]
    parts = ", ".join(f"{key} {value}" for key, value in startup.items() if key != "total_seconds")
    print(f"  | fixed start-up, seconds | {startup['total_seconds']} ({parts}) | a few | |")
    tokenizer = results["tokenizer"]
    print(
        f"  | tokenizer: IMDB texts with ids different from Keras's rule | "
        f"{tokenizer['rows_with_different_ids']} of {tokenizer['texts']:,} | 0 | "
        f"{_check(tokenizer['rows_with_different_ids'], 0, False)} |\n"
        f"  | tokenizer speed-up over Python | {tokenizer['speedup']}x "
        f"({tokenizer['vectorized_microseconds_per_text']} vs "
        f"{tokenizer['python_microseconds_per_text']} us/text) | | |"
    )
    overlap = results["overlap"]["best_of_two"]
    print(
        "  | same process: score_file with the tokenizing thread / raw predict | "
        f"{overlap['score_file_prefetch']['rows_per_second'] / overlap['raw_predict_1024']['rows_per_second']:.2f}x | | |"  # noqa: E501
    )
    print("  recipes (untrained, tutorial settings): score_file / its own model.predict")
    for architecture, recipe in results["recipes"]["recipes"].items():
        folded = ", embedding folded into the LSTM" if recipe["embedding_folded_into_lstm"] else ""
        print(
            f"    {architecture:7} {recipe['score_file_rows_per_second']:9,.0f} rows/s = "
            f"{recipe['ratio']:.2f}x its predict ({recipe['raw_predict_rows_per_second']:,.0f}); "
            f"largest difference {recipe['max_abs_difference']:.1e}{folded}"
        )


def print_recipe_flows(results: dict[str, Any]) -> None:
    flows = results.get("recipe_flows")
    if not flows:
        return
    lstm = flows["tutorial-lstm"]["rows_per_second"]
    print("  recipes through the flow (untrained, same input), against the tutorial LSTM")
    for name, flow in flows.items():
        ratio = flow["rows_per_second"] / lstm
        target = (
            ""
            if name == "tutorial-lstm"
            else f" (target >= {TARGET_RECIPE_RATIO}x: {_check(ratio, TARGET_RECIPE_RATIO)})"
        )
        print(
            f"    {name:24} {flow['rows_per_second']:9,.0f} rows/s = {ratio:.2f}x{target}; "
            f"peak RSS {flow['peak_rss_mib']:.0f} MiB"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        args.rows = int(args.rows)
        print(json.dumps(CHILDREN[args.child](args)))
        return 0

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir)
    sizes = [int(size) for size in args.rows.split(",") if size.strip()]
    results: dict[str, Any] = {
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=work_dir)))
        args.api_url = stack.enter_context(prefect_api(args.api_url))
        if args.model_store is None:
            args.model_store = str(scratch / "models")
            args.model_name, args.ref = register_recipe_model(Path(args.model_store), data_dir)
        elif args.model_name is None:
            from flows.settings import get_settings

            args.model_name = get_settings().model_name

        sample = write_input(
            data_dir,
            max(args.raw_rows, args.naive_rows, args.stage_rows, args.recipe_rows),
            work_dir / "inputs" / "sample.parquet",
        )

        def measure(kind: str, label: str, **overrides: Any) -> dict[str, Any]:
            result = run_child(kind, args, **overrides)
            print(f"{label}: {result}", flush=True)
            return result

        results["raw"] = [
            measure("raw", "raw predict(batch_size=1024)", input=sample, rows=args.raw_rows)
        ]
        results["tokenizer"] = measure("tokenizer", "tokenizer parity", input=data_dir)
        results["startup"] = measure("startup", "fixed start-up", output=scratch / "startup")
        results["stages"] = measure(
            "stages",
            "stages (CPU per row, sequential)",
            input=sample,
            output=scratch,
            rows=args.stage_rows,
        )
        results["overlap"] = measure(
            "overlap", "same-process A/B", input=sample, output=scratch, rows=args.stage_rows
        )
        results["recipes"] = measure(
            "recipes", "recipes", input=sample, output=scratch / "recipes", rows=args.recipe_rows
        )
        naive_out = scratch / "naive"
        naive_out.mkdir()
        results["naive"] = measure(
            "naive", "naive script", input=sample, output=naive_out, rows=args.naive_rows
        )
        results["flow"] = {}
        for size in sizes:
            path = write_input(
                data_dir, size, work_dir / "inputs" / f"rows{size}" / "reviews.parquet"
            )
            runs = [
                measure(
                    "flow",
                    f"flow {size} rows, run {run + 1}",
                    input=path,
                    output=scratch / f"out{size}-{run}",
                    rows=size,
                )
                for run in range(args.flow_runs)
            ]
            results["flow"][size] = max(runs, key=lambda flow: flow["rows_per_second"])
            results["raw"] += [
                {"rows_per_second": flow["raw_rows_per_second_after"]} for flow in runs
            ]
        results["raw"].append(measure("raw", "raw predict again", input=sample, rows=args.raw_rows))
        if args.recipe_flow_rows:
            path = write_input(
                data_dir,
                args.recipe_flow_rows,
                work_dir / "inputs" / f"rows{args.recipe_flow_rows}" / "reviews.parquet",
            )
            recipe_store = scratch / "recipe-models"
            results["recipe_flows"] = {}
            for name, (recipe_sizes, changes) in FLOW_RECIPES.items():
                register_recipe_model(recipe_store, data_dir, name, recipe_sizes, changes)
                results["recipe_flows"][name] = measure(
                    "flow",
                    f"flow {args.recipe_flow_rows} rows, recipe {name}",
                    input=path,
                    output=scratch / f"recipe-out-{name}",
                    rows=args.recipe_flow_rows,
                    model_store=recipe_store,
                    model_name=name,
                    ref="champion",
                )
    print_summary(results, sizes)
    print_recipe_flows(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
