"""Parts only apps that read words use: word vectors, language-model pretraining, vocabulary.

`TextApp` adds to the `App` contract what these parts need from an app, and the two
commands they provide (`vectors`, `pretrain`), which a text app lists in its
`extra_commands`. Nothing here imports TensorFlow at import time.

    words of an example  -> `TextApp.tokens_of(element)`
    which layers encode  -> `TextApp.layer_roles(model)`
    data info of a vocabulary learned from raw text -> `TextApp.vocabulary_data_info`
"""

import dataclasses

from apps.common import cli
from apps.common.app import App, Command

DEFAULT_PROBE_WORDS = ("good", "bad", "boring", "funny")


@dataclasses.dataclass
class PretrainConfig:
    """Language-model pretraining of the encoder (`pretrain`, `apps.common.pretraining`)."""

    epochs: int = 1
    steps_per_epoch: int | None = None
    batch_size: int = 64
    # Words per training window (truncated backpropagation through time).
    window: int = 64
    # Candidate words scored per batch by the sampled softmax.
    num_sampled: int = 1024
    # Score words with the embedding matrix (Press & Wolf 2017) instead of an own matrix.
    tie_weights: bool = False
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    dropout: float = 0.1
    # Windows held out, scored with the full softmax (val_loss, perplexity).
    validation_windows: int = 256


class TextApp(App):
    """An app whose model reads words through an embedding and recurrent encoder.

    Class attributes:
        probe_words: words whose nearest neighbours `vectors` prints as a sanity check.
    """

    probe_words: tuple[str, ...] = DEFAULT_PROBE_WORDS

    def tokens_of(self, element):
        """The words the model reads in one split element, a 1-D tf.string tensor."""
        raise NotImplementedError(f"{type(self).__name__}.tokens_of")

    def layer_roles(self, model) -> dict:
        """`{"embedding": layer, "encoder": [recurrent layers in order]}` of `model`."""
        raise NotImplementedError(f"{type(self).__name__}.layer_roles")

    def vocabulary_data_info(self, source_info, vocabulary) -> dict:
        """The data info of a model built over `vocabulary` (e.g. for pretraining)."""
        return {"vocabulary": list(vocabulary)}


def _vectors_arguments(parser, app):
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="SOURCE",
        help="a data source whose text to learn from; repeat for several",
    )
    parser.add_argument("--output", required=True, help="the word vectors text file to write")
    parser.add_argument("--dim", type=int, default=128, help="vector size (default 128)")
    parser.add_argument("--max-words", type=int, default=20000, help="vocabulary size")
    parser.add_argument("--window", type=int, default=5, help="co-occurrence window")
    parser.add_argument("--min-count", type=int, default=5, help="rarer words get no vector")
    parser.add_argument("--split", default="train", help="split of each source to read")
    parser.add_argument(
        "--probe-words",
        nargs="*",
        default=list(app.probe_words),
        help="words whose nearest neighbours are printed",
    )
    cli.add_overrides(parser, "data.* overrides for every source")


def _vectors(app, arguments):
    from apps.common.text import word_vectors

    word_vectors.vectors_command(app, arguments)


def _pretrain_arguments(parser, app):
    parser.add_argument("--config", metavar="FILE.json", help="JSON config over the defaults")
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="SOURCE",
        help="a data source whose train text to learn from; repeat for several",
    )
    parser.add_argument("--seed", type=int, help="sets seed")
    parser.add_argument(
        "--run-dir",
        help=f"run directory (default: runs/{app.name}/pretrain-<hash of config and sources>,"
        " so the same command resumes the same run)",
    )
    cli.add_overrides(parser)


def _pretrain(app, arguments):
    sources = arguments.data
    arguments.data = None  # Several sources: not one data.source.
    config = cli.resolve(app, arguments)
    from apps.common.text import pretraining

    run_dir = arguments.run_dir or cli.default_run_dir(app, config, "pretrain-", sources)
    pretraining.pretrain(app, config, sources, run_dir)


VECTORS_COMMAND = Command(
    "vectors", "learn word vectors from the data's text", _vectors_arguments, _vectors
)
PRETRAIN_COMMAND = Command(
    "pretrain", "language-model pretraining of the encoder", _pretrain_arguments, _pretrain
)
