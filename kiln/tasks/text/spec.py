"""What a text model is built from, decided on the training split only: the vocabulary (with n-grams),
the idf weights, the sequence length and the token statistics the report and `auto` quote.

The vocabulary is counted with the tokenizer of kiln/tasks/text/tokenize.py, which reproduces
TextVectorization exactly; the model's TextVectorization layer is then given that vocabulary, so the
model, the exported tokenizer files and the statistics all tokenise alike.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from kiln.tasks.text.models import BAGS

BAG_RANGE = (8, 8192)  # bow costs little per token: it sees nearly every text whole
CHAR_RANGE = (8, 32768)  # char_wb makes ~4 tokens a character: 32,768 reads the first ~8,000 characters of a text
BAG_TOKENS = 50_000  # n-grams need a larger vocabulary than words; sequence models: 20,000
DEFAULT_RANGE = (8, 512)


@dataclass
class TextSpec:
    text_column: str | None
    label_column: str | None
    classes: list[str]
    model: str  # the registered model the run trains (model=auto resolved)
    ngrams: int
    output_mode: str  # int | tf_idf | count
    sequence_length: int
    vocabulary_size: int
    max_chars: int
    on_long: str = "truncate"  # serve: a text over max_chars is truncated or rejected
    analyzer: str = "word"  # word | char_wb (character 2-5-grams within words; bow only)
    stats: dict = field(default_factory=dict)  # token lengths, truncated share, OOV rate on val
    vocabulary: list[str] = field(default_factory=list, repr=False)  # not in run.json: the model carries it

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("vocabulary")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TextSpec":
        keys = set(cls.__dataclass_fields__) - {"vocabulary"}
        return cls(**{k: d[k] for k in keys if k in d})


def tokenizer(ngrams: int, sequence_length: int = 1, vocabulary=("", "[UNK]"), analyzer: str = "word"):
    from kiln.tasks.text.tokenize import Tokenizer

    return Tokenizer(list(vocabulary), sequence_length, ngrams, analyzer)


def count_vocabulary(token_lists, max_tokens: int) -> tuple[list[str], Counter]:
    """["", "[UNK]", most frequent tokens...] (ties by token) and each token's document frequency."""
    freq: Counter = Counter()
    df: Counter = Counter()
    for tokens in token_lists:
        freq.update(tokens)
        df.update(set(tokens))
    top = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, max_tokens - 2)]
    return ["", "[UNK]", *[t for t, _ in top]], df


def idf_weights(vocabulary: list[str], df: Counter, n_docs: int, output_mode: str) -> np.ndarray:
    """TextVectorization's idf, log(1 + N / (1 + df)), per vocabulary id; 0 for padding, OOV from the unknown tokens' df."""
    if output_mode == "count":
        w = np.ones(len(vocabulary), np.float32)
    else:
        w = np.array([math.log(1 + n_docs / (1 + df.get(t, 0))) for t in vocabulary], np.float32)
    w[0] = 0.0
    return w


def auto_analyzer(model: str) -> str:
    """analyzer=auto: char_wb for bow, word for every other model (bow_transformer's encoder reads words).

    Why: on the SpamAssassin bench (BENCHMARKS.md, ten splits) the same linear model scored higher on character
    2-5-grams within words than on word 1-2-grams, in scikit-learn (0.9512 vs 0.9432) and as Kiln's bow."""
    return "char_wb" if model == "bow" else "word"


def choose_length(lengths: np.ndarray, model: str, asked, analyzer: str = "word") -> int:
    if asked != "auto":
        return int(asked)
    lo, hi = CHAR_RANGE if analyzer == "char_wb" else BAG_RANGE if model in BAGS else DEFAULT_RANGE
    q = 99 if model in BAGS else 95
    n = float(np.percentile(lengths, q)) if len(lengths) else lo
    return int(min(hi, max(lo, int(math.ceil(n / 8.0) * 8))))


def build_spec(rows, cfg, model: str, classes: list[str], columns: dict) -> tuple[TextSpec, np.ndarray]:
    """(spec, idf weights) from the rows' train split (val only for the OOV rate)."""
    t = cfg.text
    bag = model in BAGS
    ngrams = (2 if bag else 1) if t.ngrams == "auto" else int(t.ngrams)
    output_mode = ("tf_idf" if bag else "int") if t.output_mode == "auto" else t.output_mode
    analyzer = auto_analyzer(model) if t.analyzer == "auto" else t.analyzer
    tok = tokenizer(ngrams, analyzer=analyzer)
    train = rows[rows["split"] == "train"]["text"].tolist()
    train_tokens = [tok.tokens(s) for s in train]
    vocabulary, df = count_vocabulary(train_tokens, (BAG_TOKENS if bag else 20_000) if t.max_tokens == "auto" else int(t.max_tokens))
    lengths = np.array([len(x) for x in train_tokens])
    seq = choose_length(lengths, model, t.sequence_length, analyzer)
    index = set(vocabulary)
    val_tokens = [tok.tokens(s) for s in rows[rows["split"] == "val"]["text"].tolist()]
    n_val = sum(len(x) for x in val_tokens)
    oov = sum(1 for x in val_tokens for w in x if w not in index)
    val_lengths = np.array([len(x) for x in val_tokens])
    words = np.array([len(tokenizer(1).tokens(s)) for s in train[:5000]])
    stats = {
        "train_tokens_median": float(np.median(lengths)) if len(lengths) else 0.0,
        "train_tokens_p95": float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
        "train_tokens_max": int(lengths.max()) if len(lengths) else 0,
        "train_words_median": float(np.median(words)) if len(words) else 0.0,
        "truncated_train": float(np.mean(lengths > seq)) if len(lengths) else 0.0,
        "truncated_val": float(np.mean(val_lengths > seq)) if len(val_lengths) else None,
        "oov_rate_val": float(oov / n_val) if n_val else None,
        "vocabulary_found": len(vocabulary),
    }
    idf = idf_weights(vocabulary, df, len(train), output_mode)
    if output_mode == "tf_idf":  # the OOV id's df: training texts with a token left out of the vocabulary
        oov_docs = sum(1 for x in train_tokens if any(w not in index for w in x))
        idf[1] = math.log(1 + len(train) / (1 + oov_docs))
    spec = TextSpec(columns.get("text"), columns.get("label"), list(classes), model, ngrams, output_mode, seq, len(vocabulary),
                    t.max_chars, t.on_long, analyzer, stats, vocabulary)
    return spec, idf


__all__ = ["TextSpec", "auto_analyzer", "build_spec", "choose_length", "count_vocabulary", "idf_weights", "tokenizer"]
