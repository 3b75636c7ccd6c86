"""Sequence-to-sequence model: recurrent encoder plus attention decoder (Sutskever et al.
2014; Bahdanau et al. 2014; Luong et al. 2015)."""

import keras
from keras import ops

from rnn_keras.attention import BahdanauAttention, LuongAttention
from rnn_keras.cells import make_cell
from rnn_keras.decoding import AttentionDecoder, beam_search, greedy_search, sampling_search
from rnn_keras.recurrent import Recurrent

ATTENTIONS = ("bahdanau", "luong", None)


def _sequence_layer(cell, **kwargs):
    # Recurrent hoists the input projection and draws one dropout mask per sequence.
    return Recurrent(cell, **kwargs)


@keras.saving.register_keras_serializable(package="rnn_keras")
class Seq2Seq(keras.Model):
    """Encoder-decoder with attention (Bahdanau et al. 2014; Luong et al. 2015).

    Encoder: embedding, `encoder_layers` stacked recurrent layers (optionally
    bidirectional); its final states initialise the decoder through one tanh
    projection per decoder state. Decoder: `AttentionDecoder` over the encoder
    outputs. Token 0 is padding; sources and targets are padded at the end.

    Args:
        source_vocab_size, target_vocab_size: vocabulary sizes (id 0 is padding).
        embedding_dim: size of both embeddings.
        units: cell size of the encoder (per direction) and the decoder.
        cell: a `rnn_keras.make_cell` kind: "lstm", "gru", "elman" or "jordan".
        encoder_layers: number of stacked encoder layers.
        bidirectional: bidirectional encoder.
        attention: "bahdanau", "luong" or None (no attention).
        attention_units: Bahdanau score size / Luong h~ size (default: `units`).
        score_mode: Luong score mode ("dot", "general", "concat").
        input_feeding: Luong input feeding.
        sampling_probability: scheduled sampling (see `AttentionDecoder`); None disables.
        start_token, end_token: target ids that start and end a sequence.
        **kwargs: base `keras.Model` arguments.

    Call arguments:
        inputs: `(source, target_inputs)`, int tensors `(batch, Ts)` and `(batch, Tt)`;
            target_inputs are the targets shifted right behind `start_token`.
        training: Python bool.

    Returns: logits `(batch, Tt, target_vocab_size)`.

    Example:
        ```python
        model = rnn_keras.Seq2Seq(13, 13, units=128, attention="luong")
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=0))
        model.fit((source, target_in), target_out, epochs=10)
        best = model.beam_search(source, max_length=32, beam_width=4)["tokens"][:, 0]
        model.export_decoding("saved_models/reverse/1", max_length=32)
        ```
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=64,
        units=128,
        cell="lstm",
        encoder_layers=1,
        bidirectional=False,
        attention="bahdanau",
        attention_units=None,
        score_mode="general",
        input_feeding=True,
        sampling_probability=None,
        start_token=1,
        end_token=2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(f"`attention` must be one of {ATTENTIONS}, got {attention!r}.")
        if int(encoder_layers) < 1:
            raise ValueError(f"`encoder_layers` must be >= 1, got {encoder_layers}.")
        self.config = {
            "source_vocab_size": int(source_vocab_size),
            "target_vocab_size": int(target_vocab_size),
            "embedding_dim": int(embedding_dim),
            "units": int(units),
            "cell": cell,
            "encoder_layers": int(encoder_layers),
            "bidirectional": bool(bidirectional),
            "attention": attention,
            "attention_units": attention_units,
            "score_mode": score_mode,
            "input_feeding": bool(input_feeding),
            "sampling_probability": sampling_probability,
            "start_token": int(start_token),
            "end_token": int(end_token),
        }
        self.start_token, self.end_token = int(start_token), int(end_token)
        self.source_embedding = keras.layers.Embedding(
            source_vocab_size, embedding_dim, name="source_embedding"
        )
        self.encoder = []
        for index in range(int(encoder_layers)):
            layer = _sequence_layer(
                make_cell(cell, units),
                return_sequences=True,
                return_state=True,
                name=f"encoder_{index}",
            )
            if bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_encoder_{index}")
            self.encoder.append(layer)
        attention_units = int(attention_units or units)
        attention_layer = None
        if attention == "bahdanau":
            attention_layer = BahdanauAttention(attention_units, name="attention")
        elif attention == "luong":
            attention_layer = LuongAttention(score_mode, name="attention")
        self.decoder = AttentionDecoder(
            make_cell(cell, units),
            target_vocab_size,
            embedding_dim,
            attention=attention_layer,
            style="bahdanau" if attention == "bahdanau" else "luong",
            attention_units=attention_units,
            input_feeding=input_feeding,
            sampling_probability=sampling_probability,
            name="decoder",
        )
        self.bridge = [
            keras.layers.Dense(size, activation="tanh", name=f"bridge_{index}")
            for index, size in enumerate(self.decoder.state_sizes)
        ]

    def encode(self, source, training=None):
        """Returns (memory `(batch, Ts, units * directions)`, mask `(batch, Ts)`, decoder state)."""
        source = ops.cast(source, "int32")
        mask = ops.not_equal(source, 0)
        sequence = self.source_embedding(source)
        for layer in self.encoder:
            outputs = layer(sequence, mask=mask, training=training)
            sequence, final_states = outputs[0], outputs[1:]
        summary = ops.concatenate(list(final_states), axis=-1)
        initial_state = [bridge(summary) for bridge in self.bridge]
        return sequence, mask, initial_state

    def call(self, inputs, training=None):
        source, target_inputs = inputs
        memory, mask, initial_state = self.encode(source, training=training)
        return self.decoder(
            target_inputs,
            memory,
            memory_mask=mask,
            initial_state=initial_state,
            training=training,
        )

    def greedy(self, source, max_length):
        """Greedy decoding; see `rnn_keras.greedy_search` for the returned dict."""
        memory, mask, state = self.encode(source)
        return greedy_search(
            self.decoder, memory, self.start_token, self.end_token, max_length, mask, state
        )

    def sample(self, source, max_length, temperature=1.0, top_k=None, seed=None):
        """Temperature / top-k sampling; see `rnn_keras.sampling_search`."""
        memory, mask, state = self.encode(source)
        return sampling_search(
            self.decoder, memory, self.start_token, self.end_token, max_length,
            temperature, top_k, seed, mask, state,
        )  # fmt: skip

    def beam_search(self, source, max_length, beam_width=4, length_penalty=0.6):
        """Beam search (Wu et al. 2016 length penalty); see `rnn_keras.beam_search`."""
        memory, mask, state = self.encode(source)
        return beam_search(
            self.decoder, memory, self.start_token, self.end_token, max_length,
            beam_width, length_penalty, mask, state,
        )  # fmt: skip

    def export_decoding(self, filepath, max_length, beam_width=4, length_penalty=0.6):
        """Writes a SavedModel with endpoints `greedy`, `beam_search` and `serving_default`
        (= beam search); each takes `source` int32 `(batch, Ts)`, 0-padded at the end."""
        archive = keras.export.ExportArchive()
        archive.track(self)
        signature = [keras.InputSpec(shape=(None, None), dtype="int32", name="source")]

        def beam(source):
            return self.beam_search(source, max_length, beam_width, length_penalty)

        # The first endpoint is also written as `serving_default` (traced once).
        archive.add_endpoint("beam_search", beam, signature)
        archive.add_endpoint("greedy", lambda s: self.greedy(s, max_length), signature)
        archive.write_out(filepath, verbose=False)

    def get_config(self):
        return {**super().get_config(), **self.config}

    def get_build_config(self):
        return {"built": self.built}

    def build_from_config(self, config):
        # Building by a call creates every weight with its final shape.
        if config.get("built"):
            dummy = ops.ones((1, 2), "int32")
            self((dummy, dummy))
