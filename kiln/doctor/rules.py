"""The doctor's rules: thresholds on recorded signals (kiln/doctor/thresholds.py: each number with its reason and source).

Every rule reads a `Signals` (kiln/doctor/signals.py) and returns findings; `diagnose` runs them all, worst first.
A rule whose signal was not recorded (a run from before the recorder, a model without ReLUs) finds nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from kiln.doctor.thresholds import T, Threshold  # noqa: F401  (Threshold: part of this module's names)

SEVERITY = {"error": 0, "warning": 1, "info": 2}


@dataclass
class Finding:
    kind: str
    severity: str  # error | warning | info
    evidence: str
    fix: str
    rule: str = ""
    source: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _f(kind, severity, evidence, fix, key) -> Finding:
    t = T[key]
    return Finding(kind, severity, evidence, fix, t.reason, t.source)


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _phase1(s):
    """(epochs, train loss, val loss or None) of the first phase."""
    h = s.history
    rows = h[h["phase"] == h["phase"].iloc[0]] if "phase" in h.columns else h
    epochs = np.arange(1, len(rows) + 1)
    loss = rows["loss"].astype(float).to_numpy() if "loss" in rows else None
    val = rows["val_loss"].astype(float).to_numpy() if "val_loss" in rows and rows["val_loss"].notna().any() else None
    return epochs, loss, val


def _lr(s) -> float | None:
    lr = s.setting("train", "lr")
    return float(lr) if isinstance(lr, (int, float)) else None


# ---------------------------------------------------------------------------------------------- rules

def diverged(s) -> list[Finding]:
    loss = s.column("loss")
    bad_epochs = np.flatnonzero(~np.isfinite(loss)) if loss is not None else []
    steps = s.values("nonfinite_loss")
    grads = s.rows("nonfinite_grads")
    bad_grads = grads[grads["value"] > 0]
    if not len(bad_epochs) and not len(steps) and not len(bad_grads):
        return []
    parts = []
    if len(bad_epochs):
        e = int(bad_epochs[0])
        last = f"; last finite train loss {_g(loss[e - 1])} at epoch {e}" if e > 0 else ""
        parts.append(f"train loss {loss[e]} at epoch {e + 1}{last}")
    rows = s.rows("nonfinite_loss")
    if len(rows):
        parts.append(f"first non-finite step loss at step {int(rows['step'].iloc[0])}; training stopped there")
    if len(bad_grads):
        parts.append(f"{int(bad_grads['value'].iloc[0])} non-finite gradient values at step {int(bad_grads['step'].iloc[0])}")
    lr = _lr(s)
    fix = (f"Lower the learning rate 10x (lr={lr / 10:g})" if lr else "Lower the learning rate 10x") + \
        ", warm up (schedule=cosine warmup_epochs=1), and check the inputs for NaN"
    return [_f("diverged", "error", "; ".join(parts), fix, "nonfinite")]


def lr_too_high(s) -> list[Finding]:
    epochs, loss, _ = _phase1(s)
    evidence = []
    if loss is not None and len(loss) > 2:
        finite = np.isfinite(loss)
        high = loss[1:] >= T["loss_jump_floor"].value * loss[0]  # wobbles of a loss near zero are noise, not overshoot
        rise = np.flatnonzero(finite[1:] & finite[:-1] & high & (loss[1:] > loss[:-1] * (1 + T["loss_jump"].value)))
        if len(rise) >= T["loss_jumps"].value:
            evidence.append(f"train loss rose over 10 % from one epoch to the next {len(rise)} times (epochs "
                            f"{', '.join(str(int(i) + 2) for i in rise[:5])})")
        if not finite.all() and finite[0]:
            evidence.append(f"train loss went from {_g(loss[0])} at epoch 1 to {loss[~finite][0]}")
    ratios = s.rows("update_ratio", None)
    if len(ratios):
        first = ratios[ratios["step"] <= ratios["step"].median()]
        med = float(np.median(first["value"]))
        if med > T["update_high"].value:
            evidence.append(f"median update/weight ratio {_g(med)} a step (healthy ~1e-3)")
    if not evidence:
        return []
    lr = _lr(s)
    fix = (f"Lower lr 10x (lr={lr / 10:g})" if lr else "Lower the learning rate 10x") + \
        " or warm up (warmup_epochs=1); kiln lr-find suggests one"
    severity = "error" if diverged(s) else "warning"
    return [_f("lr_too_high", severity, "; ".join(evidence), fix, "update_high" if "update" in evidence[-1] else "loss_jump")]


def lr_too_low(s) -> list[Finding]:
    ratios = s.rows("update_ratio", None)
    _, loss, _ = _phase1(s)
    if not len(ratios) or loss is None or len(loss) < 2 or not np.isfinite(loss).all():
        return []
    first = ratios[ratios["step"] <= ratios["step"].median()]
    med = float(np.median(first["value"]))
    drop = 1 - loss[-1] / loss[0] if loss[0] > 0 else 1
    if med >= T["update_low"].value or drop > 0.10:
        return []
    lr = _lr(s)
    fix = (f"Raise lr 10x (lr={lr * 10:g})" if lr else "Raise the learning rate 10x") + "; kiln lr-find suggests one"
    return [_f("lr_too_low", "warning", f"median update/weight ratio {_g(med)} a step (healthy ~1e-3); train loss fell "
               f"only {drop:.1%} ({_g(loss[0])} -> {_g(loss[-1])})", fix, "update_low")]


def bad_init_loss(s) -> list[Finding]:
    init, expected = s.rows("init_loss"), s.rows("expected_init_loss")
    if not len(init) or not len(expected):
        return []
    got, want, what = float(init["value"].iloc[0]), float(expected["value"].iloc[0]), str(expected["layer"].iloc[0])
    if what.startswith("uniform"):
        if got - want <= T["init_excess"].value:
            return []
        key, how = "init_excess", f"{_g(got - want)} nats above"
    else:
        if not want > 0 or got / want <= T["init_ratio"].value:
            return []
        key, how = "init_ratio", f"{_g(got / want)}x"
    return [_f("bad_init_loss", "warning", f"loss at initialisation {_g(got)}, {how} the {_g(want)} of a prediction "
               f"{what}", "Start the output layer at the prior (bias = log class frequencies, or the target mean) "
               "and use a smaller initial scale (model.initializer=glorot_uniform)", key)]


def loss_plateau(s) -> list[Finding]:
    epochs, loss, _ = _phase1(s)
    if loss is None or len(loss) < 6 or not np.isfinite(loss).all() or loss[0] <= 0:
        return []
    for start in range(0, len(loss) - 5):
        window = loss[start:start + 6]
        per_epoch = (window[0] - window[-1]) / window[0] / 5
        if per_epoch < T["plateau"].value and window[-1] >= 0.9 * loss[0]:
            return [_f("loss_plateau", "warning", f"train loss {_g(window[0])} at epoch {start + 1} and {_g(window[-1])} "
                       f"at epoch {start + 6} ({per_epoch:+.2%} an epoch), still within 10 % of epoch 1's {_g(loss[0])}",
                       "Check the labels and the loss (can the model overfit one batch?); then try a 10x "
                       "higher lr or a larger model", "plateau")]
    return []


def overfitting(s) -> list[Finding]:
    epochs, loss, val = _phase1(s)
    if loss is None or val is None or len(val) < 3 or not np.isfinite(val).all():
        return []
    b = int(np.argmin(val))
    rise = val[-1] / val[b] - 1 if val[b] > 0 else 0
    gap = (val[-1] - loss[-1]) / loss[-1] if loss[-1] > 0 else math.inf
    if rise < T["overfit_gap"].value or gap < T["overfit_gap"].value or not loss[-1] < loss[b]:
        return []
    patience = s.setting("train", "patience")
    kept = isinstance(patience, (int, float)) and patience > 0
    evidence = (f"val loss lowest {_g(val[b])} at epoch {b + 1}, {_g(val[-1])} at epoch {len(val)} (+{rise:.0%}) while "
                f"train loss fell {_g(loss[b])} -> {_g(loss[-1])}; (val - train) / train = {gap:.2f}")
    if kept:
        return [_f("overfitting", "info", evidence + f"; early stopping (patience={patience}) kept epoch {b + 1}'s weights",
                   "Nothing to do for this model; more data, dropout or weight decay would let it train longer", "overfit_gap")]
    return [_f("overfitting", "warning", evidence + "; the saved model is the last epoch's",
               "Turn early stopping on (patience=10), add dropout (model.dropout=0.3) or weight decay (model.l2=1e-4), "
               "or get more data", "overfit_gap")]


def underfitting(s) -> list[Finding]:
    epochs, loss, val = _phase1(s)
    planned = s.setting("train", "epochs")
    if loss is None or val is None or len(loss) < 5 or not np.isfinite(loss).all() or not np.isfinite(val).all():
        return []
    if isinstance(planned, int) and len(loss) < planned:
        return []  # stopped early: the run did not run out of epochs
    tail = max(1, int(math.ceil(0.1 * len(val))))
    best = int(np.argmin(val))
    falling = (loss[-2] - loss[-1]) / loss[-2] if loss[-2] > 0 else 0
    if best < len(val) - tail or falling < T["underfit_gain"].value:
        return []
    return [_f("underfitting", "warning", f"val loss was still at its best at epoch {best + 1} of {len(val)} and train loss "
               f"fell {falling:.1%} in the last epoch", f"Train longer (epochs={2 * len(loss)}) or raise the learning rate",
               "underfit_gain")]


def _chance(s, split: str = "val"):
    """(majority share, n) from the run's input-independent baseline or its val class counts."""
    base = ((s.metrics.get("baselines") or {}).get(split) or {})
    for name in ("dummy", "majority", "prior"):
        b = base.get(name) or {}
        if isinstance(b.get("accuracy"), (int, float)):
            return float(b["accuracy"]), int(b.get("n") or (s.metrics.get(split) or {}).get("n") or 0)
    per = (s.metrics.get(split) or {}).get("per_class") or {}
    support = [v.get("support", 0) for v in per.values() if isinstance(v, dict)]
    if support and sum(support):
        return max(support) / sum(support), int(sum(support))
    classes = s.meta.get("classes")
    if classes:
        return 1 / len(classes), int((s.meta.get("counts") or {}).get(split) or 0)
    return None, 0


