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
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------------ measured children


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _import_everything() -> float:
    """Seconds to import the flow and the libraries it loads lazily (TensorFlow, Keras)."""
    started = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    import flows.scoring  # noqa: F401
    import tasks.layers  # noqa: F401

    return round(time.perf_counter() - started, 2)


def child_flow(args: argparse.Namespace) -> dict[str, Any]:
    import_seconds = _import_everything()
    from flows.scoring import ScoreParams, run_scoring

    params = ScoreParams(
        input_path=args.input,
        output_root=args.output,
        model_store_root=args.model_store,
        model_name=args.model_name,
        model_ref=args.ref,
        batch_size=args.batch_size,
        max_concurrent_files=args.max_concurrent_files,
    )
    started = time.perf_counter()
    summary = run_scoring(params)
    seconds = time.perf_counter() - started
    peak = round(peak_rss_mib(), 1)  # before the bar below adds its own arrays
    return {
        "rows": summary.rows_scored,
        "seconds": round(seconds, 2),
        "rows_per_second": round(summary.rows_scored / seconds, 1),
        "scoring_phase_rows_per_second": summary.rows_per_second,
        "import_seconds": import_seconds,
        "peak_rss_mib": peak,
        # The bar again, in this process right after the flow: the machine's load drifts.
        "raw_rows_per_second_after": _raw_speed(args, rounds=2),
    }


def _raw_speed(args: argparse.Namespace, rounds: int = 1) -> float:
    """Best rows/s of plain model.predict(batch_size=1024) on the first --raw-rows of --input."""
    import pyarrow.parquet as pq

    from tasks.text import encode_texts, pad_sequences

    model, vocabulary = _load(args)
    texts = pq.read_table(args.input, columns=["text"]).column("text").slice(0, args.raw_rows)
    token_ids = pad_sequences(encode_texts(texts, vocabulary), vocabulary.maxlen)
    model.predict(token_ids[:2048], batch_size=1024, verbose=0)  # build and trace first
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        model.predict(token_ids, batch_size=1024, verbose=0)
        best = max(best, len(token_ids) / (time.perf_counter() - started))
    return round(best, 1)


