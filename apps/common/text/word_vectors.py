"""Word vectors: read GloVe / word2vec text files, and learn them offline with PPMI-SVD.

Pretrained word vectors initialise an embedding layer's rows, so words that the labelled
data holds few times (or only at test time) start with a meaning. Users with internet
download GloVe or fastText vectors; this module also learns vectors from unlabelled text
on the machine: positive pointwise mutual information of windowed co-occurrence counts,
factorised by a truncated SVD (Levy, Goldberg & Dagan 2015, "Improving distributional
similarity with lessons learned from word embeddings"), which matches skip-gram with
negative sampling on word similarity and needs only NumPy.

File format (GloVe's, and word2vec's text format): one word per line followed by its
values, separated by spaces; an optional first line `<count> <dimension>` is skipped.

Example:

    python -m apps.sentiment vectors --data ../shared/data/imdb/train.csv \
        --data ../shared/data/sst2 --output runs/vectors/movies_128.txt --dim 128
    python -m apps.sentiment train --data ../shared/data/sst2 \
        model.word_vectors=runs/vectors/movies_128.txt
"""

import collections
import json
import os

import numpy as np

from apps.common.errors import UserError


class WordVectorsError(UserError, ValueError):
    """A word vectors file that cannot be used; the message names the file and line."""


