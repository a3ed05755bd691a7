"""Which small-table model: the candidates of issue 29 side by side, in one process, on the halves of
bench/small_tables.py (seeded 50/50 split; Kiln is given the training half and scored on the other).

Each variant goes through the table task's own steps (read_source -> analyse -> resolve_auto -> build ->
fit with early stopping on Kiln's val split, kiln/tasks/table/folds.py) without the report, importance and
baselines; the peers are fitted on the same training half. Variants:

    linear, resnet_plr             the families model=auto chose between before
    tabm                           TabM-mini, k=16 members, PLR numeric embeddings (kiln/tasks/table/tabm.py)
    tabm_noplr                     the same without the PLR embeddings (numbers straight into the MLP)
    tabm_k1                        one member: a plain MLP of the same shape (what the ensemble adds)
    tabm_clip                      RealMLP's smooth clipping of the scaled numbers, x / sqrt(1 + (x/3)^2), before PLR
    tabm_refit                     then a fresh tabm on train+val for the epochs val chose
    tabm_seeds3                    three tabm seeds, predictions averaged (3x the cost)
    tabm_distill                   regression: trained on 0.5 y + 0.5 HistGB's out-of-fold prediction (a GBDT teacher)

    nice .venv/bin/python bench/small_variants.py [--seeds 0,1,2] [--only cars] [--variants tabm,tabm_k1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_tables import halves, peers, small_tables  # noqa: E402

VARIANTS = ["linear", "resnet_plr", "tabm", "tabm_noplr", "tabm_k1", "tabm_clip", "tabm_refit", "tabm_seeds3", "tabm_distill"]


def _prepare(path: Path, target: str, seed: int, model: str, extra: dict | None = None):
    from kiln.config.load import load_config
    from kiln.tasks.base import get_task

    task = get_task("table")
    cfg = load_config(overrides={"data.path": str(path), "table.target": target, "seed": seed, "model.name": model,
                                 "train.verbose": 0, **(extra or {})})
    data = task.analyse(task.read_source(cfg), cfg, model)
    cfg, _ = task.resolve_auto(cfg, data, model)
    return task, cfg, data


def _fit(task, cfg, data, name: str, run_dir, build=None):
    """folds.fit_model with an optional replacement builder; (model, epochs trained to the best)."""
    import keras

    from kiln.train.optim import build_optimizer

    keras.utils.set_random_seed(cfg.seed)
    model = build() if build else task.build_model(name, data, cfg)
    cs = task.compile_spec(data, cfg)
    bs = task.batch_size(cfg, data)
    train_ds, val_ds, steps = task.datasets(data, cfg, run_dir, bs)
    model.compile(optimizer=build_optimizer(cfg.train, steps, cfg.train.epochs), loss=cs.loss, metrics=cs.metrics)
    stop = keras.callbacks.EarlyStopping(monitor=cs.monitor, mode=cs.mode, patience=cfg.train.patience, restore_best_weights=True)
    h = model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs, callbacks=[stop] if cfg.train.patience else [],
                  class_weight=cs.class_weight, shuffle=False, verbose=0)
    losses = h.history.get("val_loss", [0])
    return model, int(np.argmin(losses)) + 1


def _predict(task, model, data, test: pd.DataFrame):
    from kiln.tasks.table.spec import encode_rows, predict_inputs

    return predict_inputs(model, encode_rows(test, data.spec))


def variant(name: str, train_csv: Path, test: pd.DataFrame, target: str, seed: int, run_dir: Path, train: pd.DataFrame):
    from kiln.tasks.table import tabm as tabm_mod

    base = name.split("_")[0] if name.startswith("tabm") else name
    task, cfg, data = _prepare(train_csv, target, seed, base)
    t, m = cfg.table, cfg.model
    prior = None
    if data.spec.classes:
        y = data.extra["y"][(data.rows["split"] == "train").to_numpy()]
        prior = np.bincount(y, minlength=len(data.spec.classes)) / len(y)
    k_out = len(data.spec.classes) if data.spec.classes else 1

    def tabm(**kw):
        args = dict(k=t.ensemble_size, width=t.width, blocks=t.blocks, dropout=min(m.dropout, 0.5) if m.dropout != 0.25 else 0.1,
                    frequencies=t.frequencies, embed_dim=t.embed_dim, sigma=t.sigma, prior=prior)
        args.update(kw)
        return lambda: tabm_mod.build_tabm(data.spec, k_out, **args)

    if name in ("linear", "resnet_plr", "tabm"):
        model, _ = _fit(task, cfg, data, base, run_dir)
        return _predict(task, model, data, test)
    if name == "tabm_noplr":
        return _predict(task, _fit(task, cfg, data, base, run_dir, tabm(embed=False))[0], data, test)
    if name == "tabm_k1":
        return _predict(task, _fit(task, cfg, data, base, run_dir, tabm(k=1))[0], data, test)
    if name == "tabm_clip":
        return _predict(task, _fit(task, cfg, data, base, run_dir, tabm(clip=True))[0], data, test)
    if name == "tabm_seeds3":
        outs = []
        for s in range(3):
            c = cfg.model_copy(update={"seed": seed * 100 + s})
            outs.append(_predict(task, _fit(task, c, data, base, run_dir)[0], data, test))
        return np.mean(outs, axis=0)
    if name == "tabm_refit":
        _, best = _fit(task, cfg, data, base, run_dir)
        from kiln.tasks.base import Prepared

        rows = data.rows.assign(split=np.where(data.rows["split"] == "val", "train", data.rows["split"]))
        both = Prepared(rows=rows, spec=data.spec, skipped=data.skipped, classes=data.classes, extra=data.extra)
        c = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": best, "patience": 0})})
        return _predict(task, _fit(task, c, both, base, run_dir)[0], data, test)
    if name == "tabm_distill":
        if data.spec.classes:
            return None
        from sklearn.model_selection import cross_val_predict

        from kiln.tasks.table.baselines import _pipelines, sklearn_frame
        from kiln.tasks.table.spec import encode_rows

        fit = data.rows["split"] == "train"
        x, num, cat = sklearn_frame(encode_rows(data.rows[fit], data.spec), data.spec)
        y = data.extra["y"][fit.to_numpy()]
        teacher = cross_val_predict(_pipelines("regression", num, cat, seed)["hist_gradient_boosting"], x, y, cv=5)
        col = data.rows[target].copy()
        col.loc[fit] = [f"{v:.10g}" for v in 0.5 * y + 0.5 * teacher]  # rows hold the cells as text
        rows = data.rows.assign(**{target: col})
        from kiln.tasks.base import Prepared

        soft = Prepared(rows=rows, spec=data.spec, skipped=data.skipped, classes=data.classes, extra=data.extra)
        return _predict(task, _fit(task, cfg, soft, base, run_dir)[0], data, test)
    raise SystemExit(f"unknown variant {name}")


def main(seeds, only, variants):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for tname, frame, target, task in small_tables():
            if only and not any(o in tname for o in only):
                continue
            for seed in seeds:
                train, test = halves(frame, target, task, seed)
                path = root / f"{tname}-{seed}.csv"
                train.to_csv(path, index=False)
                held = test
                yt = held[target].to_numpy()
                row = {"table": tname, "seed": seed, **{f"sk_{k}": v for k, v in peers(train, test, target, task, seed).items()}}
                for v in variants:
                    started = time.process_time()
                    out = variant(v, path, held.drop(columns=[target]), target, seed, root / "run", train)
                    if out is None:
                        continue
                    if task == "classification":
                        classes = sorted(train[target].astype(str).unique())
                        row[v] = float((np.asarray(classes)[out.argmax(1)] == yt.astype(str)).mean())
                    else:
                        row[v] = float(np.sqrt(np.mean((out.ravel() - yt) ** 2)))
                    row[v + "_cpu"] = round(time.process_time() - started, 1)
                    print(json.dumps({"table": tname, "seed": seed, "variant": v, "score": row[v], "cpu_s": row[v + "_cpu"]}), flush=True)
                rows.append(row)
                print(json.dumps(row), flush=True)
    df = pd.DataFrame(rows)
    cols = ["sk_linear", "sk_hgb"] + [v for v in variants if v in df.columns]
    print(df.groupby("table", sort=False)[list(dict.fromkeys(cols))].mean().round(4).to_string(), flush=True)
    print(df.groupby("table", sort=False)[[c for c in df.columns if c.endswith("_cpu")]].mean().round(1).to_string(), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--only", default=None)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    main([int(x) for x in a.seeds.split(",")], a.only.split(",") if a.only else None, a.variants.split(","))
