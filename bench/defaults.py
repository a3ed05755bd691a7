"""Kiln's defaults against the classical peers on small datasets of different kinds.

    .venv/bin/python bench/defaults.py [--only digits,tiny12] [--skip-kiln] [--out bench/_data/defaults.json]

For each dataset of bench/defaults_data.py (generated once under bench/_data/defaults/), split 50/50
stratified: `kiln train data=NAME/train run_dir=...` with no other key, then every model is scored on
NAME/heldout, which nothing trained on:

- SVC on pixels: `SVC(C)` (RBF, gamma="scale") on pixels / 255, C in {1, 10} chosen by 3-fold CV on the
  training half; on digits also the issue's `SVC(gamma=0.001)` on the raw 8x8 pixels, and the better of
  the two is reported;
- logistic regression on pixels / 255 (`LogisticRegression(C=1)`; raw 8x8 pixels on digits as well);
- both classical peers see images larger than 32 px area-averaged to 32x32 (what one would do: less
  noise, and a fit in seconds rather than many minutes);
- the tutorial CNN: Conv32-pool-Conv64-pool-Conv64-Flatten-Dense64 (TensorFlow's CNN tutorial, "same"
  padding so it fits 12 px images), Adam 1e-3, 20 epochs, batch 32, on the whole training half.

Writes a Markdown table to stdout (with Kiln's wall and CPU seconds: on a shared machine the CPU
seconds are the figure to compare) and every figure to --out (JSON). The peers' figures are cached in
NAME/peers.json (they do not depend on Kiln); `--skip-kiln` and `--kiln-only` split the work in two
processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

from defaults_data import DATASETS, write  # noqa: E402

DATA = ROOT / "bench" / "_data" / "defaults"
KILN = str(Path(sys.executable).parent / "kiln")


def load_folder(folder: Path):
    """(paths, images (N, H, W, C) uint8, labels) of a folder per class `c<k>`."""
    from PIL import Image

    paths = sorted(folder.glob("*/*.png"))
    images = [np.asarray(Image.open(p)) for p in paths]
    images = np.stack([im[..., None] if im.ndim == 2 else im for im in images])
    labels = np.array([int(p.parent.name[1:]) for p in paths])
    return [str(p) for p in paths], images, labels


def pixels(images, side: int = 32):
    """(N, D) pixels / 255 for the classical peers; images larger than `side` are area-averaged to it."""
    if images.shape[1] > side:
        import cv2

        images = np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images])
    return images.reshape(len(images), -1) / 255.0


def svc(xtr, ytr, xte):
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    search = GridSearchCV(SVC(), {"C": [1, 10]}, cv=3, n_jobs=1).fit(xtr, ytr)
    return search.predict(xte)


def logistic(xtr, ytr, xte):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=300).fit(xtr, ytr).predict(xte)


def tutorial_cnn(xtr, ytr, xte, k, seed=0):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(xtr.shape[1:]), layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, activation="relu", padding="same"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", padding="same"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", padding="same"),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(k, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(xtr.astype("float32"), ytr, epochs=20, batch_size=32, verbose=0)
    return model.predict(xte.astype("float32"), verbose=0).argmax(1)


def kiln_defaults(train_dir: Path, run_dir: Path, heldout_paths):
    """`kiln train data=DIR` (nothing else but where to write), then its predictions on the held-out half."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([KILN, "train", f"data={train_dir}", f"run_dir={run_dir}"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU seconds: wall time on a shared machine says little
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    from kiln import load_run

    run = load_run(run_dir)
    probs = run.predict_proba(heldout_paths)
    decisions = [line for line in (proc.stdout + proc.stderr).splitlines() if "auto:" in line]
    return probs.argmax(1), (seconds, cpu), run.meta, decisions


def scores(y, pred):
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": round(float(accuracy_score(y, pred)), 4), "macro_f1": round(float(f1_score(y, pred, average="macro")), 4)}


