"""The embedding folded into an LSTM's input projection, for scoring.

At every step an Embedding followed by an LSTM computes `embedding[id] @ kernel + bias`, which
depends on the id alone. Computed once per word into a (num_words, 4 * units) table, each step
gathers one row of it instead of looking up an embedding and multiplying it: the same scores
(within 1e-7) for about two thirds of the work. It applies where a model starts with an
Embedding (no mask) and an LSTM, or a Bidirectional LSTM, that returns its last state with
Keras's default activations; every other model is compiled as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["folded_forward"]


def _plain_lstm(layer: Any) -> bool:
    """An LSTM whose step is the textbook one over all steps, returning its last output."""
    import keras

    cell = getattr(layer, "cell", None)
    return (
        isinstance(layer, keras.layers.LSTM)
        and not layer.return_sequences
        and not layer.return_state
        and not layer.stateful
        and cell.use_bias
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
    )


def _directions(layer: Any) -> list[Any] | None:
    """The LSTM layers to run (forward, then backward for a Bidirectional), or None."""
    import keras

    if _plain_lstm(layer) and not layer.go_backwards:
        return [layer]
    if (
        isinstance(layer, keras.layers.Bidirectional)
        and layer.merge_mode == "concat"
        and _plain_lstm(layer.forward_layer)
        and _plain_lstm(layer.backward_layer)
        and not layer.forward_layer.go_backwards
        and layer.backward_layer.go_backwards
    ):
        return [layer.forward_layer, layer.backward_layer]
    return None


def folded_forward(model: Any) -> Callable[[Any], Any] | None:
    """The model's forward pass with its embedding folded into its LSTM, or None where the
    model does not start Embedding -> LSTM as described above."""
    import keras
    import tensorflow as tf

    layers = model.layers
    if len(layers) < 2:
        return None
    embedding, recurrent, rest = layers[0], layers[1], layers[2:]
    if not isinstance(embedding, keras.layers.Embedding) or embedding.mask_zero:
        return None
    directions = _directions(recurrent)
    if directions is None:
        return None
    embeddings = tf.convert_to_tensor(embedding.embeddings)
    folded = [
        (
            tf.matmul(embeddings, tf.convert_to_tensor(lstm.cell.kernel))
            + tf.convert_to_tensor(lstm.cell.bias),
            tf.convert_to_tensor(lstm.cell.recurrent_kernel),
            lstm.go_backwards,
        )
        for lstm in directions
    ]

    def run_lstm(token_ids: Any, table: Any, recurrent_kernel: Any, backwards: bool) -> Any:
        steps = token_ids.shape[1]
        units = recurrent_kernel.shape[0]
        zeros = tf.zeros((tf.shape(token_ids)[0], units), dtype=table.dtype)

        def step(position: Any, output: Any, state: Any) -> tuple[Any, Any, Any]:
            column = steps - 1 - position if backwards else position
            gates = tf.gather(table, token_ids[:, column]) + tf.matmul(output, recurrent_kernel)
            input_gate, forget_gate, candidate, output_gate = tf.split(gates, 4, axis=1)
            state = tf.sigmoid(forget_gate) * state + tf.sigmoid(input_gate) * tf.tanh(candidate)
            return position + 1, tf.sigmoid(output_gate) * tf.tanh(state), state

        _, output, _ = tf.while_loop(
            lambda position, output, state: position < steps, step, (0, zeros, zeros)
        )
        return output

    def forward(token_ids: Any) -> Any:
        outputs = [run_lstm(token_ids, *direction) for direction in folded]
        values = outputs[0] if len(outputs) == 1 else tf.concat(outputs, axis=-1)
        for layer in rest:
            values = layer(values, training=False)
        return values

    return forward
