"""Text models: `bow`, `cnn1d`, `lstm`, `gru`, `bilstm`, `transformer`, `bow_transformer` (an ensemble), all on token ids.

Every model is two nested Keras models: the run's model takes raw strings, tokenises them with
`keras.layers.TextVectorization` (vocabulary adapted on the training split) and calls `token_model`,
which maps (N, sequence_length) int ids (0 pads, 1 is out of vocabulary) to (N, K) probabilities.
SavedModel exports keep the strings; TFLite and ONNX export `token_model` with the tokenizer files.

Builders take `(spec, num_outputs, **keys)` and return `token_model`; `full_model` puts the vectorizer in front.
"""

from __future__ import annotations

import logging

import numpy as np

from kiln.tasks.base import ModelRegistry

log = logging.getLogger("kiln.text")

MODELS = ModelRegistry("text")
TOKEN_MODEL = "token_model"
BAGS = ("bow", "bow_transformer")  # models that read the bag-of-n-grams ids (bow's vocabulary, length, idf)
WORDS = 256  # words the ensemble's encoder reads: the transformer family's measured length (BENCHMARKS.md)


def _ids(spec):
    import keras

    return keras.Input(shape=(spec.sequence_length,), dtype="int64", name="token_ids")


def _head(x, num_outputs: int, dropout: float, prior=None):
    import keras

    bias = "zeros"
    if prior is not None:
        bias = keras.initializers.Constant(np.log(np.clip(np.asarray(prior, float), 1e-6, 1)).tolist())
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(num_outputs, activation="softmax", bias_initializer=bias, name="probabilities")(x)


def _embedding(spec, dim: int, vectors=None):
    import keras

    if vectors is not None:  # pretrained vectors from embeddings=FILE, fine-tuned
        return keras.layers.Embedding(spec.vocabulary_size, vectors.shape[1], embeddings_initializer=keras.initializers.Constant(vectors),
                                      name="embedding")
    return keras.layers.Embedding(spec.vocabulary_size, dim, name="embedding")


@MODELS.register("bow", family="text")
def bow(spec, num_outputs: int, idf=None, hidden: int = 0, dropout: float = 0.0, l2: float = 0.0, prior=None, name: str = TOKEN_MODEL,
        **_):
    """TF-IDF n-grams -> linear softmax (hidden>0: one ReLU layer): the strong classical baseline, in Keras.

    Sublinear tf and L2-normalised rows (IdfBag sublinear=True), as the TF-IDF + logistic regression baseline:
    without them a linear model on the raw TF-IDF of long texts is led by their most repeated words."""
    import keras

    from kiln.tasks.text.layers import IdfBag

    ids = _ids(spec)
    if hidden:
        x = keras.layers.Activation("relu")(IdfBag(spec.vocabulary_size, hidden, idf=idf, l2=l2, sublinear=True, name="bag")(ids))
        out = _head(x, num_outputs, dropout, prior)
    else:
        z = IdfBag(spec.vocabulary_size, num_outputs, idf=idf, l2=l2, sublinear=True, name="bag")(ids)
        out = keras.layers.Activation("softmax", name="probabilities")(z)
    return keras.Model(ids, out, name=name)


@MODELS.register("cnn1d", family="text")
def cnn1d(spec, num_outputs: int, dim: int = 64, filters: int = 128, kernel: int = 5, dropout: float = 0.3, vectors=None, prior=None, **_):
    """Embedding -> Conv1D over token windows -> max over positions (Kim 2014, one width)."""
    import keras

    from kiln.tasks.text.layers import MaskedPool

    ids = _ids(spec)
    x = keras.layers.Dropout(dropout / 2)(_embedding(spec, dim, vectors)(ids))
    x = keras.layers.Conv1D(filters, kernel, padding="same", activation="relu", name="conv")(x)
    x = MaskedPool("max", name="pool")([x, ids])
    return keras.Model(ids, _head(x, num_outputs, dropout, prior), name=TOKEN_MODEL)


