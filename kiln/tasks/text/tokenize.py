"""The exact tokenisation of Kiln's text models, in plain Python: raw text -> token ids.

Kiln's models tokenise inside the graph with `keras.layers.TextVectorization` (standardize
"lower_and_strip_punctuation", split on whitespace, n-grams, vocabulary lookup, pad/truncate; or, with
analyzer=char_wb, standardize "lower" and character 2-5-grams within words). TFLite
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


ANALYZERS = ("word", "char_wb")
CHAR_WIDTHS = (2, 3, 4, 5)  # char_wb: the character n-gram widths, within words


def standardize(text: str) -> str:
    return PUNCTUATION.sub("", text.translate(ASCII_LOWER))


def words(text: str) -> list[str]:
    return [w for w in WHITESPACE.split(standardize(text)) if w]


def char_wb(text: str, widths=CHAR_WIDTHS) -> list[str]:
    """Character n-grams within words (scikit-learn's char_wb, without its n-grams longer than a short word):
    ASCII-lowercased, punctuation kept, each whitespace-split word padded with one space a side; per word, every
    2-gram, then every 3-gram, ... (layers.char_wb_split, TextVectorization's `split`, gives the same tokens)."""
    out: list[str] = []
    for w in WHITESPACE.split(text.translate(ASCII_LOWER)):
        if not w:
            continue
        p = f" {w} "
        for n in widths:
            out.extend(p[i:i + n] for i in range(len(p) - n + 1))
    return out


def ngrams(tokens: list[str], widths) -> list[str]:
    """tf.strings.ngrams: every 1-gram, then every 2-gram, ... joined by one space."""
    out: list[str] = []
    for n in widths:
        out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return out


class Tokenizer:
    """Raw strings -> (N, sequence_length) int64 ids: 0 pads, 1 is out of vocabulary ("[UNK]")."""

    def __init__(self, vocabulary: list[str], sequence_length: int, ngrams: int = 1, analyzer: str = "word"):
        self.vocabulary = list(vocabulary)
        self.index = {tok: i for i, tok in enumerate(self.vocabulary)}  # "" -> 0, "[UNK]" -> 1
        self.sequence_length = int(sequence_length)
        self.widths = tuple(range(1, int(ngrams) + 1))
        self.analyzer = analyzer

    def tokens(self, text: str) -> list[str]:
        return char_wb(text) if self.analyzer == "char_wb" else ngrams(words(text), self.widths)

    def ids(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.sequence_length), dtype=np.int64)
        for row, text in enumerate(texts):
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            ids = [self.index.get(t, 1) for t in self.tokens(str(text))][: self.sequence_length]
            out[row, : len(ids)] = ids
        return out

    def settings(self) -> dict:
        if self.analyzer == "char_wb":
            how = {"analyzer": "char_wb", "standardize": "lower", "split": "char_wb", "char_widths": list(CHAR_WIDTHS)}
        else:
            how = {"analyzer": "word", "standardize": "lower_and_strip_punctuation", "split": "whitespace", "ngrams": len(self.widths)}
        return {**how, "sequence_length": self.sequence_length, "pad_id": 0, "oov_id": 1, "vocabulary": VOCABULARY,
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
        return cls(["", "[UNK]", *vocab], settings["sequence_length"], settings.get("ngrams", 1), settings.get("analyzer", "word"))
