"""Text classification behind the task contract: raw strings in, class probabilities out.

The vectorizer lives inside the model (kiln/tasks/text/models.py), so model.keras and the SavedModel take
raw strings; TFLite and ONNX take token ids and carry the tokenizer as files (kiln/tasks/text/export.py).
Each method hands over to the module of its stage: source, spec, models, evaluate, report, audit, export, serve.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kiln.errors import ConfigError, DataError, received
from kiln.tasks.base import CompileSpec, Example, Prepared, Source, Task, TaskInfo, register_task
from kiln.tasks.text.config import TextConfig, TextServeOptions
from kiln.tasks.text.models import BAGS, MODELS

log = logging.getLogger("kiln.text")

AUTO_RATIO = 1500  # Google's text-classification guide: samples / words per sample below this -> n-gram model


def label_key(cfg) -> str | None:
    """text.label, else the shared `target=` (table.target)."""
    table = getattr(cfg, "table", None)
    return cfg.text.label or (getattr(table, "target", None) if table is not None else None)


def auto_model(n_train: int, words_median: float) -> tuple[str, str]:
    """(model, why) from Google's samples / words-per-sample ratio: n-gram bow below AUTO_RATIO, else a sequence model.

    Not bow_transformer: averaged with a transformer over the first 256 words, bow fell from 0.9400 to 0.9368 test
    accuracy over ten SpamAssassin splits (TF-IDF + LR 0.9432) at 4-5x the training CPU; the transformer member alone
    scored 0.888-0.952 and its near-certain probabilities outvoted bow's (BENCHMARKS.md, text, session 6)."""
    ratio = n_train / max(1.0, words_median)
    if ratio < AUTO_RATIO:
        return "bow", (f"{n_train} training texts / {words_median:.0f} words each = {ratio:.0f} < {AUTO_RATIO}: "
                       "n-gram TF-IDF models beat sequence models on data this size")
    return "cnn1d", f"{n_train} training texts / {words_median:.0f} words each = {ratio:.0f} >= {AUTO_RATIO}: a sequence model"


def auto_epochs(model: str) -> tuple[int, str]:
    """(epochs, why): bow 40 and the sequence models 20, early stopping ending most runs sooner; bow_transformer 12.

    Why 12: its transformer member costs ~5x bow per epoch, and on SpamAssassin (seed 0, 1,000 mails) the ensemble's val
    loss was 0.2091 after 9 epochs and 0.2062 at its best (epoch 17 of 22): the last 13 epochs bought 0.003; bow's own
    test accuracy inside the ensemble was bow's alone (14-40 epochs) on eight of ten splits, one text better on two."""
    if model == "bow_transformer":
        return 12, "text bow_transformer: both members are within 0.003 of their best val loss by epoch 9; its transformer costs most"
    return (40 if model in BAGS else 20), "text: early stopping on val ends most runs sooner"