def at_chance(s) -> list[Finding]:
    acc = s.column("val_accuracy")
    chance, n = _chance(s)
    if acc is None or chance is None or not n or not np.isfinite(acc).any():
        return []
    best = float(np.nanmax(acc))
    margin = T["chance_se"].value * math.sqrt(chance * (1 - chance) / n)
    if best > chance + margin:
        return []
    return [_f("at_chance", "error", f"best val accuracy {best:.3f} against {chance:.3f} for always answering the majority "
               f"class (n={n}, margin {margin:.3f})", "Check that labels match inputs (a shuffled or shifted label column), "
               "the loss for the label format, and the input shapes",
               "chance_se")]


INPUT_FREE = ("dummy", "majority", "prior", "mean", "constant", "median")


def loses_to_baseline(s) -> list[Finding]:
    split = "test" if "test" in (s.metrics.get("baselines") or {}) else "val"
    ours = s.metrics.get(split) or {}
    bases = (s.metrics.get("baselines") or {}).get(split) or {}
    from kiln.evaluate.headline import headline

    # the run's task's headline metrics (TaskInfo.headline), the first one both sides report
    shown = next((m for m in headline(s.meta) if isinstance(ours.get(m.key), (int, float))), None)
    if shown is None or not bases:
        return []
    metric, higher = shown.key, shown.direction == "max"
    worse = []
    for name, b in bases.items():
        theirs = b.get(metric) if isinstance(b, dict) else None
        if not isinstance(theirs, (int, float)):
            continue
        mine = float(ours[metric])
        if metric == "accuracy":
            n = int(ours.get("n") or b.get("n") or 0)
            se = math.sqrt(max(mine * (1 - mine) + theirs * (1 - theirs), 1e-12) / n) if n else math.inf
            lost = theirs - mine > T["baseline_se"].value * se
        elif higher:
            lost = theirs - mine > T["baseline_rel"].value
        else:
            lost = mine > theirs * (1 + T["baseline_rel"].value)
        if lost:
            worse.append((name, theirs, any(k in name.lower() for k in INPUT_FREE)))
    if not worse:
        return []
    names = ", ".join(f"{n} {_g(v)}" for n, v, _ in worse)
    input_free = any(f for _, _, f in worse)
    key = "baseline_se" if metric == "accuracy" else "baseline_rel"
    return [_f("loses_to_baseline", "error" if input_free else "warning",
               f"{split} {metric} {_g(float(ours[metric]))} against {names}",
               "Start from what wins (a smaller or linear model), check the inputs reach the model, and tune lr and "
               "epochs before depth", key)]


