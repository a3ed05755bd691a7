"""The image task's sections of `RUN_DIR/report.html` (the page itself is kiln/evaluate/report.py).

Sections: summary and settings; (the spine's training curves); confusion matrix
(counts and row-normalised); per-class metrics; one-vs-rest ROC and precision-recall curves; a
reliability diagram with ECE; the most-confused class pairs; misclassified images with true /
predicted label and score; Grad-CAM overlays on a sample; label-issue candidates
(`kiln label-issues`) and the data audit (`audit.json`) when present; (the spine's exports).

Written at the end of `kiln train` and by `kiln report RUN_DIR [split=test] [out=FILE] [audit=FILE]`.
The audit section shows RUN/audit.json, `audit=FILE`, or a `kiln audit` output beside the run
(e.g. runs/audit/audit.json) whose source is the run's data folder.

    from kiln.evaluate.report import write_report
    write_report(kiln.load_run("runs/train"))
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kiln.errors import DataError, received
from kiln.io import read_csv, read_json, read_yaml
from kiln.evaluate.report import _esc, _fig_b64, _find_json, _fmt, _img_tag, _table
from kiln.tasks.base import ReportSection
from kiln.tasks.image.report_figures import (_array_b64, confusion_figure, curves_figure, most_confused,  # noqa: F401
                                             thumbnail_b64)

log = logging.getLogger("kiln.report")


# ---------------------------------------------------------------- small helpers

def _split_rows(run, split: str | None) -> tuple[str, pd.DataFrame]:
    table = run.splits
    if split is None:
        split = "test" if (table["split"] == "test").any() else "val"
    rows = table[table["split"] == split]
    if rows.empty:
        raise DataError(received("report", "split", split, "this run has no images in that split", "Use split=val or split=test"))
    return split, rows.reset_index(drop=True)


def _load_pixels(run, paths: list[str]) -> np.ndarray:
    """Model-input pixels (N, H, W, C) uint8, exactly as the model sees them."""
    from kiln.tasks.image.predict import dataset

    batches = [x.numpy() for x, _ in dataset(run, paths, batch_size=32)]
    return np.concatenate(batches) if batches else np.zeros((0, *run.spec.shape), np.uint8)


# ---------------------------------------------------------------- sections

def _summary_section(run, split: str, m: dict, calib: dict) -> str:
    meta, cfg = run.meta, run.config
    hist = run.history if (run.path / "history.csv").is_file() else pd.DataFrame()
    counts = meta.get("counts", {})
    image = meta.get("image", {})
    rows = [
        ("model", meta.get("model")),
        ("classes", f"{len(run.classes)}: {', '.join(run.classes[:20])}{' ...' if len(run.classes) > 20 else ''}"),
        ("images train / val / test", f"{counts.get('train', '?')} / {counts.get('val', '?')} / {counts.get('test', '?')}"),
        ("input", f"{image.get('height')}x{image.get('width')}x{image.get('channels')} ({image.get('resize')})"),
        ("epochs run", len(hist)),
        ("optimizer / lr / schedule", f"{cfg.train.optimizer} / {cfg.train.lr:g} / {cfg.train.schedule}"),
        ("batch size", cfg.data.batch_size),
        ("training time", f"{meta.get('train_seconds', '?')} s"),
        ("TensorFlow / Keras / Kiln", f"{meta.get('tensorflow_version')} / {meta.get('keras_version')} / {meta.get('kiln_version')}"),
    ]
    if meta.get("threshold_rule"):
        t = meta["threshold_rule"]
        value = meta.get("threshold")
        rows.append(("decision threshold", f"{'argmax (0.5)' if value is None else f'{value:.4f}'} on P({t.get('positive_class')}), "
                                           f"rule {t.get('rule')} on {t.get('split')}: precision {t.get('precision', 0):.3f}, "
                                           f"recall {t.get('recall', 0):.3f}, F1 {t.get('f1', 0):.3f}"))
    if meta.get("refit"):
        r = meta["refit"]
        rows.append(("refit", f"a fresh model on train+val ({r.get('examples', r.get('images'))} images) for the "
                              f"{r.get('epochs')} epochs val chose; val metrics {r.get('val_metrics')}"))
    for key, d in meta.get("auto", {}).items():  # why the run looks the way it does (kiln/tasks/image/auto.py)
        value = ",".join(map(str, d["value"])) if isinstance(d["value"], list) else d["value"]
        rows.append((f"auto {key}", f"{value} ({d['why']})"))
    kv = "".join(f"<tr><td>{_esc(k)}</td><td class='l'>{_esc(v)}</td></tr>" for k, v in rows)
    from kiln.evaluate.metrics import headline as lead

    shown = lead(m) + [(k, v) for k, v in (("macro F1", m.get("macro_f1")), ("ROC-AUC", m.get("roc_auc"))) if k not in dict(lead(m))]
    headline = (f"<p><b>{split}</b> (n={m['n']}): " + ", ".join(f"{_esc(k)} <b>{_fmt(v)}</b>" for k, v in shown) + ", "
                + (f"top-{m['top_k']} accuracy {m['top_k_accuracy']:.4f}, " if "top_k_accuracy" in m else "")
                + f"ECE {calib['ece']:.4f}</p>")
    other = run.metrics
    extra = ""
    if other:
        extra = _table(["split", "n", "accuracy", "macro F1", "ROC-AUC"],
                       [[s, v.get("n"), _fmt(v.get("accuracy")), _fmt(v.get("macro_f1")), _fmt(v.get("roc_auc"))]
                        for s, v in other.items() if isinstance(v, dict) and "accuracy" in v])
    return f'<h2 id="summary">Summary</h2>{headline}<table class="kv">{kv}</table>{extra}'


def _per_class_section(m: dict) -> str:
    rows = [[_esc(c), _fmt(v["precision"], 3), _fmt(v["recall"], 3), _fmt(v["f1"], 3), v["support"]]
            for c, v in m["per_class"].items()]
    rows.sort(key=lambda r: float(r[3]))
    return ('<h2 id="classes">Per-class metrics</h2><p class="muted">Sorted by F1, worst first.</p>'
            + _table(["class", "precision", "recall", "F1", "support"], rows))


def _confused_section(m: dict) -> str:
    pairs = most_confused(m["confusion_matrix"], m["classes"])
    if not pairs:
        return '<h2 id="confused">Most-confused pairs</h2><p>No confusions on this split.</p>'
    rows = [[_esc(p["true"]), _esc(p["predicted"]), p["count"], f"{100 * p['share_of_true']:.1f} %"] for p in pairs]
    return ('<h2 id="confused">Most-confused pairs</h2>'
            + _table(["true", "predicted as", "images", "share of the true class"], rows, left=2))


def _gallery_section(rows: pd.DataFrame, y, pred, probs, classes, limit: int) -> tuple[str, np.ndarray]:
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]])] if len(wrong) else wrong  # most confident mistakes first
    cards = []
    for i in order[:limit]:
        thumb = thumbnail_b64(rows["path"].iloc[i])
        img = _img_tag(thumb, Path(rows["path"].iloc[i]).name, cls="") if thumb else "<div>(unreadable)</div>"
        cards.append(f'<div class="card">{img}<br><span class="good">true: {_esc(classes[y[i]])}</span><br>'
                     f'<span class="bad">pred: {_esc(classes[pred[i]])} ({probs[i, pred[i]]:.2f})</span><br>'
                     f'<span class="muted">{_esc(Path(rows["path"].iloc[i]).name)}</span></div>')
    head = f'<h2 id="errors">Misclassified images</h2><p>{len(wrong)} of {len(y)} wrong'
    head += f"; the {min(limit, len(wrong))} most confident mistakes:</p>" if len(wrong) else ".</p>"
    return head + f'<div class="gallery">{"".join(cards)}</div>', order


def _gradcam_section(run, rows: pd.DataFrame, y, pred, probs, classes, wrong_order: np.ndarray, limit: int) -> str:
    from kiln.tasks.image.gradcam import gradcam, layer_path_name, overlay, resolve_target

    title = '<h2 id="gradcam">Grad-CAM</h2>'
    if limit <= 0 or not len(rows):
        return ""
    chosen = list(wrong_order[:limit])
    rest = [i for i in np.flatnonzero(pred == y) if i not in chosen]
    chosen += rest[:max(0, limit - len(chosen))]
    try:
        target = resolve_target(run.model, None)
        pixels = _load_pixels(run, rows["path"].iloc[chosen].tolist())
        heat, _, explained = gradcam(run.model, pixels, class_index=pred[chosen])
    except Exception as err:  # a model without convolutions, or another backend: say so, keep the report
        return title + f"<p class='muted'>Grad-CAM is not available for this model: {_esc(err)}</p>"
    cards = []
    for j, i in enumerate(chosen):
        status = "good" if pred[i] == y[i] else "bad"
        cards.append(f'<div class="card pair">{_img_tag(_array_b64(pixels[j], 144), "input", cls="")}'
                     f'{_img_tag(_array_b64(overlay(pixels[j], heat[j]), 144), "Grad-CAM", cls="")}<br>'
                     f'true {_esc(classes[y[i]])} · <span class="{status}">pred {_esc(classes[pred[i]])} '
                     f'({probs[i, pred[i]]:.2f})</span></div>')
    return (title + f"<p class='muted'>Evidence for the predicted class, from layer <code>{_esc(layer_path_name(target))}</code> "
            "(red: strongest). Mistakes first, then correct predictions.</p>" + f'<div class="gallery">{"".join(cards)}</div>')


def _label_issues_section(run, limit: int = 40) -> str:
    path = run.path / "label_issues.csv"
    if not path.is_file():
        return ""
    table = read_csv(path, ("path", "label", "suggested", "label_quality"), "a Kiln label_issues.csv", fix="Run kiln label-issues again",
                     dtype={"path": str, "label": str, "suggested": str}, keep_default_na=False)
    issues = table[table["is_issue"].astype(str).str.lower() == "true"] if "is_issue" in table.columns else table
    cards = []
    for _, r in issues.head(limit).iterrows():
        thumb = thumbnail_b64(r["path"])
        img = _img_tag(thumb, Path(r["path"]).name, cls="") if thumb else "<div>(unreadable)</div>"
        cards.append(f'<div class="card">{img}<br>given: <span class="bad">{_esc(r["label"])}</span><br>'
                     f'suggested: <span class="good">{_esc(r["suggested"])}</span><br>'
                     f'<span class="muted">quality {float(r["label_quality"]):.3f} · {_esc(Path(r["path"]).name)}</span></div>')
    method = ""
    meta = run.path / "label_issues.json"
    if meta.is_file():
        info = read_json(meta, "a Kiln label_issues.json", fix="Run kiln label-issues again")
        method = f" Method: {_esc(info.get('method'))}, {_esc(info.get('folds'))} folds; out-of-sample accuracy {_fmt(info.get('oos_accuracy'), 3)}."
    return ('<h2 id="label-issues">Label-issue candidates</h2>'
            f"<p>{len(issues)} of {len(table)} training images flagged by cleanlab (confident learning), lowest label "
            f"quality first; full list in <code>label_issues.csv</code>.{method}</p>"
            f'<div class="gallery">{"".join(cards)}</div>')


def _audits(run, extra: str | Path | None = None) -> list[tuple[Path, dict]]:
    """audit.json in the run folder (or exports/), `extra`, and `kiln audit` outputs beside the run
    (e.g. runs/audit/audit.json) whose source is this run's data folder."""
    found = _find_json(run.path, "audit.json")
    if extra:
        path = Path(extra)
        path = path / "audit.json" if path.is_dir() else path
        if not path.is_file():
            raise DataError(received("report", "audit", extra, "no audit.json there", "Pass the audit.json written by kiln audit"))
        found.append((path, read_json(path, "a Kiln audit.json", fix="Pass the audit.json written by kiln audit")))
    if (run.path / "config.yaml").exists():
        read_yaml(run.path / "config.yaml", fix="Restore it from a copy, or train the run again")  # damaged: one line naming it
    try:
        source = str(Path(run.config.data.path).expanduser().resolve()) if run.config.data.path else None
    except Exception:  # settings an older or newer Kiln wrote: no sibling audits, the rest of the report stands
        source = None
    if source:
        for path in sorted(run.path.resolve().parent.glob("*/audit.json")):
            if all(path.resolve() != f.resolve() for f, _ in found):
                try:
                    audit = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue
                if audit.get("source") == source:
                    found.append((path, audit))
    return found


