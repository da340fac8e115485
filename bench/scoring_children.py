"""The measurements bench_scoring.py runs, each in a fresh process (`bench_scoring.py --child
KIND`): the flow, start-up, plain Keras predict, a naive script, the stages, the overlap of
reading and predicting, the tokenizer, the recipes. Each prints one JSON line."""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any


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