def bench(name: str, skip_kiln: bool = False, kiln_only: bool = False) -> dict:
    root = write(name, DATA)
    _, xtr, ytr = load_folder(root / "train")
    paths_te, xte, yte = load_folder(root / "heldout")
    k = int(ytr.max()) + 1
    flat_tr, flat_te = pixels(xtr), pixels(xte)
    out = {"dataset": name, "about": DATASETS[name][1], "train": int(len(ytr)), "heldout": int(len(yte)),
           "side": int(xtr.shape[1]), "channels": int(xtr.shape[3])}
    cached = root / "peers.json"  # the peers do not depend on Kiln's code: computed once per dataset
    if cached.is_file():
        out.update(json.loads(cached.read_text()))
    elif not kiln_only:
        out.update(peers(root, xtr, ytr, xte, yte, k, flat_tr, flat_te))
        cached.write_text(json.dumps(out))
    if not skip_kiln:
        pred, seconds, meta, decisions = kiln_defaults(root / "train", DATA / "runs" / name, paths_te)
        out["kiln"] = scores(yte, pred)
        out["kiln_seconds"], out["kiln_cpu_seconds"] = round(seconds[0], 1), round(seconds[1], 1)
        out["kiln_auto"] = meta.get("auto", {})
        out["kiln_refit"] = meta.get("refit")
        out["kiln_log"] = decisions
    print(json.dumps(out), flush=True)
    return out


def peers(root, xtr, ytr, xte, yte, k, flat_tr, flat_te) -> dict:
    out = {}
    t = time.perf_counter()
    out["svc"] = scores(yte, svc(flat_tr, ytr, flat_te))
    out["logistic"] = scores(yte, logistic(flat_tr, ytr, flat_te))
    raw = root / "raw.npz"
    if raw.is_file():  # digits: the peer on the raw 8x8 pixels of the same split
        from sklearn.svm import SVC

        r = np.load(raw)
        assert (np.sort(r["heldout_y"]) == np.sort(yte)).all()  # the same held-out images, in another order
        raw_svc = scores(r["heldout_y"], SVC(gamma=0.001).fit(r["train"], r["train_y"]).predict(r["heldout"]))
        raw_log = scores(r["heldout_y"], logistic(r["train"] / 16.0, r["train_y"], r["heldout"] / 16.0))
        out["svc_raw8x8_gamma0.001"], out["logistic_raw8x8"] = raw_svc, raw_log
        if raw_svc["accuracy"] > out["svc"]["accuracy"]:
            out["svc"] = raw_svc
        if raw_log["accuracy"] > out["logistic"]["accuracy"]:
            out["logistic"] = raw_log
    out["classical_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    out["tutorial_cnn"] = scores(yte, tutorial_cnn(xtr, ytr, xte, k))
    out["tutorial_cnn_seconds"] = round(time.perf_counter() - t, 1)
    return out


def markdown(results: list[dict]) -> str:
    head = "| dataset | train / held out | Kiln defaults | SVC | logistic | tutorial CNN | Kiln ≥ best? | Kiln s | Kiln CPU s |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    rows = []
    for r in results:
        if "svc" not in r:  # --kiln-only before the peers ran: read their cache now
            r.update({k: v for k, v in json.loads((DATA / r["dataset"] / "peers.json").read_text()).items() if k not in r})
        best = max(r["svc"]["accuracy"], r["logistic"]["accuracy"], r["tutorial_cnn"]["accuracy"])
        kiln = r.get("kiln", {}).get("accuracy")
        verdict = "—" if kiln is None else ("yes" if kiln >= best else f"no ({kiln - best:+.3f})")
        rows.append(f"| {r['dataset']} | {r['train']} / {r['heldout']} | {kiln if kiln is not None else '—'} | "
                    f"{r['svc']['accuracy']} | {r['logistic']['accuracy']} | {r['tutorial_cnn']['accuracy']} | {verdict} | "
                    f"{r.get('kiln_seconds', '—')} | {r.get('kiln_cpu_seconds', '—')} |")
    return head + "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated dataset names (default: all)")
    ap.add_argument("--skip-kiln", action="store_true", help="only the peers")
    ap.add_argument("--kiln-only", action="store_true", help="only Kiln (peers from their cache, when there)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "_data" / "defaults.json"))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(DATASETS)
    results = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for n in names:
        results.append(bench(n, args.skip_kiln, args.kiln_only))
        Path(args.out).write_text(json.dumps(results, indent=1))  # after each dataset: a long run keeps what it did
    print(markdown(results))


if __name__ == "__main__":
    main()
