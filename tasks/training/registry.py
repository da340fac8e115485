"""Where a trained model goes: the store checked before any data is loaded, the version
registered with its vocabulary, history and curves, and the promotion rule applied."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from model_store import (
    CHAMPION,
    PROMOTION_METRIC,
    ModelStore,
    PromotionDecision,
    PromotionMode,
    validate_model_name,
)
from storage import NotAFolderError, StorageAccessError, locate
from tasks.contract import EvaluationMetrics
from tasks.text import Vocabulary
from tasks.training.model import TrainedModel

__all__ = [
    "CURVES_FILE",
    "RegisteredVersion",
    "check_destination",
    "promote_version",
    "read_curves",
    "register_version",
]

CURVES_FILE = "curves.png"
HISTORY_FILE = "history.json"


def check_destination(store_root: str, model_name: str) -> None:
    """Before any data is loaded: the model name is one the store takes, and the store root a
    place this run can write in (a folder created if missing; a one-byte probe file or object,
    never left behind).

    Raises model_store.InvalidNameError for a bad name; NotAFolderError or StorageAccessError
    naming model_store_root when it cannot be made or written: a file in its place, no
    permission or credentials, a full disk.
    """
    validate_model_name(model_name)
    location = locate(store_root, "model_store_root")
    if not location.is_local:
        probe = location / f".write-probe-{uuid.uuid4().hex}"
        try:
            probe.write_atomically(b"\0")
            probe.delete()
        except OSError as error:
            raise StorageAccessError(
                f"model_store_root: cannot write in {location}: {error}"
            ) from error
        return
    root = location.local_path
    if root.exists() and not root.is_dir():
        raise NotAFolderError(f"model_store_root: {root} is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root, prefix=".write-probe-") as probe_file:
            probe_file.write(b"\0")
            probe_file.flush()
            os.fsync(probe_file.fileno())
    except OSError as error:
        raise StorageAccessError(
            f"model_store_root: cannot write in {root}: {error.strerror or error}"
        ) from error


@dataclass(frozen=True)
class RegisteredVersion:
    """A small record of what was registered, passed on to promotion and the report."""

    model_name: str
    version: int
    path: str  # an absolute local path, or a URI in object storage


def register_version(
    store_root: str | Path,
    model_name: str,
    trained: TrainedModel,
    vocabulary: Vocabulary,
    metrics: EvaluationMetrics,
    params: dict[str, object],
    data_fingerprint: str,
    run_id: str | None,
    curves_png: bytes,
) -> RegisteredVersion:
    """Publish the model, its vocabulary, history and curves as a new version in the store."""
    history = {"epochs": trained.history, "best_epoch": trained.best_epoch}
    registered = ModelStore(store_root).register(
        model_name,
        trained.model,
        vocabulary.to_dict(),
        params={
            **params,
            "best_epoch": trained.best_epoch,
            "epochs_run": len(trained.history.get("loss", [])),
            "train_seconds": trained.seconds,
        },
        metrics=metrics.model_dump(),
        data_fingerprint=data_fingerprint,
        run_id=run_id,
        extra_files={
            HISTORY_FILE: json.dumps(history, indent=2).encode(),
            CURVES_FILE: curves_png,
        },
    )
    return RegisteredVersion(model_name, registered.version, str(registered.path))


def read_curves(registered: RegisteredVersion) -> bytes | None:
    """The curves PNG stored with a version, wherever the store lives; None without one."""
    curves = locate(registered.path) / CURVES_FILE
    return curves.read_bytes() if curves.is_file() else None


def promote_version(
    store_root: str | Path,
    registered: RegisteredVersion,
    mode: PromotionMode,
    alias: str = CHAMPION,
) -> PromotionDecision:
    """Apply the promotion rule against the current holder of `alias`, in one step under the
    store's lock, so that concurrent trainings cannot crown the worse model."""
    return ModelStore(store_root).promote(
        registered.model_name, registered.version, alias, mode=mode, metric=PROMOTION_METRIC
    )
