"""The exact tokenisation of Kiln's text models, in plain Python: raw text -> token ids.

Kiln's models tokenise inside the graph with `keras.layers.TextVectorization` (standardize
"lower_and_strip_punctuation", split on whitespace, n-grams, vocabulary lookup, pad/truncate). TFLite
and tf2onnx cannot carry that layer, so their exports take token ids and ship this file, the
vocabulary (vocabulary.txt) and the settings (tokenizer.json) beside the model. This module uses only
the standard library and numpy, so it runs wherever the export runs:

    from tokenizer import Tokenizer
    ids = Tokenizer.load("exports/tflite").ids(["a great film", "dull"])   # (2, sequence_length) int64

The export's parity check runs the test split through this function and the exported model, in the
export's own runtime, and compares with the Keras model (>= 0.99 agreement), so the two cannot drift.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

# TextVectorization's `strip_punctuation` pattern (ASCII punctuation removed, not replaced by a space).
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
# tf.strings.split without a separator splits on ASCII whitespace only (not on U+00A0 and friends).
WHITESPACE = re.compile(r"[ \t\n\r\v\f]+")
# tf.strings.lower without an encoding lowercases ASCII letters only.
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

VOCABULARY = "vocabulary.txt"
SETTINGS = "tokenizer.json"


def standardize(text: str) -> str:
    return PUNCTUATION.sub("", text.translate(ASCII_LOWER))


def words(text: str) -> list[str]:
    return [w for w in WHITESPACE.split(standardize(text)) if w]


def ngrams(tokens: list[str], widths) -> list[str]:
    """tf.strings.ngrams: every 1-gram, then every 2-gram, ... joined by one space."""
    out: list[str] = []
    for n in widths:
        out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return out


class Tokenizer:
    """Raw strings -> (N, sequence_length) int64 ids: 0 pads, 1 is out of vocabulary ("[UNK]")."""

    def __init__(self, vocabulary: list[str], sequence_length: int, ngrams: int = 1):
        self.vocabulary = list(vocabulary)
        self.index = {tok: i for i, tok in enumerate(self.vocabulary)}  # "" -> 0, "[UNK]" -> 1
        self.sequence_length = int(sequence_length)
        self.widths = tuple(range(1, int(ngrams) + 1))

    def tokens(self, text: str) -> list[str]:
        return ngrams(words(text), self.widths)

    def ids(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.sequence_length), dtype=np.int64)
        for row, text in enumerate(texts):
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            ids = [self.index.get(t, 1) for t in self.tokens(str(text))][: self.sequence_length]
            out[row, : len(ids)] = ids
        return out

    def settings(self) -> dict:
        return {"standardize": "lower_and_strip_punctuation", "split": "whitespace", "ngrams": len(self.widths),
                "sequence_length": self.sequence_length, "pad_id": 0, "oov_id": 1, "vocabulary": VOCABULARY,
                "vocabulary_size": len(self.vocabulary)}

    def save(self, folder) -> None:
        folder = Path(folder)
        (folder / VOCABULARY).write_text("".join(f"{t}\n" for t in self.vocabulary[2:]), encoding="utf-8")
        (folder / SETTINGS).write_text(json.dumps(self.settings(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder) -> "Tokenizer":
        folder = Path(folder)
        settings = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
        vocab = (folder / settings.get("vocabulary", VOCABULARY)).read_text(encoding="utf-8").split("\n")[:-1]
        return cls(["", "[UNK]", *vocab], settings["sequence_length"], settings["ngrams"])