@register_task
class TextTask(Task):
    info = TaskInfo(
        name="text",
        description="text classification: labelled texts -> class probabilities",
        sources=("folder per class of .txt files", "pre-split folder {train,val,test}/<class>/*.txt",
                 "CSV / TSV / JSON Lines with text=COLUMN target=COLUMN [split column]"),
        label_kinds=("classification",),
        default_model="bow",
        monitor="val_loss",
        mode="min",
        export_formats=("keras", "savedmodel", "tflite", "onnx"),
        resume_keys=("text.text", "text.label", "text.max_tokens", "text.ngrams", "text.analyzer", "text.output_mode", "text.sequence_length"),
        runtimes=("keras", "onnx"),  # kiln/export/runtime.py
    )
    models = MODELS
    config_section = TextConfig
    serve_options = TextServeOptions

    # --- which data -------------------------------------------------------------------------------
    def claims(self, path: str | None, keys: Mapping[str, Any]) -> int:
        """95 for a table file with text=COLUMN; 85 for a folder of class folders of .txt files; 70 for JSON Lines."""
        from kiln.tasks.text.source import TABLE_SUFFIXES, is_text_folder

        if not path:
            return 0
        p = Path(str(path)).expanduser()
        section = keys.get("text") or {}
        if p.suffix.lower() in TABLE_SUFFIXES:
            if isinstance(section, Mapping) and section.get("text"):
                return 95
            return 70 if p.suffix.lower() in (".jsonl", ".ndjson") else 0
        if p.is_dir() and is_text_folder(p):
            return 85
        return 0

    # --- data -------------------------------------------------------------------------------------
    def read_source(self, cfg) -> Source:
        from kiln.tasks.text.source import empty_mask, read_texts

        t = cfg.text
        rows = read_texts(cfg.data.path, t.text, label_key(cfg), t.split_column, t.max_chars, "train")
        empty = empty_mask(rows["text"])
        if empty.all():
            col = rows.attrs["columns"].get("text") or "text"
            raise DataError(received("train", "text.text", col, f"all {len(rows)} texts are empty or whitespace only",
                                     "Point text= at the column that holds the text"))
        no_label = rows["label"].str.len().to_numpy() == 0
        bad = empty | no_label
        skipped = rows[bad].assign(error=np.where(empty[bad], "empty text", "no label"))
        kept = rows[~bad].reset_index(drop=True)
        kept.attrs = rows.attrs
        facts = {"texts": int(len(rows)), "empty": int(empty.sum()), "bad_bytes_texts": int((rows["bad_bytes"] > 0).sum()),
                 "truncated_chars": int(rows["truncated"].sum()), "columns": rows.attrs.get("columns", {}),
                 "path": str(cfg.data.path)}
        return Source(kept, skipped, facts)

    def analyse(self, source: Source, cfg, model_name: str) -> Prepared:
        from kiln.tasks.text.source import assign_splits
        from kiln.tasks.text.spec import build_spec, tokenizer

        rows = source.rows.copy()
        classes = sorted(rows["label"].unique().tolist())
        label = source.facts["columns"].get("label") or "label"
        if len(classes) < 2:
            raise DataError(received("train", "text.label", label, f"every text has the same label ({classes[0]!r})",
                                     "A classifier needs texts of at least two classes"))
        rows["split"] = assign_splits(rows, cfg.data.val_split, cfg.data.test_split, cfg.seed)
        train = rows[rows["split"] == "train"]
        if train["label"].nunique() < 2:
            raise DataError(received("train", "text.label", label, "the training split holds one class", "Add training texts of other classes"))
        missing = sorted(set(classes) - set(train["label"]))
        if missing:
            raise DataError(received("train", "text.label", missing[0], "this class has no training texts", "Add some or drop the class"))
        rows["y"] = rows["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
        why = None
        chosen = model_name
        if model_name == "auto" and cfg.text.analyzer == "char_wb":
            chosen, why = "bow", "text.analyzer=char_wb: character n-grams are read by the bag-of-n-grams model"
        elif model_name == "auto":
            words = np.median([len(tokenizer(1).tokens(s)) for s in train["text"].head(5000)])
            chosen, why = auto_model(len(train), float(words))
        if cfg.text.analyzer == "char_wb" and chosen != "bow":
            raise ConfigError(received("train", "text.analyzer", "char_wb", f"{chosen} reads word tokens; character n-grams are for "
                                       "model=bow", "Use model=bow (or auto), or leave analyzer at word"))
        spec, idf = build_spec(rows, cfg, chosen, classes, source.facts["columns"])
        seq_models = chosen not in BAGS
        if seq_models and spec.output_mode != "int":
            raise DataError(received("train", "text.output_mode", spec.output_mode, f"{chosen} reads token sequences",
                                     "Use output_mode=int (or auto); tf_idf and count are for model=bow"))
        if not seq_models and spec.output_mode == "int":
            raise DataError(received("train", "text.output_mode", "int", f"{chosen} reads a bag of n-grams", "Use output_mode=tf_idf or count (or auto)"))
        return Prepared(rows, spec, source.skipped, classes, source.facts, extra={"idf": idf, "model": chosen, "why": why})

    def write_data(self, data: Prepared, run_dir: Path) -> None:
        from kiln.io import write_text

        write_text(run_dir / "splits.csv", self.splits_frame(data).assign(text=data.rows["text"]).to_csv(index=False))
        if len(data.skipped):
            write_text(run_dir / "skipped.csv", data.skipped[["where", "label", "error"]].rename(columns={"where": "path"}).to_csv(index=False))
            log.warning("train: %d of %d texts left out (empty or unlabelled); see %s", len(data.skipped),
                        len(data.skipped) + len(data.rows), run_dir / "skipped.csv")

    def splits_frame(self, data: Prepared):
        return data.rows[["where", "label", "split"]].rename(columns={"where": "path"})

    def make_dataset(self, rows, spec, cfg, training: bool, batch_size: int = 32, **options):
        import tensorflow as tf

        texts = rows["text"].astype(str).tolist()
        y = np.eye(len(spec.classes), dtype=np.float32)[rows["y"].to_numpy(dtype=int)]
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(texts, tf.string), y))
        if training:
            ds = ds.shuffle(min(len(texts), cfg.data.shuffle_buffer), seed=cfg.seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def resolve_auto(self, cfg, data: Prepared, model_name: str):
        """The model (model=auto), epochs (auto_epochs), patience 5, no refit."""
        from kiln.config.load import _flatten, load_config
        from kiln.train.auto import Decision

        chosen, t = data.extra["model"], cfg.train
        out = []
        if data.extra.get("why"):
            out.append(Decision("model.name", chosen, data.extra["why"]))
        spec = data.spec
        if cfg.text.sequence_length == "auto":
            s = spec.stats
            out.append(Decision("text.sequence_length", spec.sequence_length,
                                f"{'99th' if chosen in BAGS else '95th'} percentile of training lengths; truncates "
                                f"{s['truncated_train']:.1%} of train, {(s['truncated_val'] or 0):.1%} of val; val OOV rate "
                                f"{(s['oov_rate_val'] or 0):.1%}"))
        if cfg.text.analyzer == "auto":
            out.append(Decision("text.analyzer", spec.analyzer, "character 2-5-grams within words: bow scored higher on them than on "
                                "word n-grams (BENCHMARKS.md, text)" if spec.analyzer == "char_wb" else f"{chosen} reads word tokens"))
        if t.epochs == "auto":
            out.append(Decision("train.epochs", *auto_epochs(chosen)))
        if t.patience == "auto":
            out.append(Decision("train.patience", 5, "text: five epochs without a better val loss"))
        if t.refit == "auto":
            out.append(Decision("train.refit", False, "text keeps val for the threshold and the stopping epoch"))
        keep = [d for d in out if d.key.startswith("train.")]
        if not keep:
            return cfg, out
        flat = _flatten(cfg.model_dump(mode="json"))
        flat.update({d.key: d.value for d in keep})
        return load_config(overrides=flat), out

    # --- model ------------------------------------------------------------------------------------
    def choose_model(self, cfg) -> str:
        if cfg.model.name != "auto":
            self.models.get(cfg.model.name)
        return cfg.model.name

    def build_model(self, name: str, data: Prepared, cfg):
        from kiln.tasks.text.models import full_model, read_vectors

        spec, t = data.spec, cfg.text
        chosen = data.extra["model"]
        y = data.split("train")["y"].to_numpy()
        prior = np.bincount(y, minlength=len(data.classes)) / len(y)
        vectors = None
        if t.embeddings and chosen not in BAGS:
            vectors, found = read_vectors(t.embeddings, spec.vocabulary)
            log.info("train: %d of %d vocabulary tokens have a vector in %s", found, spec.vocabulary_size, t.embeddings)
            spec.stats["embeddings_found"] = found
        dropout = t.head_dropout if t.head_dropout != "auto" else {"bow": 0.0, "transformer": 0.1, "bow_transformer": 0.1}.get(chosen, 0.3)
        token_model = self.models.create(chosen, spec, len(data.classes), idf=data.extra["idf"], hidden=t.bow_hidden, dim=t.embed_size,
                                         units=t.rnn_units, blocks=t.encoder_blocks, heads=t.attention_heads, dropout=dropout,
                                         vectors=vectors, prior=prior, l2=cfg.model.l2)
        return full_model(spec, token_model, "custom" if self.models.get(chosen).family == "custom" else chosen)

    def custom_model(self, body):
        """`model=FILE.py:build` (kiln/user_model.py): strings -> the run's TextVectorization -> (N, sequence_length) int64
        token ids (0 pads, 1 out of vocabulary) -> your body -> (N, K) probabilities. TFLite and ONNX export the body
        with the tokenizer files, as for Kiln's sequence models."""
        def build(spec, num_outputs, **_):
            import keras

            from kiln.tasks.text.models import TOKEN_MODEL
            from kiln.user_model import BuildSpec

            net = body(BuildSpec("text", (spec.sequence_length,), "int64", int(num_outputs), "probabilities", "softmax", list(spec.classes or []) or None,
                                 {"vocabulary_size": spec.vocabulary_size, "sequence_length": spec.sequence_length}))
            ids = keras.Input(shape=(spec.sequence_length,), dtype="int64", name="token_ids")
            return keras.Model(ids, net(ids), name=TOKEN_MODEL)

        return build

    def compile_spec(self, data: Prepared, cfg) -> CompileSpec:
        import keras

        k = len(data.classes)
        weights = None
        if cfg.train.class_weight == "balanced":
            from kiln.train.trainer import class_weights

            weights = class_weights(data.split("train")["y"].to_numpy(), k)
        from kiln.evaluate.metrics import useful_top_k

        top_k = useful_top_k(cfg.train.top_k, k)  # top-k of k classes is always 1.0: not shown
        return CompileSpec(keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
                           ["accuracy"] + ([keras.metrics.TopKCategoricalAccuracy(k=top_k, name="top_k_accuracy")] if top_k else []),
                           cfg.train.monitor, "min" if "loss" in cfg.train.monitor else "max", weights)

    def describe(self, model_name: str, model, data: Prepared) -> str:
        c, s = data.counts(), data.spec
        return (f"kiln: training {s.model} ({model.count_params():,} parameters) on {c['train']} texts, {len(data.classes)} classes, "
                f"vocabulary {s.vocabulary_size:,}, {s.sequence_length} tokens, {c['val']} val / {c['test']} test")

    def after_fit(self, run, data: Prepared, cfg) -> dict:
        """Two classes: the decision threshold chosen on val (cfg.evaluate.threshold), for run.json."""
        val = data.split("val")
        if len(data.classes) == 2 and len(val):
            from kiln.evaluate.threshold import learned_threshold

            probs = data.outputs.get("val")
            if probs is None:
                probs = data.outputs["val"] = self.predict_outputs(run, val["text"].tolist())
            return learned_threshold(data.classes, val["y"].to_numpy(), probs, cfg.evaluate.threshold,
                                     y_train=data.split("train")["y"].to_numpy())
        return {}

    # --- run folder -------------------------------------------------------------------------------
    def run_meta(self, data: Prepared) -> dict:
        return {"model": data.spec.model, "classes": data.classes, "text": data.spec.to_dict(), "skipped": int(len(data.skipped)),
                "source": data.facts}

    def load_spec(self, meta: Mapping):
        from kiln.tasks.text.spec import TextSpec  # (kiln.io.load_keras registers the layers model.keras refers to)

        return TextSpec.from_dict(meta["text"])

    def describe_run(self, meta: Mapping) -> dict:
        t = meta.get("text") or {}
        return {"classes": len(meta.get("classes") or []) or None, "input": f"text, {t.get('sequence_length')} tokens" if t else None}

    # --- evaluation and report ---------------------------------------------------------------------
    def evaluate(self, run, data: Prepared, cfg) -> dict:
        from kiln.tasks.text.evaluate import evaluate_fresh

        return evaluate_fresh(self, run, data, cfg)

    def evaluate_run(self, run, data=None, split="test", out=None, **options) -> dict:
        from kiln.tasks.text.evaluate import evaluate_run

        return evaluate_run(self, run, data, split, out, **options)

    def predict(self, run, inputs, out=None, **options) -> list[dict]:
        from kiln.tasks.text.evaluate import predict_inputs

        return predict_inputs(self, run, inputs, out, **options)

    def predict_outputs(self, run, inputs, batch_size: int = 64, model=None, **options):
        """(N, K) probabilities for a list of raw strings, in order (`model`: the run's ONNX export standing in
        for run.model: its shipped tokenizer.py turns the strings into token ids, without TensorFlow)."""
        from kiln.tasks.text.evaluate import probabilities

        if model is not None:
            from kiln.tasks.text.tokenize import Tokenizer

            if not len(inputs):
                return np.zeros((0, len(run.classes)), np.float32)
            return model(Tokenizer.load(model.folder).ids([str(t) for t in inputs]))
        return probabilities(run, list(inputs), batch_size)

    def report_sections(self, run, split, **options):
        from kiln.tasks.text.report import sections

        return sections(self, run, split, **options)

    def command(self, name: str):
        """audit (text=, target=, strict=, ignore=, sequence_length=, max_chars=); texts have no shard format."""
        from kiln.tasks.text.commands import COMMANDS

        if name not in COMMANDS:
            raise self.unsupported(name)
        return COMMANDS[name]

    def audit(self, data: str, out: str | None = None, progress: bool = True, **options) -> dict:
        from kiln.tasks.text.audit import audit

        return audit(data, out=out, **options)

    # --- export and serve ----------------------------------------------------------------------------
    def signature(self, run):
        from kiln.tasks.text.export import signature

        return signature(run)

    def export_model(self, run, format: str):
        from kiln.tasks.text.export import export_model

        return export_model(run, format)

    def parity_data(self, run, limit: int):
        from kiln.tasks.text.export import parity_texts

        return parity_texts(run, limit)

    def calibration_data(self, run, n: int):
        from kiln.tasks.text.evaluate import split_rows

        return np.asarray(split_rows(run, "train")["text"].head(n).tolist(), dtype=object)

    def parity(self, reference, candidate, y) -> dict:
        from kiln.export.parity import class_parity

        return class_parity(reference, candidate, y)

    def adapter(self, served):
        from kiln.tasks.text.serve import TextAdapter

        return TextAdapter(served)

    # --- the contract test ------------------------------------------------------------------------------
    def demo_plan(self, dest: Path):
        from kiln.tasks.text.demo import demo_plan

        return demo_plan(dest)

    def example(self, root: Path, seed: int = 0) -> Example:
        from kiln.tasks.text.synth import write_reviews

        path = write_reviews(Path(root) / "reviews.csv", n=240, seed=seed)
        texts = ["a wonderful , delightful film", "dull and boring plot"]
        return Example(overrides={"data": str(path), "text.text": "review", "text.label": "sentiment", "train.epochs": 4},
                       request_path="/predict", request={"text": texts[0]}, predict_inputs=texts)


__all__ = ["TextTask", "auto_model"]