def _recurrent(kind: str, spec, num_outputs: int, dim: int, units: int, dropout: float, vectors, prior):
    import keras

    from kiln.tasks.text.layers import MaskedPool

    ids = _ids(spec)
    x = keras.layers.Dropout(dropout / 2)(_embedding(spec, dim, vectors)(ids))
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "bilstm": keras.layers.LSTM}[kind]
    rnn = cell(units, return_sequences=True, name=kind if kind != "bilstm" else "lstm")
    x = keras.layers.Bidirectional(rnn, name="bidirectional")(x) if kind == "bilstm" else rnn(x)
    x = MaskedPool("max", name="pool")([x, ids])  # the states at real tokens: padding at the end never reaches them
    return keras.Model(ids, _head(x, num_outputs, dropout, prior), name=TOKEN_MODEL)


@MODELS.register("lstm", family="text")
def lstm(spec, num_outputs: int, dim: int = 64, units: int = 64, dropout: float = 0.3, vectors=None, prior=None, **_):
    """Embedding -> LSTM over the tokens -> max over positions."""
    return _recurrent("lstm", spec, num_outputs, dim, units, dropout, vectors, prior)


@MODELS.register("gru", family="text")
def gru(spec, num_outputs: int, dim: int = 64, units: int = 64, dropout: float = 0.3, vectors=None, prior=None, **_):
    """Embedding -> GRU over the tokens -> max over positions."""
    return _recurrent("gru", spec, num_outputs, dim, units, dropout, vectors, prior)


@MODELS.register("bilstm", family="text")
def bilstm(spec, num_outputs: int, dim: int = 64, units: int = 64, dropout: float = 0.3, vectors=None, prior=None, **_):
    """Embedding -> Bidirectional LSTM -> max over positions."""
    return _recurrent("bilstm", spec, num_outputs, dim, units, dropout, vectors, prior)


@MODELS.register("transformer", family="text")
def transformer(spec, num_outputs: int, dim: int = 64, heads: int = 2, blocks: int = 2, dropout: float = 0.1, prior=None, **_):
    """Token + position embedding -> Transformer encoder blocks (padding masked) -> mean over tokens."""
    import keras

    ids = _ids(spec)
    return keras.Model(ids, _encoder(ids, spec.vocabulary_size, spec.sequence_length, num_outputs, dim, heads, blocks, dropout, prior),
                       name=TOKEN_MODEL)


def _encoder(ids, vocabulary_size: int, length: int, num_outputs: int, dim: int, heads: int, blocks: int, dropout: float, prior):
    from kiln.tasks.text.layers import EncoderBlock, MaskedPool, TokenAndPosition

    x = TokenAndPosition(vocabulary_size, length, dim, name="embedding")(ids)
    for i in range(blocks):
        x = EncoderBlock(dim, heads, hidden=2 * dim, dropout=dropout, name=f"encoder_{i + 1}")([x, ids])
    x = MaskedPool("mean", name="pool")([x, ids])
    return _head(x, num_outputs, dropout, prior)


@MODELS.register("bow_transformer", family="text")
def bow_transformer(spec, num_outputs: int, idf=None, hidden: int = 0, l2: float = 0.0, dim: int = 64, heads: int = 2, blocks: int = 2,
                    dropout: float = 0.1, prior=None, words: int = WORDS, **_):
    """An ensemble of `bow` and a `transformer` over the first `words` words of the same n-gram ids (mean of their probabilities).

    The two err on different texts (the bag sees every n-gram of a long mail, the encoder word order in its first
    words), so their mean is more often right than either (BENCHMARKS.md, text, session 6). One tokenisation: the
    encoder reads the words of the bag's ids (layers.Words), so exports ship one tokenizer."""
    import keras

    from kiln.tasks.text.layers import Words
    from kiln.train.ensemble import Ensemble

    bag = bow(spec, num_outputs, idf=idf, hidden=hidden, l2=l2, prior=prior, name=f"{TOKEN_MODEL}_bow")
    ids = _ids(spec)
    length = min(int(words), spec.sequence_length)
    w = Words(length, spec.ngrams, name="words")(ids)
    encoder = keras.Model(ids, _encoder(w, spec.vocabulary_size, length, num_outputs, dim, heads, blocks, dropout, prior),
                          name=f"{TOKEN_MODEL}_transformer")
    return Ensemble([bag, encoder], name=TOKEN_MODEL)


