"""The project's own Keras layers, registered so that safe-mode loading rebuilds them.

Importing this module imports Keras (seconds): anything that loads a model version which may hold
one of these layers (scoring, the store's safe-mode check) imports it first.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["WEIGHTINGS", "NgramBag"]

WEIGHTINGS = ("binary", "count", "nb")
# Added to every feature's count in each class, so unseen features get a ratio of 0.
NB_SMOOTHING = 1.0
# An odd multiplier spreads consecutive ids over the buckets (a bijection modulo any power of 2).
_HASH_MULTIPLIER = 1_000_003
_HASH_MODULUS = 2**31 - 1


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
            features, counted = self.features(token_ids[start : start + batch_rows])
            features = ops.convert_to_numpy(features)
            counted = ops.convert_to_numpy(counted)
            rows = np.asarray(labels[start : start + batch_rows]).reshape(-1) >= 0.5
            positive += np.bincount(features[rows][counted[rows]], minlength=size)
            negative += np.bincount(features[~rows][counted[~rows]], minlength=size)
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
