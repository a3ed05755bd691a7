"""Which tokens mattered for one prediction: occlusion over words (Zeiler & Fergus 2014, on text).

Each word is removed in turn (the rest re-tokenised, so its n-grams go too) and the drop in the
predicted class's probability is that word's importance; all variants of all texts run in one batch.

    explain(run, ["a wonderful film"], [1])  # [[("wonderful", 0.41), ("film", 0.02), ("a", -0.01)]]
"""

from __future__ import annotations

import numpy as np

from kiln.tasks.text.tokenize import words

MAX_WORDS = 80  # words occluded per text (the rest are kept, never scored)


def explain(run, texts: list[str], classes: list[int], top: int = 5) -> list[list[tuple[str, float]]]:
    """For each text, its `top` words by the probability of `classes[i]` they carry (positive: they support it)."""
    variants, owners = [], []
    split = [words(t)[:MAX_WORDS] for t in texts]
    for i, ws in enumerate(split):
        variants.append(" ".join(ws))
        owners.append((i, -1))
        for j in range(len(ws)):
            variants.append(" ".join(ws[:j] + ws[j + 1:]))
            owners.append((i, j))
    probs = run.task.predict_outputs(run, variants)
    base = {i: probs[k, classes[i]] for k, (i, j) in enumerate(owners) if j < 0}
    scores: list[dict] = [dict() for _ in texts]
    for k, (i, j) in enumerate(owners):
        if j >= 0:
            w = split[i][j]
            scores[i][w] = max(scores[i].get(w, -np.inf), float(base[i] - probs[k, classes[i]]))
    return [sorted(s.items(), key=lambda kv: -kv[1])[:top] for s in scores]


__all__ = ["explain"]