def read_word_vectors(path, words=None):
    """`{word: vector}` from a text file, only for `words` when given (saves memory).

    Every line must hold a word and the same number of finite values; otherwise a
    `WordVectorsError` names the file, the line and the problem.
    """
    if not os.path.exists(path):
        raise WordVectorsError(f"{path}: no such word vectors file")
    wanted = None if words is None else set(words)
    vectors, dimension = {}, None
    with open(path, "rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise WordVectorsError(f"{path}, line {number}: not UTF-8 ({error})") from None
            fields = line.rstrip("\r\n").rstrip(" ").split(" ")
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                continue  # word2vec's header: <count> <dimension>
            if len(fields) < 2 or not fields[0]:
                raise WordVectorsError(f"{path}, line {number}: expected a word and its values")
            if dimension is None:
                dimension = len(fields) - 1
            word, values = _split_word(fields, dimension)
            if values is None:
                raise WordVectorsError(
                    f"{path}, line {number}: {len(fields) - 1} values, earlier lines have"
                    f" {dimension}"
                )
            if wanted is not None and word not in wanted:
                continue
            try:
                vector = np.array(values, dtype=np.float32)
            except ValueError as error:
                raise WordVectorsError(f"{path}, line {number}: {error}") from None
            if not np.all(np.isfinite(vector)):
                raise WordVectorsError(f"{path}, line {number}: a value is NaN or infinite")
            vectors.setdefault(word, vector)
    if dimension is None:
        raise WordVectorsError(f"{path}: no word vectors in the file")
    return vectors, dimension


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_word(fields, dimension):
    """`(word, values)` of one line's fields; values None when the count is wrong.

    A few words in GloVe 840B contain spaces: extra leading fields that are not numbers
    belong to the word. An extra number is a malformed line.
    """
    if len(fields) - 1 == dimension:
        return fields[0], fields[1:]
    extra = fields[: len(fields) - dimension]
    if len(fields) - 1 > dimension and not any(_is_number(field) for field in extra[1:]):
        return " ".join(extra), fields[len(fields) - dimension :]
    return fields[0], None


def write_word_vectors(path, words, vectors):
    """Writes `words` and their rows of `vectors` in the GloVe text format."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for word, vector in zip(words, vectors, strict=True):
            handle.write(word + " " + " ".join(f"{value:.6g}" for value in vector) + "\n")


def embedding_rows(path, tokens, matrix):
    """`matrix` (one row per token) with the rows of the tokens that `path` has vectors for.

    The vectors are rescaled to the standard deviation of `matrix` (the layer's own
    initialisation), so known and unknown words start on the same scale. Returns the new
    matrix and the number of rows replaced.
    """
    vectors, dimension = read_word_vectors(path, tokens)
    if dimension != matrix.shape[1]:
        raise WordVectorsError(
            f"{path}: vectors have {dimension} values, the embedding has {matrix.shape[1]};"
            f" set the embedding size to {dimension}"
        )
    matrix = np.array(matrix, dtype=np.float32, copy=True)
    found = [row for row, token in enumerate(tokens) if token in vectors]
    if not found:
        return matrix, 0
    known = np.stack([vectors[tokens[row]] for row in found])
    scale = float(np.std(matrix)) / max(float(np.std(known)), 1e-12)
    matrix[found] = known * scale
    return matrix, len(found)


def cooccurrence_counts(documents, vocabulary_size, window=5):
    """Symmetric co-occurrence counts `(vocabulary_size, vocabulary_size)`, float32.

    `documents` yields arrays of word ids (-1 for words outside the vocabulary, which
    still take up their position). A pair `distance` words apart adds `1 / distance`
    (as GloVe and word2vec's dynamic window weight near words more).
    """
    separator = np.full(window, -1, dtype=np.int64)
    stream = np.concatenate(
        [part for ids in documents for part in (np.asarray(ids, dtype=np.int64), separator)]
    )
    counts = np.zeros((vocabulary_size, vocabulary_size), dtype=np.float32)
    for distance in range(1, window + 1):
        left, right = stream[:-distance], stream[distance:]
        both = (left >= 0) & (right >= 0)
        # Unique pair codes, not a bincount over all vocabulary_size**2 cells: memory
        # stays at the number of pairs in the text.
        pairs, occurrences = np.unique(
            left[both] * vocabulary_size + right[both], return_counts=True
        )
        rows, columns = np.divmod(pairs, vocabulary_size)
        weights = occurrences.astype(np.float32) / distance
        counts[rows, columns] += weights
        counts[columns, rows] += weights
    return counts


def ppmi_svd(counts, dimension, seed=0, context_smoothing=0.75, power_iterations=3):
    """Word vectors `(words, dimension)` from co-occurrence counts, rows of unit length.

    Positive PMI with context distribution smoothing (counts ** 0.75), then a randomised
    truncated SVD (Halko et al. 2011); a word's vector is U sqrt(S), the symmetric
    weighting Levy et al. found best.
    """
    if dimension >= counts.shape[0]:
        raise ValueError(f"dimension {dimension} must be below the vocabulary size")
    total = counts.sum()
    if total <= 0:
        raise ValueError("no co-occurrences: the corpus has no two in-vocabulary words together")
    word_share = counts.sum(axis=1) / total
    context = counts.sum(axis=0) ** context_smoothing
    context_share = context / context.sum()
    tiny = np.finfo(np.float32).tiny
    # In place, one matrix besides the counts: log(0) is -inf and clips to 0 below.
    ppmi = np.divide(counts, total, dtype=np.float32)
    with np.errstate(divide="ignore"):
        np.log(ppmi, out=ppmi)
    ppmi -= np.log(np.maximum(word_share, tiny)).astype(np.float32)[:, None]
    ppmi -= np.log(np.maximum(context_share, tiny)).astype(np.float32)[None, :]
    np.maximum(ppmi, 0, out=ppmi)
    random = np.random.default_rng(seed)
    basis = ppmi @ random.standard_normal((counts.shape[0], dimension + 20)).astype(np.float32)
    for _ in range(power_iterations):
        basis, _ = np.linalg.qr(basis)
        basis = ppmi @ (ppmi.T @ basis)
    basis, _ = np.linalg.qr(basis)
    left, singular, _ = np.linalg.svd(basis.T @ ppmi, full_matrices=False)
    vectors = (basis @ left)[:, :dimension] * np.sqrt(singular[:dimension])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def learn_word_vectors(documents, dimension=128, max_words=20000, window=5, min_count=5, seed=0):
    """`(words, vectors)` learned from `documents` (lists of tokens), most frequent first."""
    documents = [list(tokens) for tokens in documents]
    frequency = collections.Counter(token for tokens in documents for token in tokens)
    words = [word for word, count in frequency.most_common(max_words) if count >= min_count]
    if len(words) <= dimension:
        raise ValueError(
            f"only {len(words)} words occur {min_count} times or more; need more than"
            f" {dimension} for {dimension}-dimensional vectors"
        )
    index = {word: position for position, word in enumerate(words)}
    ids = ([index.get(token, -1) for token in tokens] for tokens in documents)
    counts = cooccurrence_counts(ids, len(words), window)
    return words, ppmi_svd(counts, dimension, seed)


def nearest_words(words, vectors, word, count=5):
    """The `count` words whose vectors have the highest cosine similarity to `word`'s."""
    position = words.index(word)
    similarity = vectors @ vectors[position]
    order = [index for index in np.argsort(-similarity) if index != position]
    return [words[index] for index in order[:count]]


def read_corpus(app, config, sources, split="train"):
    """`(documents, info)`: the token lists of `split` of every source, and the first's info.

    Each source is loaded by the app with `config` and `data.source` set to it; the
    tokens are exactly the model's (`app.tokens_of`).
    """
    from apps.common import config as config_lib

    documents, first_info = [], None
    for source in sources:
        loaded = app.load_data(config_lib.apply_overrides(config, {"data.source": source}))
        if split not in loaded.splits:
            raise WordVectorsError(
                f"{source}: no split {split!r} (splits: {', '.join(loaded.splits)})"
            )
        first_info = loaded.info if first_info is None else first_info
        before = len(documents)
        for tokens in loaded.splits[split].map(app.tokens_of).as_numpy_iterator():
            documents.append([token.decode("utf-8") for token in tokens])
        print(f"{source}: {len(documents) - before:,} {split} examples")
    return documents, first_info


def vectors_command(app, arguments):
    """`python -m apps.<app> vectors`: learns word vectors from the app's data, writes them."""
    import time

    from apps.common import config as config_lib

    started = time.time()
    config = config_lib.resolve_config(app.config_class, None, arguments.overrides)
    documents, _ = read_corpus(app, config, arguments.data, arguments.split)
    words, vectors = learn_word_vectors(
        documents,
        dimension=arguments.dim,
        max_words=arguments.max_words,
        window=arguments.window,
        min_count=arguments.min_count,
    )
    write_word_vectors(arguments.output, words, vectors)
    # What made the file, beside it, as runs keep their resolved config.
    settings = {
        key: getattr(arguments, key)
        for key in ("data", "split", "dim", "max_words", "window", "min_count", "overrides")
    }
    with open(arguments.output + ".json", "w", encoding="utf-8") as handle:
        json.dump({**settings, "words": len(words)}, handle, indent=2)
    print(
        f"wrote {len(words):,} word vectors of {arguments.dim} values to {arguments.output}"
        f" in {time.time() - started:.0f} s; nearest words:"
    )
    for word in [word for word in arguments.probe_words if word in words]:
        print(f"  {word}: {', '.join(nearest_words(words, vectors, word))}")
