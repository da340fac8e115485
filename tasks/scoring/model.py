"""The model a run scores with: a `model_ref` resolved once, loaded once per process."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model_store import ModelStore, check_keras_archive
from storage import locate
from tasks.contract import EvaluationMetrics
from tasks.scoring.records import DEFAULT_BATCH_SIZE, ResolvedModel, ScoringError
from tasks.text import Vocabulary

if TYPE_CHECKING:
    import keras

__all__ = [
    "PREDICT_BLOCK_ROWS",
    "ScoringModel",
    "compiled_predictor",
    "keras_predictor",
    "load_scoring_model",
    "parse_model_ref",
    "preload_version",
    "resolve_model",
    "scoring_steps",
    "sparse_bag_predictor",
]

# Model versions kept loaded per process (a long-lived worker sees few versions at a time).
LOADED_MODELS_KEPT = 2
# Rows per compiled predict call (a full read batch); shorter blocks are padded to a power of
# two, at least SMALLEST_BLOCK_ROWS.
PREDICT_BLOCK_ROWS = DEFAULT_BATCH_SIZE
SMALLEST_BLOCK_ROWS = 64


def _as_is(token_ids: np.ndarray) -> np.ndarray:
    return token_ids


@dataclass(frozen=True)
class ScoringModel:
    """What scoring needs from a loaded version: its tokenizer, and scores for a batch of padded
    ids in two steps: `prepare` (the model's own input work, run in the preparing threads) and
    `predict_prepared`."""

    name: str
    version: int
    vocabulary: Vocabulary
    predict_prepared: Callable[[Any], np.ndarray]
    prepare: Callable[[np.ndarray], Any] = _as_is

    def predict(self, token_ids: np.ndarray) -> np.ndarray:
        """Scores for a padded id matrix."""
        return self.predict_prepared(self.prepare(token_ids))


def keras_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """Scores for a padded id matrix, one model call per batch (no `predict` loop overhead)."""
    # Build the compiled predict function now, so concurrent first calls do not race to build it.
    model.make_predict_function()

    def predict(token_ids: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(token_ids), dtype=np.float32).reshape(-1)

    return predict


def _block_rows(rows: int) -> int:
    """The compiled shape a block of `rows` is padded to."""
    if rows >= PREDICT_BLOCK_ROWS:
        return PREDICT_BLOCK_ROWS
    return max(SMALLEST_BLOCK_ROWS, 1 << (rows - 1).bit_length())


def compiled_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """Scores for a padded id matrix through the model compiled by XLA for fixed shapes: rows go
    in blocks of PREDICT_BLOCK_ROWS, and a shorter block is padded with PAD rows up to a power of
    two, so a run compiles one shape for its full blocks and few for its tails, each once per
    process. Where XLA cannot compile the model, it says so once and predicts without it."""
    import tensorflow as tf

    from tasks.scoring.folding import folded_forward

    forward = folded_forward(model) or (lambda token_ids: model(token_ids, training=False))
    function = tf.function(forward, jit_compile=True)
    concrete: dict[tuple[int, int], Callable[[Any], Any]] = {}
    concrete_lock = threading.Lock()
    fallback: list[Callable[[np.ndarray], np.ndarray]] = []

    def block_function(rows: int, columns: int) -> Callable[[Any], Any]:
        with concrete_lock:
            if (rows, columns) not in concrete:
                spec = tf.TensorSpec((rows, columns), tf.int32)
                concrete[rows, columns] = function.get_concrete_function(spec)
            return concrete[rows, columns]

    def predict_block(block: np.ndarray) -> np.ndarray:
        rows, columns = block.shape
        padded_rows = _block_rows(rows)
        if padded_rows > rows:
            block = np.concatenate([block, np.zeros((padded_rows - rows, columns), np.int32)])
        scores = block_function(padded_rows, columns)(tf.constant(block, dtype=tf.int32))
        return np.asarray(scores, dtype=np.float32).reshape(-1)[:rows]

    def predict(token_ids: np.ndarray) -> np.ndarray:
        if fallback:
            return fallback[0](token_ids)
        scores = np.empty(len(token_ids), dtype=np.float32)
        try:
            for start in range(0, len(token_ids), PREDICT_BLOCK_ROWS):
                block = token_ids[start : start + PREDICT_BLOCK_ROWS]
                scores[start : start + len(block)] = predict_block(block)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            logging.getLogger(__name__).warning(
                "%s cannot be compiled by XLA (%s); predicting without it",
                model.name,
                str(error).splitlines()[0],
            )
            fallback.append(keras_predictor(model))
            return fallback[0](token_ids)
        return scores

    return predict


def sparse_bag_predictor(
    model: keras.Model,
) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]] | None:
    """For a model that starts with the n-gram bag: its features found in numpy (the
    preparing step; numpy sorts many times faster than the graph does), then its vectors
    gathered and summed per row and the rest of the model run by TensorFlow. None for other
    models."""
    import tensorflow as tf

    from tasks.layers import NgramBag, SparseBag

    if not model.layers or not isinstance(model.layers[0], NgramBag):
        return None
    bag, rest = model.layers[0], model.layers[1:]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def forward(rows: Any, features: Any, weights: Any, num_rows: Any) -> Any:
        vectors = tf.gather(bag.kernel.value, features) * weights[:, None]
        hidden = tf.math.unsorted_segment_sum(vectors, rows, num_rows) + bag.bias.value
        for layer in rest:
            hidden = layer(hidden, training=False)
        return hidden

    def predict(sparse: SparseBag) -> np.ndarray:
        if not sparse.num_rows:
            return np.zeros(0, dtype=np.float32)
        scores = forward(sparse.rows, sparse.features, sparse.weights, np.int32(sparse.num_rows))
        return np.asarray(scores, dtype=np.float32).reshape(-1)

    return bag.sparse_features, predict


def scoring_steps(
    model: keras.Model,
) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]:
    """(prepare, predict_prepared) for a loaded model: the n-gram bag's split path where it
    applies, else the ids as they are and the compiled predict."""
    return sparse_bag_predictor(model) or (_as_is, compiled_predictor(model))


_loaded_models: OrderedDict[tuple[str, str, int], ScoringModel] = OrderedDict()
_loaded_models_lock = threading.Lock()
# How often this process loaded each version: once, unless it was evicted and needed again.
_loads: dict[tuple[str, str, int], int] = {}


def _register_project_layers() -> None:
    """Safe-mode loading (and the store's check of it) rebuilds the project's own layers only
    once they are registered; importing them imports Keras, so it waits until a model is read."""
    import tasks.layers  # noqa: F401


def load_scoring_model(model: ResolvedModel) -> ScoringModel:
    """Load a resolved version once per process (checksums checked, Keras safe mode)."""
    key = (locate(model.store_root).uri, model.name, model.version)
    with _loaded_models_lock:
        if key in _loaded_models:
            _loaded_models.move_to_end(key)
            return _loaded_models[key]
        _register_project_layers()
        loaded = ModelStore(model.store_root).load(model.name, model.version)
        prepare, predict_prepared = scoring_steps(loaded.model)
        scoring_model = ScoringModel(
            name=model.name,
            version=int(loaded.version),
            vocabulary=Vocabulary.from_dict(loaded.vocabulary),
            predict_prepared=predict_prepared,
            prepare=prepare,
        )
        _loaded_models[key] = scoring_model
        _loads[key] = _loads.get(key, 0) + 1
        while len(_loaded_models) > LOADED_MODELS_KEPT:
            _loaded_models.popitem(last=False)
        return scoring_model


def preload_version(model: ResolvedModel) -> dict[str, int]:
    """Load a version in this process unless it is loaded already (a Dask worker's warm-up,
    before any file is sent to it); how often this process has loaded each version, as
    {"<store>/<name>/v<N>": loads}."""
    load_scoring_model(model)
    return {f"{root}/{name}/v{version}": count for (root, name, version), count in _loads.items()}


def parse_model_ref(model_ref: str | int) -> str | int:
    """'3' is version 3; anything else is an alias such as 'champion' or 'latest'."""
    if isinstance(model_ref, int):
        return model_ref
    text = model_ref.strip()
    if not text:
        raise ScoringError("model_ref is empty: give a version number or an alias")
    return int(text) if text.isascii() and text.isdigit() else text


def resolve_model(
    store_root: str, name: str, model_ref: str | int, *, verify: bool = True
) -> ResolvedModel:
    """The version `model_ref` names now, with its files' checksums verified (without Keras:
    loading the version checks it loads in safe mode) unless `verify` is False, for a caller
    that loads it at once (loading verifies the checksums too)."""
    store = ModelStore(store_root, check_model=check_keras_archive)
    version = store.resolve(name, parse_model_ref(model_ref))
    if verify:
        store.verify(name, version)
    metrics = EvaluationMetrics.from_manifest(store.manifest(name, version).get("metrics") or {})
    return ResolvedModel(
        store_root=store.root,  # absolute or a URI: workers may run elsewhere than here
        name=name,
        version=version,
        manifest_sha256=store.manifest_sha256(name, version),
        test_score_histogram=metrics.test_score_histogram if metrics else None,
        test_positive_rate=metrics.test_positive_rate if metrics else None,
        training_text=metrics.training_text if metrics else None,
    )