def full_model(spec, token_model, name: str):
    """Raw strings (N,) -> TextVectorization -> token_model -> (N, K) probabilities.

    An Ensemble of token models becomes an Ensemble of full models (each with its own copy of the one vectorizer):
    the Ensemble must be the outermost model, as its training call returns every member's output."""
    import keras

    from kiln.train.ensemble import Ensemble

    if isinstance(token_model, Ensemble):
        members = [full_model(spec, m, m.name.removeprefix(f"{TOKEN_MODEL}_")) for m in token_model.members]
        return Ensemble(members, name=name)
    text = keras.Input(shape=(), dtype="string", name="text")
    if getattr(spec, "analyzer", "word") == "char_wb":  # character 2-5-grams within words (tokenize.char_wb)
        from kiln.tasks.text.layers import char_wb_split

        how = {"standardize": "lower", "split": char_wb_split, "ngrams": None}
    else:
        how = {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "ngrams": spec.ngrams if spec.ngrams > 1 else None}
    vectorize = keras.layers.TextVectorization(max_tokens=None, **how, output_mode="int", output_sequence_length=spec.sequence_length,
                                               vocabulary=spec.vocabulary[2:], name="vectorize")
    return keras.Model(text, token_model(vectorize(text)), name=name)


def token_models(model) -> list:
    """The token-id models inside a run's model: one, or one per ensemble member (each member's nested model)."""
    import keras

    from kiln.train.ensemble import members_of

    return [next(l for l in m.layers if isinstance(l, keras.Model)) for m in members_of(model)]


def vectorizer(model):
    """The run's TextVectorization layer (an ensemble's members each hold a copy with the same vocabulary)."""
    from kiln.train.ensemble import members_of

    return members_of(model)[0].get_layer("vectorize")


def read_vectors(path: str, vocabulary: list[str]):
    """(vocabulary size, D) float32 matrix from a GloVe / word2vec text file; unknown words get small random rows.

    Returns (matrix, words found)."""
    from kiln.errors import DataError, received

    rng = np.random.default_rng(0)
    index = {w: i for i, w in enumerate(vocabulary)}
    found: dict[int, np.ndarray] = {}
    dim = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                parts = line.rstrip().split(" ")
                if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec text header: "count dim"
                if len(parts) < 3:
                    continue
                dim = dim or len(parts) - 1
                if parts[0] in index and len(parts) - 1 == dim:
                    found[index[parts[0]]] = np.asarray(parts[1:], dtype=np.float32)
    except OSError as err:
        raise DataError(received("train", "text.embeddings", path, f"it cannot be read ({err.strerror})",
                                 "Pass a GloVe or word2vec text file")) from None
    except ValueError:
        raise DataError(received("train", "text.embeddings", path, "a line is not a word followed by numbers",
                                 "Pass a GloVe or word2vec text file")) from None
    if dim is None:
        raise DataError(received("train", "text.embeddings", path, "it holds no vectors", "Pass a GloVe or word2vec text file"))
    matrix = rng.normal(0, 0.1, (len(vocabulary), dim)).astype(np.float32)
    matrix[0] = 0.0
    for i, v in found.items():
        matrix[i] = v
    return matrix, len(found)


__all__ = ["BAGS", "MODELS", "TOKEN_MODEL", "full_model", "read_vectors", "token_models", "vectorizer"]
