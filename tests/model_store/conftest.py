"""Fixtures of the model store tests: a tiny model saved once, stores holding a few versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model_store import ModelStore
from testkit.store import SEQUENCE_LENGTH, build_tiny_model, register


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model saved once as a .keras file, for tests that only need some version."""
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    build_tiny_model(seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def lambda_model() -> Any:
    """A tiny model with a Python lambda in it: Keras's safe mode refuses to load it."""
    import keras

    return keras.Sequential(
        [
            keras.Input((SEQUENCE_LENGTH,)),
            keras.layers.Lambda(lambda batch: batch * 2.0),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


@pytest.fixture
def three_versions(tmp_path: Path, tiny_model_file: Path) -> ModelStore:
    """A store in tmp_path/models holding versions 1, 2 and 3 of MODEL_NAME, no aliases yet."""
    store = ModelStore(tmp_path / "models")
    for _ in range(3):
        register(store, tiny_model_file)
    return store


@pytest.fixture
def store_with_extra_file(tmp_path: Path, tiny_model_file: Path) -> ModelStore:
    store = ModelStore(tmp_path / "models")
    for _ in range(2):
        register(store, tiny_model_file, extra_files={"history.json": b'{"loss": [0.5]}'})
    return store
