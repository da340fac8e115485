"""The project's own Keras layers, registered so that safe-mode loading rebuilds them.

Importing this module imports Keras (seconds): anything that loads a model version which may hold
one of these layers (scoring, the store's safe-mode check) imports it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from tasks.contract import POSITIVE_THRESHOLD

__all__ = ["WEIGHTINGS", "NgramBag", "SparseBag"]

WEIGHTINGS = ("binary", "count", "nb")
# Added to every feature's count in each class, so unseen features get a ratio of 0.
NB_SMOOTHING = 1.0
# An odd multiplier spreads consecutive ids over the buckets (a bijection modulo any power of 2).
_HASH_MULTIPLIER = 1_000_003
_HASH_MODULUS = 2**31 - 1
# Rows whose features numpy sorts together (rows of about the same length).
_SORTED_ROWS = 256


@dataclass(frozen=True)
class SparseBag:
    """A batch's bags of features, flat: `features[k]` is in row `rows[k]` with `weights[k]`,
    each row's distinct features together and in order."""

    num_rows: int
    rows: np.ndarray  # int32
    features: np.ndarray  # int32
    weights: np.ndarray  # float32


@keras.saving.register_keras_serializable(package="review_scoring")
class NgramBag(keras.layers.Layer):
    """Padded token ids -> a Dense layer over the review's bag of unigrams and hashed n-grams,
    computed sparsely: the sum of one trainable vector per feature present, plus a bias.

    Features: the unigrams are the ids themselves (1 .. num_words - 1), then `hash_buckets`
    features for the n-grams of order 2 .. `order`, each hashed from its ids. Padding (id 0),
    and any n-gram that touches it, counts nowhere. `binary` counts each feature once per review
    (a Dense layer over the binary bag), `count` as often as it occurs.
    """

    def __init__(
        self,
        num_words: int,
        units: int,
        order: int = 2,
        hash_buckets: int = 65_536,
        weighting: str = "binary",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.num_words = num_words
        self.units = units
        self.order = order
        self.hash_buckets = hash_buckets if order > 1 else 0
        self.weighting = weighting

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # Row 0 stands for padding and is never read into a sum.
        self.kernel = self.add_weight(
            shape=(self.num_words + self.hash_buckets, self.units),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        if self.weighting == "nb":
            self.feature_scale = self.add_weight(
                shape=(self.num_words + self.hash_buckets,),
                initializer="ones",
                trainable=False,
                name="feature_scale",
            )

    def features(self, token_ids: Any) -> tuple[Any, Any]:
        """Each review's feature ids (unigrams, then n-grams) and which of them to count."""
        ids = ops.cast(token_ids, "int64")
        columns = [ids]
        key = ids
        present = ops.not_equal(ids, 0)
        for size in range(2, self.order + 1):
            # key of the n-gram ending at each position, over the last `size` ids.
            key = ops.mod(key[:, :-1] * _HASH_MULTIPLIER + ids[:, size - 1 :], _HASH_MODULUS)
            present = ops.logical_and(present[:, :-1], ops.not_equal(ids[:, size - 1 :], 0))
            bucket = ops.mod(key, self.hash_buckets) + self.num_words
            columns.append(ops.where(present, bucket, ops.zeros_like(bucket)))
        features = ops.cast(ops.concatenate(columns, axis=1), "int32")
        if self.weighting == "count":
            return features, ops.not_equal(features, 0)
        # Binary: sorted, a feature counts where it differs from its left neighbour.
        features = ops.sort(features, axis=1)
        first = ops.concatenate(
            [
                ops.ones_like(features[:, :1], dtype="bool"),
                ops.not_equal(features[:, 1:], features[:, :-1]),
            ],
            axis=1,
        )
        return features, ops.logical_and(first, ops.not_equal(features, 0))

    def sparse_features(self, token_ids: np.ndarray) -> SparseBag:
        """The features `call` counts, computed in numpy: each row's distinct features, with
        the weight each one's vector gets (binary: 1, count: its count, nb: its naive-Bayes
        ratio). Scoring prepares its batches this way: numpy's sort is many times faster than
        the graph's, and rows of about the same length are sorted together over the columns
        they use, not over all of maxlen."""
        ids = np.asarray(token_ids)
        used = ids != 0
        # The columns each row uses: from its first id to its last (padding either side).
        first = np.where(used.any(axis=1), used.argmax(axis=1), ids.shape[1])
        last = ids.shape[1] - used[:, ::-1].argmax(axis=1)
        order = np.argsort(last - first, kind="stable")
        parts = []
        for start in range(0, len(order), _SORTED_ROWS):
            block = order[start : start + _SORTED_ROWS]
            low, high = first[block].min(), last[block].max()
            if low < high:
                parts.append((block, *self._block_features(ids[block, low:high])))
        if not parts:
            empty = np.zeros(0, dtype=np.int32)
            return SparseBag(len(ids), empty, empty, np.zeros(0, dtype=np.float32))
        rows = np.concatenate([block[local] for block, local, _, _ in parts])
        features = np.concatenate([features for _, _, features, _ in parts])
        if self.weighting == "count":
            weights = np.concatenate([counts for _, _, _, counts in parts]).astype(np.float32)
        elif self.weighting == "nb":
            weights = ops.convert_to_numpy(self.feature_scale)[features]
        else:
            weights = np.ones(features.size, dtype=np.float32)
        return SparseBag(len(ids), rows.astype(np.int32), features, weights)

    def _block_features(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(row, feature, count) of each distinct feature of each row of a block of ids; the
        counts only where the weighting needs them."""
        rows, length = ids.shape
        present = ids != 0
        columns = [ids.astype(np.int32)]
        flat = ids.reshape(-1)
        for size in range(2, self.order + 1):
            present = present[:, :-1] & (ids[:, size - 1 :] != 0)
            width = length - size + 1
            # Hashed where present only, from positions in `flat`.
            starts = np.flatnonzero(present)
            at = starts + starts // max(width, 1) * (size - 1)
            key = flat[at].astype(np.int64)
            for offset in range(1, size):
                key = (key * _HASH_MULTIPLIER + flat[at + offset]) % _HASH_MODULUS
            column = np.zeros(rows * width, dtype=np.int32)
            column[starts] = key % self.hash_buckets + self.num_words
            columns.append(column.reshape(rows, width))
        features = np.concatenate(columns, axis=1)
        features.sort(axis=1)
        # Where each run of equal features starts; padding (0) sorts first and starts none.
        run_starts = np.empty(features.shape, dtype=bool)
        np.not_equal(features[:, 0], 0, out=run_starts[:, 0])
        np.not_equal(features[:, 1:], features[:, :-1], out=run_starts[:, 1:])
        per_row = np.count_nonzero(run_starts, axis=1)
        starts = np.flatnonzero(run_starts)
        row_of = np.repeat(np.arange(rows), per_row)
        if self.weighting != "count":
            return row_of, features.reshape(-1)[starts], None
        # A run ends where the next one starts, or at its row's end.
        ends = np.minimum(np.append(starts[1:], features.size), (row_of + 1) * features.shape[1])
        return row_of, features.reshape(-1)[starts], ends - starts

    def call(self, token_ids: Any) -> Any:
        features, counted = self.features(token_ids)
        vectors = ops.take(self.kernel, features, axis=0)
        weights = ops.cast(counted, vectors.dtype)
        if self.weighting == "nb":
            weights = weights * ops.take(self.feature_scale, features, axis=0)
        return ops.sum(vectors * ops.expand_dims(weights, -1), axis=1) + self.bias

    def fit_to_training_data(
        self, token_ids: np.ndarray, labels: np.ndarray, batch_rows: int = 4096
    ) -> None:
        """For `nb`: each feature's log-count ratio over the training reviews given, from the
        reviews holding it in each class: log((p / |p|) / (q / |q|))."""
        if self.weighting != "nb":
            return
        if not self.built:
            self.build((None, token_ids.shape[1]))
        size = self.num_words + self.hash_buckets
        positive = np.full(size, NB_SMOOTHING)
        negative = np.full(size, NB_SMOOTHING)
        for start in range(0, len(token_ids), batch_rows):
            bag = self.sparse_features(token_ids[start : start + batch_rows])
            rows = np.asarray(labels[start : start + batch_rows]).reshape(-1) >= POSITIVE_THRESHOLD
            in_positive = rows[bag.rows]
            positive += np.bincount(bag.features[in_positive], minlength=size)
            negative += np.bincount(bag.features[~in_positive], minlength=size)
        ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
        self.feature_scale.assign(ratio.astype("float32"))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, int]:
        return (input_shape[0], self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_words": self.num_words,
            "units": self.units,
            "order": self.order,
            "hash_buckets": self.hash_buckets,
            "weighting": self.weighting,
        }
