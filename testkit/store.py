"""Driving the model store as its users do: tiny real Keras models, registering, and writers in
child processes (each a fresh interpreter, as concurrent trainings and promotions are)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import ModelStore, ModelVersion
from storage.faults import FAULT_VARIABLE
from testkit import REPOSITORY

MODEL_NAME = "imdb-sentiment"
SEQUENCE_LENGTH = 8
VOCABULARY_SIZE = 20
VOCABULARY = {"num_words": VOCABULARY_SIZE, "index_from": 3, "word_index": {"great": 4, "dull": 5}}
CONCURRENT_WRITERS = 8
CHILD_TIMEOUT_SECONDS = 60


def build_tiny_model(seed: int) -> Any:
    """A real Keras text classifier, small enough to build in a blink."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SEQUENCE_LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY_SIZE, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def sample_batch() -> np.ndarray:
    return (np.arange(4 * SEQUENCE_LENGTH).reshape(4, SEQUENCE_LENGTH) * 7) % VOCABULARY_SIZE


def register(
    store: ModelStore, model: Any, name: str = MODEL_NAME, **overrides: Any
) -> ModelVersion:
    arguments: dict[str, Any] = {
        "params": {"embedding_dim": 4, "epochs": 1},
        "metrics": {"accuracy": 0.75, "loss": 0.5},
        "data_fingerprint": "sha256:abc",
    }
    arguments.update(overrides)
    return store.register(name, model, VOCABULARY, **arguments)


def snapshot(folder: Path) -> dict[str, tuple[str, int, int, int]]:
    """Content hash, size, mtime and mode of every file in a folder."""
    return {
        path.name: (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_size,
            path.stat().st_mtime_ns,
            path.stat().st_mode,
        )
        for path in sorted(folder.iterdir())
    }


def child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY), environment.get("PYTHONPATH")])
    )
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return environment


def start_child(source: str, *arguments: object, fault: str | None = None) -> subprocess.Popen[str]:
    """A fresh interpreter running `source`; with `fault`, it dies (or stops) at that fault
    point of the code it drives (storage/faults.py)."""
    environment = child_environment()
    if fault is not None:
        environment[FAULT_VARIABLE] = fault
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *map(str, arguments)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_files(paths: list[Path], timeout_seconds: float = CHILD_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"children did not get ready: {[p for p in paths if not p.exists()]}"
            )
        time.sleep(0.01)


def finish(child: subprocess.Popen[str]) -> str:
    """Wait for a child, fail the test with its stderr if it failed, return its stdout."""
    stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    if child.returncode != 0:
        pytest.fail(f"child exited with {child.returncode}: {stderr.strip()[-2000:]}")
    return stdout


def flip_last_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x01  # same size, different content: only the sha256 can tell
    path.write_bytes(bytes(content))


PROMOTION_ACCURACIES = (0.80, 0.86, 0.83, 0.90, 0.84, 0.88)


def promote_concurrently(
    root: Path | str, promoter: str, tmp_path: Path, tiny_model_file: Path
) -> None:
    """Versions of different accuracies promoted at once, each by its own process: the best one
    ends champion, and every move in the history was to a better model than the one it
    replaced. Shared with the object storage test."""
    store = ModelStore(root)
    accuracy_of = {
        register(store, tiny_model_file, metrics={"test_accuracy": accuracy}).version: accuracy
        for accuracy in PROMOTION_ACCURACIES
    }
    go_file = tmp_path / "go"
    ready_files = {version: tmp_path / f"ready-{version}" for version in accuracy_of}
    promoters = {
        version: start_child(promoter, root, version, ready_file, go_file)
        for version, ready_file in ready_files.items()
    }
    wait_for_files(list(ready_files.values()))
    go_file.touch()
    decisions = {version: json.loads(finish(child)) for version, child in promoters.items()}

    best = max(accuracy_of, key=accuracy_of.__getitem__)
    assert store.aliases(MODEL_NAME) == {"champion": best}
    history = store.alias_history(MODEL_NAME, "champion")
    promoted = [version for version, (promote, _) in decisions.items() if promote]
    assert sorted(history) == sorted(promoted)  # each promotion is one move in the history
    accuracies = [accuracy_of[version] for version in history]
    assert accuracies == sorted(set(accuracies))  # every move was to a better model
    # Each promoter compared against the champion it replaced: no two beat the same one.
    assert [decisions[version][1] for version in history] == [None, *history[:-1]]
    for version, (promote, previous) in decisions.items():
        assert promote or accuracy_of[previous] > accuracy_of[version]


DELETER = """
    import sys
    from model_store import ModelStore, check_keras_archive

    root, version = sys.argv[1:]
    ModelStore(root, check_model=check_keras_archive).delete("imdb-sentiment", int(version))
"""


def delete_in_child(root: Path | str, version: int, fault: str) -> subprocess.CompletedProcess[str]:
    """`models delete` of `version` in a fresh interpreter that dies (SIGKILL) at `fault`."""
    child = start_child(DELETER, root, version, fault=fault)
    stdout, stderr = child.communicate(timeout=CHILD_TIMEOUT_SECONDS)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def train_tiny_store(root: Path, data_folder: Path) -> Path:
    """A store at `root` holding v1 of the tiny model (testkit.synthetic's recipe) trained by the
    training code path on labeled reviews written into `data_folder`, as champion."""
    from tasks.training import TrainingConfig, train_model
    from tasks.training.data import load_parquet_reviews, pad_data
    from tasks.training.evaluation import evaluate_model
    from testkit.synthetic import (
        TINY_MAXLEN,
        TINY_MODEL_NAME,
        TINY_NUM_WORDS,
        write_labeled_dataset,
    )

    folder = write_labeled_dataset(data_folder, train_rows=400, test_rows=100)
    data = load_parquet_reviews(folder, num_words=TINY_NUM_WORDS, maxlen=TINY_MAXLEN)
    padded = pad_data(data)
    config = TrainingConfig(embedding_dim=8, units=8, epochs=3, batch_size=32, learning_rate=0.01)
    trained = train_model(padded, config, num_words=TINY_NUM_WORDS, maxlen=TINY_MAXLEN)
    metrics = evaluate_model(trained.model, padded)
    store = ModelStore(root)
    version = store.register(
        TINY_MODEL_NAME,
        trained.model,
        data.vocabulary.to_dict(),
        params={"epochs": 3},
        metrics=metrics.model_dump(),
        data_fingerprint=data.fingerprint,
    )
    store.set_alias(TINY_MODEL_NAME, "champion", version.version)
    return root


def copy_champion(source_root: Path | str, target_root: str, name: str) -> str:
    """`target_root` holding `source_root`'s champion of `name` as its v1 and champion,
    registered there as a team moving its store elsewhere would; the target's root."""
    loaded = ModelStore(source_root).load(name, "champion")
    store = ModelStore(target_root)
    version = store.register(
        name,
        loaded.model,
        loaded.vocabulary,
        params=loaded.manifest["params"],
        metrics=loaded.manifest["metrics"],
        data_fingerprint=loaded.manifest["data_fingerprint"],
    )
    store.set_alias(name, "champion", version.version)
    return store.root
