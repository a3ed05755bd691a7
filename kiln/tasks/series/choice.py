"""model=auto's last step on a single short series (at most `MAX_WINDOWS` training windows): the trained model against classical forecasters computed inside a
Keras model, chosen on the val stretch's rolling origins (every origin whose horizon lies in val).

    candidates  kiln            the trained model (the linear + dense ensemble by default)
                ar              an autoregression whose lags AIC chose on the training stretch, unrolled over the
                                horizon into one fixed linear map of the last steps (`LinearForecast`)
                seasonal_naive  the value one season back, as the same fixed map
                kiln+ar         the mean of the trained model and the AR
                kiln+ar+seasonal_naive  the mean of all three (combinations: the M-competitions' steadiest lesson)

The default is the combination kiln+ar (the M-competitions' steadiest lesson: a mean of diverse forecasters rarely
loses much and often wins); another candidate replaces it only when its val MASE is lower by more than `MARGIN`
(10 %), because val holds 5-60 overlapping origins and small edges there are noise. Measured (issue 33, seed 0,
bench/series.py --late): at 6 late origins never trained on, kiln+ar beat the trained model alone on all 7 series
(e.g. sunspots 0.592 against 0.929, inflation 1.492 against 1.585), while val preferred the trained model alone on
3 of 6, and seasonal naive on sunspots (val 1.135 against kiln+ar's 1.182; late 1.417 against 0.592). The winner
becomes model.keras, so what the report scores, `kiln predict` forecasts and every export computes is the same
model; the choice and every candidate's val MASE are printed and kept in run.json under "selection". Why: on a few hundred yearly or monthly points a network trained on one stretch can lose to a
one-line method (issue 33: sunspots, Kiln 1.17 against an AR's 0.98); Kiln should then ship the one-line method
and say so. Not for many series (one AR per series is not one global model) or quantile models (the classical
maps have no intervals): those keep the trained model, and the run says why.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("kiln.series")

# The choice runs on short histories only: measured, CO2 weekly (1,500 training windows) picked the AR on val
# (0.316 against the trained model's 0.371 over 177 origins) and scored 0.535 on test where the trained model
# had scored 0.452-0.465 (three seeds): with thousands of windows the network has earned its place, and a val
# stretch of one stretch's weather is the noisier judge.
MAX_WINDOWS = 1000
DEFAULT = "kiln+ar"  # what ships unless val shows a clear winner
MARGIN = 0.10  # how much lower (relative) another candidate's val MASE must be to replace the default


def fixed_model(spec, kernel: np.ndarray, bias: np.ndarray, name: str):
    """A Keras model from (N, lookback, channels) raw windows to (N, horizon): `kernel` (p, H) on the last p target values."""
    import keras

    from kiln.tasks.series.layers import LinearForecast

    inp = keras.Input((spec.lookback, spec.channels), name="history", dtype="float32")
    layer = LinearForecast(kernel.shape[0], spec.horizon, name="classical")
    out = layer(inp)
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return keras.Model(inp, out, name=name)


def seasonal_naive_map(m: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = np.zeros((m, H))
    kernel[np.arange(H) % m, np.arange(H)] = 1.0
    return kernel, np.zeros(H)


def candidates(model, frame, spec, fit=("train",)) -> dict:
    """{name: keras model} of the candidates that fit this run (see the module docstring); the AR is fitted on
    the stretches `fit` (train to choose; train and val for the model that ships, the test stretch never)."""
    from kiln.tasks.series.classical import FIT_TAIL, MAX_LAGS, _filled, ar_matrix, fit_ar
    from kiln.tasks.series.windows import SPLITS, split_of
    from kiln.train.ensemble import Ensemble

    out = {"kiln": model}
    y = frame["y"].to_numpy(np.float64)[np.isin(split_of(frame), [SPLITS[s] for s in fit])][-FIT_TAIL:]
    if np.isfinite(y).sum() >= 12:
        lags, params = fit_ar(_filled(y), spec.season, max_lag=min(spec.lookback, MAX_LAGS))
        if lags:
            kernel, bias = ar_matrix(lags, params, spec.horizon)
            out["ar"] = fixed_model(spec, kernel, bias, "ar")
            out["kiln+ar"] = Ensemble([model, out["ar"]], name="ensemble")
    if 1 <= spec.season <= spec.lookback:
        out["seasonal_naive"] = fixed_model(spec, *seasonal_naive_map(spec.season, spec.horizon), "seasonal_naive")
        if "ar" in out:
            out["kiln+ar+seasonal_naive"] = Ensemble([model, out["ar"], out["seasonal_naive"]], name="ensemble")
    return out


def pick(scores: dict, default: str = DEFAULT, margin: float = MARGIN) -> str:
    """The candidate that ships: `default` unless another has a val MASE lower by more than `margin` (relative),
    then the lowest; the lowest when `default` was not scored."""
    best = min(scores, key=scores.get)
    if default in scores and best != default and scores[best] > (1 - margin) * scores[default]:
        return default
    return best


def choose(run, frame, spec, train_windows: int = 0) -> dict:
    """Score the candidates on val; the default combination, or the candidate that beats it by `MARGIN` (`pick`),
    becomes the run's model (`run.model`, which
    the trainer saves as model.keras). Returns the run.json keys to add ({"selection": record, and "model" when
    another model ships}; {} when there is nothing to choose: no val window)."""
    from kiln.tasks.series.evaluate import backtest

    skip = ("many series: one global model" if frame["series"].nunique() > 1 else
            "quantiles: the classical forecasters have no intervals" if spec.quantiles else
            f"{train_windows:,} training windows, more than {MAX_WINDOWS:,}: a long history" if train_windows > MAX_WINDOWS else None)
    if skip:
        return {"selection": {"chosen": "kiln", "why": f"the trained model is kept without a check against classical forecasters ({skip})"}}
    models = candidates(run.model, frame, spec)
    scores, windows = {}, 0
    for name, m in models.items():
        result = backtest(m, frame, spec, "val", holt=False, origins=None)
        if result.get("windows"):
            scores[name], windows = float(result["mase"]), int(result["windows"])
    if "kiln" not in scores:
        return {}
    best = pick(scores)
    names = {"kiln": "the trained model", "ar": "an AR (lags by AIC) computed inside the model", "seasonal_naive": "seasonal naive",
             "kiln+ar": "the mean of the trained model and the AR",
             "kiln+ar+seasonal_naive": "the mean of the trained model, the AR and seasonal naive"}
    listed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items(), key=lambda kv: kv[1]))
    record = {"chosen": best, "val_mase": scores, "val_windows": windows}
    meta, learned = run.meta, {}
    lowest = min(scores, key=scores.get)
    because = (f"no candidate's val MASE is {MARGIN:.0%} below it on {windows} rolling origins ({listed}), "
               "too few to overturn the combination"
               if best == DEFAULT and lowest != DEFAULT else
               f"it is the default combination and has the lowest val MASE on {windows} rolling origins ({listed})" if best == DEFAULT else
               f"its val MASE is the lowest on {windows} rolling origins ({listed})" + (
                   f", more than {MARGIN:.0%} below the default {DEFAULT}'s" if DEFAULT in scores else ""))
    if best == "kiln":
        record["why"] = f"the trained model: {because}"
    else:
        record["why"] = f"{names[best]}: {because}; model.keras holds it, so the report, predict and every export use it"
        record["trained_model"] = meta.get("model")
        if "ar" in best.split("+"):  # chosen on val with an AR fitted on train; the one that ships has seen val too
            models = candidates(run.model, frame, spec, fit=("train", "val"))
            record["why"] += "; its AR refitted on the training and val stretches"
        run.__dict__["model"] = models[best]  # what the trainer saves as model.keras
        learned["model"] = best.replace("kiln", meta.get("model") or "kiln")
    learned["selection"] = record
    print(f"kiln: auto: series.model={best} ({record['why']})", flush=True)
    return learned


__all__ = ["DEFAULT", "MARGIN", "MAX_WINDOWS", "candidates", "choose", "fixed_model", "pick", "seasonal_naive_map"]