def _audit_section(run_dir: Path, found: list[tuple[Path, dict]]) -> str:
    if not found:
        return ""
    parts = ['<h2 id="audit">Data audit</h2>']
    for path, audit in found:
        problems = audit.get("problems") or []
        kinds = pd.Series([p.get("kind", "?") for p in problems]).value_counts() if problems else pd.Series(dtype=int)
        dup = audit.get("duplicates")
        dup_n = len(dup) if isinstance(dup, (list, dict)) else dup
        files = audit.get("files")
        files_n = len(files) if isinstance(files, (list, dict)) else files
        shown = path.relative_to(run_dir) if path.is_relative_to(run_dir) else path
        parts.append(f"<p class='muted'>{_esc(shown)}</p>")
        parts.append(_table(["", "value"], [["files", _esc(files_n)], ["problems", len(problems)],
                                            ["duplicate groups", _esc(dup_n)]] +
                            [[f"problem: {_esc(k)}", int(v)] for k, v in kinds.items()]))
        classes = audit.get("classes")
        if isinstance(classes, dict) and classes:
            parts.append(_table(["class", "images"], [[_esc(k), _esc(v if not isinstance(v, dict) else v.get("count", v))]
                                                     for k, v in list(classes.items())[:50]]))
        if problems:
            parts.append(_table(["path", "kind", "detail"], [[_esc(p.get("path")), _esc(p.get("kind")), _esc(p.get("detail"))]
                                                            for p in problems[:25]], left=3))
    return "".join(parts)


