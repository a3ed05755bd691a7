"""Tiny generated review data for tests and the contract test: sentiment carried by a few words among filler,
with punctuation, mixed case and some non-ASCII, so tokenisation differences would show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = ["wonderful", "delightful", "great", "superb", "moving", "brilliant", "charming", "excellent"]
NEGATIVE = ["dull", "boring", "awful", "tedious", "clumsy", "terrible", "bland", "weak"]
MIXED = ["okay", "average", "mediocre", "passable", "decent", "uneven", "so-so", "middling"]
FILLER = ["the", "film", "plot", "actors", "scene", "story", "was", "and", "a", "it", "café", "director", "music",
          "ending", "we", "saw", "this", "with", "friends", "on", "sunday"]


def reviews(n: int = 240, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    """`n` reviews: columns review, sentiment (neg / pos; with classes=3 also "mixed"), each carried by 1-3 cue words."""
    rng = np.random.default_rng(seed)
    names = ["neg", "pos", "mixed"][:classes]
    rows = []
    for i in range(n):
        label = names[i % classes]
        words = list(rng.choice(FILLER, size=int(rng.integers(6, 30))))
        cues = {"pos": POSITIVE, "neg": NEGATIVE, "mixed": MIXED}[label]
        picks = [rng.choice(cues) for _ in range(int(rng.integers(1, 4)))]
        for w in picks:
            words.insert(int(rng.integers(0, len(words) + 1)), str(w).upper() if rng.random() < 0.2 else str(w))
        text = " ".join(words)
        rows.append((text[0].upper() + text[1:] + rng.choice([".", "!", "?!", " :)"]), label))
    return pd.DataFrame(rows, columns=["review", "sentiment"])


def write_reviews(path: Path, n: int = 240, seed: int = 0, classes: int = 2) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reviews(n, seed, classes).to_csv(path, index=False)
    return path


def write_folder(root: Path, n: int = 120, seed: int = 0) -> Path:
    """The same reviews as DIR/<label>/<i>.txt."""
    root = Path(root)
    for i, (text, label) in enumerate(reviews(n, seed).itertuples(index=False)):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    return root


__all__ = ["reviews", "write_folder", "write_reviews"]