def child_startup(args: argparse.Namespace) -> dict[str, Any]:
    """The fixed cost of a run, part by part, in a fresh process."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import_seconds = _import_everything()
    from flows.scoring import ScoreParams, run_scoring
    from tasks.scoring import load_scoring_model, resolve_model

    started = time.perf_counter()
    model = load_scoring_model(resolve_model(args.model_store, args.model_name, args.ref))
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(np.zeros((args.batch_size, model.vocabulary.maxlen), dtype=np.int32))
    compile_seconds = time.perf_counter() - started
    inputs = Path(args.output) / "one-row"
    inputs.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["A fine film."]}), inputs / "one.parquet")
    params = ScoreParams(
        input_path=str(inputs),
        output_root=str(Path(args.output) / "one-row-out"),
        model_store_root=args.model_store,
        model_name=args.model_name,
        model_ref=args.ref,
        batch_size=args.batch_size,
    )
    started = time.perf_counter()
    run_scoring(params)  # the model is loaded: the Prefect run, planning, the tail's compile
    run_seconds = time.perf_counter() - started
    parts = {
        "import_seconds": import_seconds,
        "model_verify_and_load_seconds": round(load_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
        "flow_run_on_one_row_seconds": round(run_seconds, 2),
    }
    return {**parts, "total_seconds": round(sum(parts.values()), 2)}


def _load(args: argparse.Namespace):
    from model_store import ModelStore
    from tasks.text import Vocabulary

    loaded = ModelStore(args.model_store).load(args.model_name, args.ref)
    return loaded.model, Vocabulary.from_dict(loaded.vocabulary)


def child_raw(args: argparse.Namespace) -> dict[str, Any]:
    args.raw_rows = args.rows
    return {
        "rows": args.rows,
        "rows_per_second": _raw_speed(args, rounds=2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def child_naive(args: argparse.Namespace) -> dict[str, Any]:
    """What a first script does: everything in memory, default predict, one write."""
    import numpy as np
    import pandas as pd

    from tasks.text import encode_texts, pad_sequences

    model, vocabulary = _load(args)
    started = time.perf_counter()  # after the model load: generous to the naive script
    frame = pd.read_parquet(args.input).head(args.rows)
    token_ids = pad_sequences(encode_texts(frame["text"].tolist(), vocabulary), vocabulary.maxlen)
    scores = model.predict(token_ids, verbose=0).reshape(-1)
    frame["score"] = scores.astype(np.float32)
    frame["label"] = np.where(scores >= 0.5, "positive", "negative")
    frame.drop(columns=["text"]).to_parquet(Path(args.output) / "naive.parquet")
    seconds = time.perf_counter() - started
    return {
        "rows": len(frame),
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(frame) / seconds, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def child_stages(args: argparse.Namespace) -> dict[str, Any]:
    """Where the flow's time goes: its per-batch work one stage at a time (no overlap), in
    wall seconds and in CPU seconds (process time, so TensorFlow's own threads count). CPU
    seconds per row do not depend on how busy the shared machine is."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.scoring import classify_texts, compiled_predictor
    from tasks.text import encode_texts, pad_sequences

    model, vocabulary = _load(args)
    predict = compiled_predictor(model)
    stages = ("read", "classify", "tokenize", "pad", "predict", "write")
    wall = dict.fromkeys(stages, 0.0)
    cpu = dict.fromkeys(stages, 0.0)
    predict(np.zeros((args.batch_size, vocabulary.maxlen), dtype=np.int32))  # trace first
    predict(np.zeros((args.batch_size - 1, vocabulary.maxlen), dtype=np.int32))
    raw_input = pad_sequences(encode_texts(["warm up"] * 2048, vocabulary), vocabulary.maxlen)
    model.predict(raw_input, batch_size=1024, verbose=0)
    parquet = pq.ParquetFile(args.input, pre_buffer=False)
    batches = parquet.iter_batches(batch_size=args.batch_size)
    sink = pq.ParquetWriter(Path(args.output) / "stages.parquet", pa.schema([("s", pa.float32())]))
    rows = 0
    all_ids = []
    marks = [time.perf_counter(), time.process_time()]

    def lap(stage: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        wall[stage] += now[0] - marks[0]
        cpu[stage] += now[1] - marks[1]
        marks[:] = now

    while rows < args.rows:
        marks[:] = [time.perf_counter(), time.process_time()]
        batch = next(batches, None)
        if batch is None:
            break
        lap("read")
        _, _, texts = classify_texts(batch.column("text"))
        lap("classify")
        sequences = encode_texts(texts, vocabulary)
        lap("tokenize")
        token_ids = pad_sequences(sequences, vocabulary.maxlen)
        lap("pad")
        scores = predict(token_ids)
        lap("predict")
        sink.write_table(pa.table({"s": scores}))
        lap("write")
        all_ids.append(token_ids)
        rows += batch.num_rows
    sink.close()
    # The baseline on the same ids, for CPU per row: model.predict(batch_size=1024).
    padded = np.concatenate(all_ids)
    started, cpu_started = time.perf_counter(), time.process_time()
    model.predict(padded, batch_size=1024, verbose=0)
    raw_wall, raw_cpu = time.perf_counter() - started, time.process_time() - cpu_started

    def per_row(seconds: float) -> float:
        return round(seconds / rows * 1e6, 1)

    preparing = sum(cpu[stage] for stage in ("read", "classify", "tokenize", "pad"))
    # With the tokenizing thread and two free cores, a batch costs the larger of its two
    # threads' CPU (and at least half the total): a projection, not a measurement.
    projected = rows / max(preparing, cpu["predict"] + cpu["write"], sum(cpu.values()) / 2)
    return {
        "rows": rows,
        "batch_size": args.batch_size,
        "cpu_microseconds_per_row": {stage: per_row(cpu[stage]) for stage in stages},
        "wall_microseconds_per_row": {stage: per_row(wall[stage]) for stage in stages},
        "raw_predict_1024_cpu_microseconds_per_row": per_row(raw_cpu),
        "raw_predict_1024_cores_busy": round(raw_cpu / raw_wall, 2),
        "cpu_share_tokenizing": round(preparing / sum(cpu.values()), 3),
        "projected_flow_rows_per_second_on_2_free_cores": round(projected, 1),
        "raw_predict_rows_per_second_per_cpu_second": round(rows / raw_cpu, 1),
    }


def child_overlap(args: argparse.Namespace) -> dict[str, Any]:
    """A/B in one process under the same load: the naive script's tokenize + default predict,
    raw predict, a predict_on_batch loop, and the flow's per-file function with and without the
    tokenizing thread. Best of two rounds."""
    import pyarrow.parquet as pq

    from tasks.scoring import (
        ResolvedModel,
        ScoringJob,
        ScoringModel,
        score_file,
        scoring_steps,
    )
    from tasks.text import encode_texts, pad_sequences

    model, vocabulary = _load(args)
    prepare, predict_prepared = scoring_steps(model)
    scoring_model = ScoringModel(args.model_name, 1, vocabulary, predict_prepared, prepare)
    table = pq.read_table(args.input).slice(0, args.rows)
    path = Path(args.output) / "overlap.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    texts = table.column("text").to_pylist()
    token_ids = pad_sequences(encode_texts(texts, vocabulary), vocabulary.maxlen)
    model.predict(token_ids[:2048], batch_size=1024, verbose=0)
    scoring_model.predict(token_ids[: args.batch_size])
    scoring_model.predict(token_ids[: args.batch_size - 1])  # both traces done up front

    def file_run(depth: int) -> None:
        job = ScoringJob(
            input_path=str(path),
            relative_path="overlap.parquet",
            output_path=str(Path(args.output) / f"depth{depth}" / "overlap.parquet"),
            model=ResolvedModel(store_root="", name=args.model_name, version=1),
            batch_size=args.batch_size,
        )
        Path(job.output_path).unlink(missing_ok=True)
        score_file(job, scoring_model, prefetch_batches=depth)

    def on_batch() -> None:
        for start in range(0, len(token_ids), args.batch_size):
            scoring_model.predict(token_ids[start : start + args.batch_size])

    def naive() -> None:  # the naive script's work after its read: tokenize, default predict
        ids = pad_sequences(encode_texts(texts, vocabulary), vocabulary.maxlen)
        model.predict(ids, verbose=0)

    runs = {
        "naive_tokenize_and_predict_default_batch": naive,
        "raw_predict_1024": lambda: model.predict(token_ids, batch_size=1024, verbose=0),
        "compiled_predict_loop": on_batch,
        "score_file_prefetch": lambda: file_run(2),
        "score_file_serial": lambda: file_run(0),
    }
    best: dict[str, dict[str, float]] = {}
    for _ in range(2):
        for name, run in runs.items():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            run()
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
            speed = round(len(texts) / wall, 1)
            if name not in best or speed > best[name]["rows_per_second"]:
                best[name] = {"rows_per_second": speed, "cores_busy": round(cpu / wall, 2)}
    expected = model.predict(token_ids, batch_size=1024, verbose=0).reshape(-1)
    scored = pq.read_table(Path(args.output) / "depth2" / "overlap.parquet", columns=["score"])
    difference = float(abs(scored.column("score").to_numpy() - expected).max())
    return {
        "rows": len(texts),
        "batch_size": args.batch_size,
        "best_of_two": best,
        "max_abs_difference_from_keras_predict": difference,
    }


def child_tokenizer(args: argparse.Namespace) -> dict[str, Any]:
    """Every IMDB text through the vectorized tokenizer and through Keras's rule in Python."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.text import KERAS_FILTERS, Vocabulary, encode_texts, pad_sequences

    data_dir = Path(args.input)
    texts = pa.concat_arrays(
        [
            pq.read_table(data_dir / name, columns=["text"]).column("text").combine_chunks()
            for name in ("train.parquet", "test.parquet")
        ]
    )
    vocabulary = Vocabulary.from_word_index_file(data_dir / "imdb_word_index.json")
    table = vocabulary.id_table()
    translation = str.maketrans(KERAS_FILTERS, " " * len(KERAS_FILTERS))
    python_texts = texts.to_pylist()
    started = time.perf_counter()
    python_ids = [
        [1, *(table.get(word, 2) for word in text.lower().translate(translation).split())]
        for text in python_texts
    ]
    python_padded = pad_sequences(python_ids, vocabulary.maxlen)
    python_seconds = time.perf_counter() - started
    started = time.perf_counter()
    padded = pad_sequences(encode_texts(texts, vocabulary), vocabulary.maxlen)
    vectorized_seconds = time.perf_counter() - started
    unpadded = encode_texts(texts, vocabulary).to_pylist()
    return {
        "texts": len(texts),
        "rows_with_different_ids": int(
            sum(a != b for a, b in zip(unpadded, python_ids, strict=True))
        ),
        "rows_with_different_padded_ids": int((padded != python_padded).any(axis=1).sum()),
        "python_microseconds_per_text": round(python_seconds / len(texts) * 1e6, 1),
        "vectorized_microseconds_per_text": round(vectorized_seconds / len(texts) * 1e6, 1),
        "speedup": round(python_seconds / vectorized_seconds, 2),
        "non_ascii_texts": int(
            len(texts)
            - np.count_nonzero(pa.compute.string_is_ascii(texts).to_numpy(zero_copy_only=False))
        ),
    }


def child_recipes(args: argparse.Namespace) -> dict[str, Any]:
    """Each architecture (tutorial settings, untrained) through score_file and model.predict."""
    import pyarrow.parquet as pq

    from tasks.scoring import (
        ResolvedModel,
        ScoringJob,
        ScoringModel,
        score_file,
        scoring_steps,
    )
    from tasks.scoring.folding import folded_forward
    from tasks.text import Vocabulary, encode_texts, pad_sequences
    from tasks.training import ARCHITECTURES, TrainingConfig, build_model

    vocabulary = Vocabulary.from_word_index_file(
        Path(args.data_dir) / "imdb_word_index.json", num_words=10_000, maxlen=250
    )
    table = pq.read_table(args.input).slice(0, args.rows)
    path = Path(args.output) / "recipes.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=10_000)
    token_ids = pad_sequences(encode_texts(table.column("text"), vocabulary), vocabulary.maxlen)
    results = {}
    for architecture in ARCHITECTURES:
        model = build_model(TrainingConfig(architecture=architecture), 10_000, 250)
        prepare, predict_prepared = scoring_steps(model)
        scoring_model = ScoringModel(architecture, 1, vocabulary, predict_prepared, prepare)
        model.predict(token_ids[:2048], batch_size=1024, verbose=0)
        scoring_model.predict(token_ids[: args.batch_size])
        started = time.perf_counter()
        expected = model.predict(token_ids, batch_size=1024, verbose=0).reshape(-1)
        raw_speed = len(token_ids) / (time.perf_counter() - started)
        job = ScoringJob(
            input_path=str(path),
            relative_path="recipes.parquet",
            output_path=str(Path(args.output) / architecture / "recipes.parquet"),
            model=ResolvedModel(store_root="", name=architecture, version=1),
            batch_size=args.batch_size,
        )
        started = time.perf_counter()
        score_file(job, scoring_model)
        speed = len(token_ids) / (time.perf_counter() - started)
        scores = pq.read_table(job.output_path, columns=["score"]).column("score").to_numpy()
        results[architecture] = {
            "raw_predict_rows_per_second": round(raw_speed, 1),
            "score_file_rows_per_second": round(speed, 1),
            "ratio": round(speed / raw_speed, 2),
            "max_abs_difference": float(abs(scores - expected).max()),
            "embedding_folded_into_lstm": folded_forward(model) is not None,
        }
    return {"rows": len(token_ids), "recipes": results}


CHILDREN = {
    "flow": child_flow,
    "raw": child_raw,
    "naive": child_naive,
    "stages": child_stages,
    "overlap": child_overlap,
    "startup": child_startup,
    "tokenizer": child_tokenizer,
    "recipes": child_recipes,
}


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