# ---------------------------------------------------------------- the page

NAV = {"summary": "summary", "confusion": "confusion", "classes": "per class", "curves-roc": "ROC / PR",
       "calibration": "calibration", "confused": "confused pairs", "errors": "errors", "gradcam": "Grad-CAM"}


def sections(run, split: str | None = None, gallery: int = 24, gradcam_samples: int = 8,
             audit: str | Path | None = None) -> list[ReportSection]:
    """The image run's parts of report.html, summary first (the spine puts the training curves after it)."""
    from kiln.evaluate.calibration import calibration_summary, reliability_figure
    from kiln.evaluate.metrics import classification_metrics
    from kiln.evaluate.threshold import apply_threshold, run_threshold

    classes = run.classes
    threshold = run_threshold(run)
    split, rows = _split_rows(run, split)
    shard = None
    try:
        from kiln.tasks.image.data.records import shard_predictions

        shard = shard_predictions(run, None, split)
    except ImportError:
        pass
    if shard is not None:  # a shard-trained run: predictions come from the shards, no image files to show
        y, probs = shard
        rows = rows.iloc[0:0]
    else:
        index = {c: i for i, c in enumerate(classes)}
        y = rows["label"].map(index).to_numpy().astype(int)
        use_pil = rows["use_pil"].astype(str).str.lower().eq("true").to_numpy() if "use_pil" in rows else None
        probs = run.predict_proba(rows["path"].tolist(), use_pil=use_pil)
    pred = apply_threshold(probs, threshold)
    m = classification_metrics(y, probs, classes, run.config.train.top_k, threshold=threshold)
    calib = calibration_summary(y, probs, predicted=pred)

    parts = [("summary", _summary_section(run, split, m, calib))]
    parts.append(("confusion", f'<h2 id="confusion">Confusion matrix ({split})</h2>'
                  + _img_tag(_fig_b64(confusion_figure(m["confusion_matrix"], classes)), "confusion matrix")))
    parts.append(("classes", _per_class_section(m)))
    if len(np.unique(y)) >= 2:
        fig, note = curves_figure(y, probs, classes, threshold)
        parts.append(("curves-roc", f'<h2 id="curves-roc">ROC and precision-recall curves</h2><p class="muted">{_esc(note)}</p>'
                      + _img_tag(_fig_b64(fig), "ROC and PR curves")))
    parts.append(("calibration", f'<h2 id="calibration">Calibration</h2><p>Expected calibration error <b>{calib["ece"]:.4f}</b> '
                  f'({calib["n_bins"]} bins), maximum gap {calib["mce"]:.4f}; mean confidence {calib["mean_confidence"]:.3f} '
                  f'vs accuracy {calib["accuracy"]:.3f}.</p>'
                  + _img_tag(_fig_b64(reliability_figure(calib, f"reliability ({split})")), "reliability diagram")))
    parts.append(("confused", _confused_section(m)))
    if len(rows):
        gallery_html, wrong_order = _gallery_section(rows, y, pred, probs, classes, gallery)
        parts.append(("errors", gallery_html))
        parts.append(("gradcam", _gradcam_section(run, rows, y, pred, probs, classes, wrong_order, gradcam_samples)))
    parts += [("label-issues", _label_issues_section(run)), ("audit", _audit_section(run.path, _audits(run, audit)))]
    return [ReportSection(key, NAV.get(key, key), html, in_nav=key in NAV and f'id="{key}"' in html)
            for key, html in parts if html]


__all__ = ["confusion_figure", "curves_figure", "most_confused", "sections", "thumbnail_b64"]
