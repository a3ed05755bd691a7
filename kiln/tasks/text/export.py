"""Export signatures for text runs: the tokenizer always travels with the model.

- keras, savedmodel: the whole model, `text` (N,) strings in (TextVectorization inside the graph).
- tflite, onnx: neither converter carries TextVectorization (string ops, a hash table), so these export
  `token_model`, `token_ids` (N, sequence_length) int64 in, and ship the tokenizer beside it:
  tokenizer.py (kiln/tasks/text/tokenize.py, standard library + numpy), vocabulary.txt and
  tokenizer.json. The export's `host` step is that tokenizer, so the spine's parity check runs raw test
  texts through tokenizer.py and the model file in its own runtime (LiteRT / onnxruntime).
- TFLite has no builtin for the TensorList loop of a Keras LSTM / GRU over a free batch size: the
  recurrent layers are unrolled over the fixed sequence length in the exported copy (same weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kiln.errors import DataError, received
from kiln.tasks.base import Signature, TensorSpec

ID_FORMATS = ("tflite", "onnx")


def _out(run) -> tuple:
    return (TensorSpec("probabilities", "float32", (len(run.classes),)),)


def signature(run) -> Signature:
    """`text` (N,) strings -> `probabilities` (N, K): the run's Keras model as it is."""
    spec = run.task.load_spec(run.meta)

    def call(model, x):
        return {"probabilities": model(x["text"])}

    return Signature((TensorSpec("text", "string", ()),), _out(run), call, labels=list(run.classes),
                     meta={"text": spec.to_dict()})


def vocabulary(model) -> list[str]:
    from kiln.tasks.text.models import vectorizer

    return [str(t) for t in vectorizer(model).get_vocabulary()]


def tokenizer_of(run):
    from kiln.tasks.text.tokenize import Tokenizer

    spec = run.task.load_spec(run.meta)
    return Tokenizer(vocabulary(run.model), spec.sequence_length, spec.ngrams, spec.analyzer)


def _unrolled(token_model):
    """A copy of `token_model` whose LSTM / GRU layers are unrolled (TFLite converts that to builtins)."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            config["unroll"] = True
        elif isinstance(layer, keras.layers.Bidirectional):
            for key in ("layer", "backward_layer"):
                if isinstance(config.get(key), dict):
                    config[key]["config"]["unroll"] = True
        return layer.__class__.from_config(config)

    recurrent = any(isinstance(l, (keras.layers.LSTM, keras.layers.GRU, keras.layers.Bidirectional)) for l in token_model.layers)
    if not recurrent:
        return token_model
    copy = keras.models.clone_model(token_model, clone_function=clone)
    copy.set_weights(token_model.get_weights())
    return copy


def _token_model(model, spec):
    """The run's token-id model; an ensemble's members averaged in one functional model (what its `call` does at inference)."""
    import keras

    from kiln.tasks.text.models import TOKEN_MODEL, token_models

    models = token_models(model)
    if len(models) == 1:
        return models[0]
    ids = keras.Input(shape=(spec.sequence_length,), dtype="int64", name="token_ids")
    return keras.Model(ids, keras.layers.Average(name="probabilities")([m(ids) for m in models]), name=TOKEN_MODEL)


def export_model(run, format: str):
    """(model, signature) the format writes (see the module docstring)."""
    if format not in ID_FORMATS:
        return run.model, signature(run)
    spec = run.task.load_spec(run.meta)
    token_model = _token_model(run.model, spec)
    if format == "tflite":
        token_model = _unrolled(token_model)
    tok = tokenizer_of(run)
    source = (Path(__file__).parent / "tokenize.py").read_text(encoding="utf-8")
    settings = tok.settings()
    files = {"tokenizer.py": source, "vocabulary.txt": "".join(f"{t}\n" for t in tok.vocabulary[2:]),
             "tokenizer.json": json.dumps(settings, indent=2)}

    def call(model, x):
        return {"probabilities": model(x["token_ids"])}

    def host(texts):
        return tok.ids([str(t) for t in np.asarray(texts, dtype=object).ravel()])

    return token_model, Signature((TensorSpec("token_ids", "int64", (spec.sequence_length,)),), _out(run), call,
                                  labels=list(run.classes), meta={"text": spec.to_dict(), "tokenizer": settings,
                                                                  "tokenize": "tokenizer.py: Tokenizer.load(folder).ids(texts)"},
                                  host=host, files=files)


def parity_texts(run, limit: int):
    """(split, texts (N,) object array, class indices) of the test split, else val, else train."""
    from kiln.tasks.text.evaluate import split_rows

    rows = split_rows(run)
    for name in ("test", "val", "train"):
        part = rows[rows["split"] == name].head(limit)
        if len(part):
            return name, np.asarray(part["text"].tolist(), dtype=object), part["y"].to_numpy()
    raise DataError(received("export", "run", run.path, "the run has no texts to compare on", "Train again"))


__all__ = ["export_model", "parity_texts", "signature", "tokenizer_of", "vocabulary"]
