"""Which decision threshold should a two-class run use by default: 0.5 (argmax) or max_f1 chosen on val?

Real packaged data only: the Fair affairs survey (statsmodels, 6,366 rows, affairs > 0 is 32 % "yes"), scikit-learn's
breast cancer (569 rows, 37 % malignant), and the survey thinned to 10 % and 5 % "yes" (seeded) for a rare class.
For each of 20 seeded stratified 80/10/10 splits: scikit-learn's LogisticRegression (standardised columns, the model
`model=auto` picks on these tables) fitted on train, the threshold chosen on val by kiln.evaluate.threshold, scored
on test. Prints the mean test accuracy and positive-class F1 at 0.5 and at max_f1's threshold, and what `auto` picks.

    PYTHONPATH=. .venv/bin/python bench/threshold_default.py
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kiln.evaluate.threshold import choose_threshold, resolve_rule


def datasets():
    import statsmodels.api as sm

    fair = sm.datasets.fair.load_pandas().data
    x, y = fair.drop(columns=["affairs"]).to_numpy(float), (fair["affairs"] > 0).to_numpy(int)
    yield "fair (statsmodels), 32% yes", x, y
    bc = load_breast_cancer()
    yield "breast cancer (sklearn), 37% malignant", bc.data, 1 - bc.target  # malignant = 1
    rng = np.random.default_rng(0)
    for share in (0.10, 0.05):
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        keep_pos = rng.choice(pos, int(share / (1 - share) * len(neg)), replace=False)
        idx = np.sort(np.concatenate([neg, keep_pos]))
        yield f"fair thinned to {share:.0%} yes", x[idx], y[idx]


def main(seeds: int = 20) -> None:
    print(f"{'data':<40} {'acc@0.5':>8} {'acc@max_f1':>10} {'F1@0.5':>7} {'F1@max_f1':>9} {'mean t':>7}  auto picks")
    for name, x, y in datasets():
        rows = []
        for seed in range(seeds):
            xtr, xrest, ytr, yrest = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
            xva, xte, yva, yte = train_test_split(xrest, yrest, test_size=0.5, stratify=yrest, random_state=seed)
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xtr, ytr)
            t, _ = choose_threshold(yva, model.predict_proba(xva), "max_f1")
            p = model.predict_proba(xte)[:, 1]
            rows.append([accuracy_score(yte, p >= 0.5), accuracy_score(yte, p >= t), f1_score(yte, p >= 0.5),
                         f1_score(yte, p >= t), t])
        a = np.mean(rows, axis=0)
        print(f"{name:<40} {a[0]:>8.4f} {a[1]:>10.4f} {a[2]:>7.4f} {a[3]:>9.4f} {a[4]:>7.3f}  {resolve_rule('auto', y)[0]}")


if __name__ == "__main__":
    main()
