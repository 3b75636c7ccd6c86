"""Batches for every app: examples from split elements, shuffled and padded, or bucketed.

`epoch_batches` turns one split into the batches `model.fit` reads, through the app's hooks
(`App.examples`, `App.batch`); `default_batches` is what `App.batch` does unless an app
overrides it. Padding works for fixed-size and variable-length examples alike (token lists
and their per-token labels), with the app's padding values per feature.

Example:

    batches, per_epoch = epoch_batches(app, config, data_info, splits["train"], training=True,
                                       epochs=10)
"""

import numpy as np
import tensorflow as tf


def default_batches(app, examples, config, training, seed):
    """Shuffles (training only), then bucket-batches or pads batches of `examples`.

    Bucketing applies when the app gives `bucket_boundaries` (and `example_length`):
    examples of similar length share a batch (fewer padded recurrent steps), and batch
    order is shuffled again. Otherwise `padded_batch` pads each batch to its longest
    example with `app.padding_values()`.
    """
    batch_size = config.train.batch_size
    if training and app.shuffle_training_examples(config):
        examples = examples.shuffle(config.train.shuffle_buffer, seed=seed)
    boundaries = list(app.bucket_boundaries(config))
    if boundaries:
        batches = examples.bucket_by_sequence_length(
            element_length_func=lambda inputs, targets: app.example_length(inputs),
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padding_values=app.padding_values(),
        )
        if training and app.shuffle_training_examples(config):
            batches = batches.shuffle(64, seed=seed)
        return batches
    return examples.padded_batch(batch_size, padding_values=app.padding_values())


def count_batches(app, config, examples, batches):
    """Batches in one epoch of `batches`: known cardinality, bucket counts, or a count."""
    known = int(batches.cardinality())
    if known >= 0:
        return known
    boundaries = list(app.bucket_boundaries(config))
    if boundaries:
        # Each bucket emits ceil(examples in it / batch size) batches, whatever the order.
        lengths = np.fromiter(
            examples.map(lambda inputs, targets: app.example_length(inputs)).as_numpy_iterator(),
            dtype=np.int64,
        )
        buckets = np.searchsorted(boundaries, lengths, side="right")
        counts = np.bincount(buckets, minlength=len(boundaries) + 1)
        return int(np.sum(-(-counts // config.train.batch_size)))
    return int(batches.reduce(np.int64(0), lambda count, _: count + 1))


def epoch_batches(app, config, data_info, dataset, training, epochs=None, initial_epoch=0):
    """The batches of a split, through the app's `examples` and `batch` hooks.

    Examples are cached in memory after the first pass, so later epochs skip reading and
    windowing the records again.

    Args:
        epochs, initial_epoch: with `epochs`, one stream holding epochs `initial_epoch` to
            `epochs - 1`, each shuffled with `seed + epoch`: a resumed run gets exactly the
            batches the uninterrupted run would have had (a tf.data shuffle is not
            checkpointed). Without, one epoch that reshuffles on every pass.

    Returns:
        `(batches, batches_per_epoch)`.
    """
    examples = app.examples(dataset, config, data_info, training).cache()
    per_epoch = count_batches(
        app, config, examples, app.batch(examples, config, training, config.seed)
    )
    if epochs is None:
        stream, count = app.batch(examples, config, training, config.seed), per_epoch
    else:
        epoch_numbers = tf.data.Dataset.range(initial_epoch, epochs)
        stream = epoch_numbers.flat_map(
            lambda epoch: app.batch(examples, config, training, config.seed + epoch)
        )
        count = per_epoch * max(epochs - initial_epoch, 0)
    # Known, so progress bars show the epoch's length from the first epoch on.
    stream = stream.apply(tf.data.experimental.assert_cardinality(count))
    return stream.prefetch(tf.data.AUTOTUNE), per_epoch