def exploding_gradients(s) -> list[Finding]:
    norms = s.values("grad_norm")
    norms = norms[np.isfinite(norms)]
    grads = s.rows("nonfinite_grads")
    bad = grads[grads["value"] > 0]
    if len(bad):
        return [_f("exploding_gradients", "error", f"{int(bad['value'].iloc[0])} non-finite gradient values at step "
                   f"{int(bad['step'].iloc[0])}", "Lower lr 10x or warm up; clip gradients", "nonfinite")]
    if len(norms) < 3:
        return []
    med = float(np.median(norms))
    top = float(norms.max())
    if med <= 0 or top < T["explode_growth"].value * med:
        return []
    p90 = float(np.percentile(norms, 90))
    return [_f("exploding_gradients", "warning", f"global gradient norm reached {_g(top)}, {top / med:.0f}x its median "
               f"{_g(med)} over {len(norms)} samples", f"Clip gradients at {_g(p90)} (their 90th percentile) or lower lr; "
               "warm up (warmup_epochs=1)", "explode_growth")]


def vanishing_gradients(s) -> list[Finding]:
    rms = s.rows("grad_rms", None)
    if not len(rms):
        return []
    init = s.values("init_loss")
    losses = s.rows("loss")
    hits, worst = 0, None
    samples = rms.groupby("step")
    for step, rows in samples:
        here = losses[losses["step"] == step]["value"]
        if len(init) and len(here) and float(here.iloc[0]) < 0.01 * float(init[0]):
            continue  # a loss near zero has small gradients everywhere: not vanishing
        v = rows["value"].to_numpy(float)
        top = v.max()
        if top <= 0:
            continue
        low = int(np.argmin(v))
        ratio = v[low] / top
        if ratio < T["vanish_ratio"].value or v[low] < T["vanish_abs"].value:
            hits += 1
            worst = worst or (step, rows["layer"].iloc[low], v[low], rows["layer"].iloc[int(np.argmax(v))], top, ratio)
    if not worst or hits < max(1, samples.ngroups / 2):
        return []
    step, low_layer, low, top_layer, top, ratio = worst
    return [_f("vanishing_gradients", "warning", f"at step {step}: gradient RMS {_g(low)} in {low_layer} against {_g(top)} "
               f"in {top_layer} (ratio {ratio:.1e}); {hits} of {samples.ngroups} samples", "Use ReLU-family activations "
               "(model.activation=relu) with He initialisation, BatchNormalization (model.batchnorm=true) or a shallower "
               "model", "vanish_ratio" if ratio < T["vanish_ratio"].value else "vanish_abs")]


