"""`kiln evaluate RUN_DIR [data=DIR] [split=test] [out=FILE]`: one split's metrics as JSON."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kiln.errors import DataError, received
from kiln.evaluate.metrics import classification_metrics

log = logging.getLogger("kiln.evaluate")


def _labelled_files(run, data: str | None, split: str):
    """(paths, labels, use_pil) of the run's own split, or of another labelled source."""
    if data is None:
        table = run.splits
        rows = table[table["split"] == split]
        if rows.empty and split == "test":
            log.warning("evaluate: this run has no test split; using val")
            rows = table[table["split"] == "val"]
        if rows.empty:
            raise DataError(received("evaluate", "split", split, "this run has no images in that split", "Use split=val or split=test"))
        use_pil = rows["use_pil"].str.lower().eq("true").to_numpy() if "use_pil" in rows else None
        return rows["path"].tolist(), rows["label"].tolist(), use_pil
    from kiln.tasks.image.data import check, sources

    target = None if run.classes else (run.meta.get("target") or {}).get("name", "label")
    frame = sources.discover(data, component="evaluate", target=target)
    if frame["split"].notna().any() and (frame["split"] == split).any():
        frame = frame[frame["split"] == split]
    unknown = sorted(set(frame["label"]) - set(run.classes)) if run.classes else []
    if unknown:
        raise DataError(received("evaluate", "data", data, f"it has classes the run never saw ({', '.join(unknown[:5])})",
                                 f"The run knows: {', '.join(run.classes)}"))
    facts = check.scan(frame["path"].tolist(), run.config.image.max_pixels)
    frame = check.drop_unreadable(frame, facts)
    return frame["path"].tolist(), frame["label"].tolist(), check.needs_pil(facts[facts["ok"]].reset_index(drop=True))


def evaluate_run(run, data: str | None = None, split: str = "test", out: str | None = None, top_k: int | None = None,
                 threshold: float | None = None) -> dict:
    """`threshold` (two-class runs) overrides the one stored in run.json for this evaluation only."""
    from kiln.evaluate.threshold import parse_rule, run_threshold

    if not run.classes:  # a numeric target (kiln/tasks/image/regress.py)
        from kiln.tasks.image.regress import regress_metrics

        paths, labels, use_pil = _labelled_files(run, data, split)
        result = regress_metrics(np.asarray(labels, np.float64), run.predict_proba(paths, use_pil=use_pil))
        if out:
            from kiln.io import write_json

            write_json(Path(out), result)
        return result
    if threshold is not None:
        kind, threshold = parse_rule(threshold)
        if kind != "fixed":
            raise DataError(received("evaluate", "threshold", threshold, "evaluate takes a fixed number here",
                                     "Example: threshold=0.3 (rules are chosen at training time: kiln train threshold=max_f1)"))
    else:
        threshold = run_threshold(run)
    from kiln.tasks.image.data.records import shard_predictions

    found = shard_predictions(run, data, split)  # a shard-trained run, or data=SHARD_DIR: read the shards
    if found is not None:
        y, probs = found
    else:
        paths, labels, use_pil = _labelled_files(run, data, split)
        index = {c: i for i, c in enumerate(run.classes)}
        y = np.array([index[label] for label in labels])
        probs = run.predict_proba(paths, use_pil=use_pil)
    result = classification_metrics(y, probs, run.classes, top_k or run.config.train.top_k, threshold=threshold)
    if out:
        from kiln.io import write_json

        write_json(Path(out), result)
    return result