def dead_units(s) -> list[Finding]:
    dead = s.rows("dead_share", None)
    if not len(dead):
        return []
    last = dead[dead["step"] == dead["step"].max()]
    bad = last[last["value"] > T["dead_layer"].value]
    if not len(bad):
        return []
    layers = ", ".join(f"{r.layer} {r.value:.0%}" for r in bad.itertuples())
    return [_f("dead_units", "warning", f"dead ReLU units at step {int(last['step'].iloc[0])}: {layers}",
               "Lower lr, use He initialisation, or a leaky activation (model.activation=gelu)", "dead_layer")]


def input_bound(s) -> list[Finding]:
    wait = s.rows("input_wait")
    if not len(wait):
        return []
    later = wait[wait["epoch"] > wait["epoch"].min()] if wait["epoch"].nunique() > 1 else wait
    med = float(np.median(later["value"]))
    if med <= T["input_wait"].value:
        return []
    speed = s.values("examples_per_s")
    note = f"; {np.median(speed):,.0f} examples/s" if len(speed) else ""
    return [_f("input_bound", "warning", f"median {med:.0%} of each step spent waiting for input over {len(later)} epochs"
               f"{note}", "Cache decoded data (data.cache=memory), parallelise and prefetch the pipeline, or raise the batch "
               "size", "input_wait")]


def class_imbalance(s) -> list[Finding]:
    per = (s.metrics.get("val") or {}).get("per_class") or {}
    support = {k: v.get("support", 0) for k, v in per.items() if isinstance(v, dict)}
    audit = [p for a in s.audits for p in a.get("problems") or [] if p.get("kind") == "class_imbalance"]
    if len(support) < 2 and not audit:
        return []
    if support and min(support.values()) > 0:
        big, small = max(support, key=support.get), min(support, key=support.get)
        ratio = support[big] / support[small]
        if ratio < T["imbalance"].value and not audit:
            return []
        recall = (per.get(small) or {}).get("recall")
        weighted = s.setting("train", "class_weight") == "balanced"
        evidence = f"val holds {support[big]} {big} and {support[small]} {small} ({ratio:.0f}:1)"
        if recall is not None:
            evidence += f"; recall of {small} {recall:.2f}"
        severity = "warning" if (recall is not None and recall < 0.5 and not weighted) else "info"
        return [_f("class_imbalance", severity, evidence, "Weigh classes (class_weight=balanced), collect more of the rare "
                   "class, and judge by macro F1", "imbalance")]
    return [_f("class_imbalance", "info", audit[0].get("detail", "the audit found class imbalance"),
               "Weigh classes (class_weight=balanced) and judge by macro F1", "imbalance")]


def from_other_modes(s) -> list[Finding]:
    """What the audit, label-issue and calibration results already know: leakage, noisy labels, miscalibration."""
    out = []
    for audit in s.audits:
        for p in audit.get("problems") or []:
            if "leak" in str(p.get("kind", "")):
                out.append(Finding("leakage", "error", f"kiln audit: {p.get('detail', p.get('kind'))}",
                                   "Remove the shared examples from one split (val/test scores are inflated)",
                                   "the same example in two splits inflates held-out scores", "kiln audit"))
    if s.label_issues and s.label_issues["rows"]:
        share = s.label_issues["flagged"] / s.label_issues["rows"]
        if share > T["noisy_labels"].value:
            out.append(_f("noisy_labels", "warning", f"kiln label-issues flagged {s.label_issues['flagged']} of "
                          f"{s.label_issues['rows']} training labels ({share:.1%})", "Review label_issues.csv and fix or drop "
                          "the wrong labels; retrain", "noisy_labels"))
    for split in ("test", "val"):
        m = s.metrics.get(split) or {}
        if isinstance(m.get("ece"), (int, float)) and int(m.get("n") or 0) >= 500 and m["ece"] > T["ece"].value:
            out.append(_f("miscalibrated", "warning", f"{split} expected calibration error {m['ece']:.3f} (n={m['n']})",
                          "Do not read the probabilities as frequencies; calibrate on val (temperature scaling)", "ece"))
            break
    return out


def discriminator_wins(s) -> list[Finding]:
    d, g = s.column("d_loss"), s.column("g_loss")
    if d is None or g is None or len(d) < 3 or not np.isfinite(d).all() or not np.isfinite(g).all():
        return []
    tail = max(1, len(d) // 5)
    d_end, g_start, g_end = float(np.mean(d[-tail:])), float(g[0]), float(np.mean(g[-tail:]))
    if d_end >= T["gan_d_loss"].value or not g_end > 2 * g_start:
        return []
    return [_f("discriminator_wins", "error", f"discriminator loss {d_end:.3g} over the last {tail} epochs while the "
               f"generator loss rose {g_start:.3g} -> {g_end:.3g}", "Slow the discriminator (lower its lr, fewer of its "
               "steps), smooth its real labels (0.9), or add noise to its inputs", "gan_d_loss")]


RULES = (diverged, lr_too_high, lr_too_low, bad_init_loss, loss_plateau, overfitting, underfitting, at_chance,
         loses_to_baseline, exploding_gradients, vanishing_gradients, dead_units, input_bound, class_imbalance,
         from_other_modes, discriminator_wins)
KINDS = ("diverged", "lr_too_high", "lr_too_low", "bad_init_loss", "loss_plateau", "overfitting", "underfitting", "at_chance",
         "loses_to_baseline", "exploding_gradients", "vanishing_gradients", "dead_units", "input_bound", "class_imbalance",
         "leakage", "noisy_labels", "miscalibrated", "discriminator_wins",
         # kiln doctor RUN probe=true: problems, then a passed probe's (information) kind
         "cannot_overfit", "inputs_ignored", "overfit_one_batch", "zero_input_baseline", "lr_sweep", "input_pipeline")


def diagnose(s) -> list[Finding]:
    """Every rule's findings, worst first (errors, warnings, then information; the rule order within each)."""
    found = [f for rule in RULES for f in rule(s)]
    return sorted(found, key=lambda f: SEVERITY[f.severity])


__all__ = ["Finding", "KINDS", "RULES", "T", "Threshold", "diagnose"]
