"""Text end to end: train (model=auto), baseline beside, predict strings / files / CSV, evaluate, export with the
tokenizer (TFLite: token ids + tokenizer files, parity on raw test texts), serve, audit, and bad input in one line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kiln.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))


def _cli(capsys, *args):
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc or 0, out.out, out.err)


def test_auto_run_beside_its_baseline(text_run):
    m, meta = text_run.metrics, text_run.meta
    assert meta["task"] == "text" and meta["model"] == "bow" and "model.name" in meta["auto"]
    assert meta["text"]["analyzer"] == "char_wb" and meta["auto"]["text.analyzer"]["value"] == "char_wb"  # analyzer=auto for bow
    base = m["baselines"]["test"]["tfidf_logreg"]["accuracy"]
    assert m["test"]["accuracy"] >= 0.85 and m["test"]["accuracy"] >= base - 0.05, (m["test"]["accuracy"], base)
    assert set(m["test"]["per_class"]) == {"neg", "pos", "mixed"}
    assert 0 <= m["text"]["oov_rate_val"] < 0.5 and m["text"]["truncated_train"] <= 0.02


def test_predict_strings_files_and_csv(text_run, tmp_path, capsys):
    txt = tmp_path / "one.txt"
    txt.write_text("What a WONDERFUL, delightful film!")
    csv = tmp_path / "many.csv"
    pd.DataFrame({"review": ["dull, boring and awful", "superb and brilliant"], "other": [1, 2]}).to_csv(csv, index=False)
    r = _cli(capsys, "predict", str(text_run.path), "terrible tedious plot", str(txt), str(csv), "top_k=2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [x["label"] for x in rows] == ["neg", "pos", "neg", "pos"]
    assert rows[1]["source"] == str(txt) and rows[2]["source"] == "many.csv:2" and len(rows[0]["top_k"]) == 2


def test_evaluate_another_file(text_run, reviews_csv, tmp_path):
    from kiln.tasks.text.synth import write_reviews

    other = write_reviews(tmp_path / "other.csv", n=60, seed=9, classes=3)
    result = text_run.evaluate(data=str(other))
    assert result["n"] == 60 and result["accuracy"] >= 0.8
    assert set(text_run.evaluate(split="test")) == set(text_run.metrics["test"])


def test_report_has_text_sections(text_run):
    from kiln.evaluate.report import write_report

    page = write_report(text_run).read_text()
    for anchor in ("text-metrics", "text-classes", "text-lengths", "text-mistakes"):
        assert f'id="{anchor}"' in page
    assert "TF-IDF + logistic regression" in page and "words that mattered" in page


@pytest.fixture(scope="module")
def tflite_export(text_run, tmp_path_factory):
    import kiln

    out = tmp_path_factory.mktemp("xexp") / "tflite"
    m = kiln.export_run(text_run.path, "tflite", out=str(out), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    return out, m


def test_tflite_export_carries_the_tokenizer(tflite_export, text_run):
    out, m = tflite_export
    assert m["passed"] and m["agreement"] >= 0.99 and m["parity_split"] == "test" and m["runtime"] == "litert"
    assert m["input"]["name"] == "token_ids" and m["classes"] == text_run.classes
    for name in ("model.tflite", "tokenizer.py", "vocabulary.txt", "tokenizer.json", "labels.txt", "export.json"):
        assert (out / name).is_file(), name
    spec = importlib.util.spec_from_file_location("shipped_tokenizer", out / "tokenizer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # what a user of the export runs, standard library + numpy only
    texts = ["A superb, brilliant film!", "dull"]
    ids = mod.Tokenizer.load(out).ids(texts)
    vectorize = text_run.model.get_layer("vectorize")
    np.testing.assert_array_equal(ids, vectorize(np.array(texts)).numpy())


def test_serve_the_tflite_export(tflite_export):
    from kiln_serving import running

    from kiln.serve.app import create_app

    out, _ = tflite_export
    app = create_app(out, name="rev")

    def post(url, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    with running(app) as url:
        code, body = post(url + "/v1/models/rev:predict", {"instances": ["superb and brilliant", "awful, boring"]})
        assert code == 200 and np.asarray(body["predictions"]).shape == (2, 3)
        code, body = post(url + "/v2/models/rev/infer", {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                                                      "data": ["dull and tedious"]}]})
        assert code == 200 and body["outputs"][1]["data"] == ["neg"]
        code, body = post(url + "/predict", {"text": "wonderful delightful"})
        assert code == 200 and body["label"] == "pos"
        code, body = post(url + "/predict", b"a charming, moving story", "text/plain")
        assert code == 200 and body["label"] == "pos"
        assert post(url + "/predict", {"text": "x" * 200_000 + " superb"})[0] == 200  # truncated at max_chars
        for bad in ({"text": ""}, {"text": "   "}, {"texts": []}, {"text": 5}, {"instances": "no"}):
            assert post(url + "/predict", bad)[0] == 400, bad
        assert post(url + "/predict", b'{"text": "caf\xe9"}')[0] == 400  # not UTF-8
        assert post(url + "/v1/models/rev:predict", {"instances": [""]})[0] == 400
        with urllib.request.urlopen(url + "/", timeout=30) as resp:
            assert "<textarea" in resp.read().decode()


def test_bad_input_one_line_exit_2(reviews_csv, tmp_path, capsys):
    one = tmp_path / "one.csv"
    pd.DataFrame({"review": [f"text {i}" for i in range(20)], "label": ["a"] * 20}).to_csv(one, index=False)
    blank = tmp_path / "blank.csv"
    pd.DataFrame({"review": ["", "  "] * 10, "label": ["a", "b"] * 10}).to_csv(blank, index=False)
    (tmp_path / "notxt" / "a").mkdir(parents=True)
    (tmp_path / "notxt" / "a" / "x.md").write_text("no")
    cases = [([f"data={reviews_csv}", "text=reveiw", "target=sentiment"], "Did you mean review"),
             ([f"data={tmp_path / 'notxt'}", "task=text"], "no .txt files"),
             ([f"data={one}", "text=review"], "same label"),
             ([f"data={blank}", "text=review"], "empty or whitespace only"),
             ([f"data={reviews_csv}", "text=review", "target=sentiment", "sequence_length=0"], "sequence_length")]
    for args, why in cases:
        r = _cli(capsys, "train", *args, f"runs_root={tmp_path / 'runs'}")
        lines = [line for line in (r.stdout + r.stderr).strip().splitlines() if line.strip() and not line.startswith("kiln: ")]
        assert r.returncode == 2 and len(lines) == 1 and why in lines[0] and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
    assert not (tmp_path / "runs").exists()


def test_audit_finds_text_problems(tmp_path, capsys):
    rows = ["A fine film.", "a FINE film", "A fine film.", "", "   ", "bad \xff bytes here", "same text", "same text"]
    labels = ["pos", "pos", "pos", "neg", "neg", "neg", "pos", "neg"]
    path = tmp_path / "t.csv"
    body = "review,label\n" + "".join(f'"{r}",{lab}\n' for r, lab in zip(rows, labels))
    path.write_bytes(body.encode("utf-8").replace("\xff".encode("utf-8"), b"\xff"))
    out = tmp_path / "audit"
    r = _cli(capsys, "audit", str(path), "text=review", f"out={out}")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "audit.json").read_text())
    kinds = set(report["counts"])
    assert {"empty_text", "whitespace_text", "undecodable_bytes", "exact_duplicate", "near_duplicate", "conflicting_labels"} <= kinds
    assert (out / "audit.html").is_file() and report["lengths"]["p50"] >= 1
    assert _cli(capsys, "audit", str(path), "text=review", f"out={out}", "strict=true").returncode == 1


def test_every_model_builds_and_round_trips(tmp_path):
    from types import SimpleNamespace

    import keras

    from kiln.tasks.text.models import MODELS, full_model

    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(30)]
    spec = SimpleNamespace(vocabulary=vocab, vocabulary_size=len(vocab), sequence_length=8, ngrams=1)
    texts = np.array(["w1 w2 w3", "", "w9 zz " * 10])
    assert MODELS.names() == ["bilstm", "bow", "bow_transformer", "cnn1d", "gru", "lstm", "transformer"]
    for name in MODELS.names():
        model = full_model(spec, MODELS.create(name, spec, 3, idf=np.ones(len(vocab)), dim=8, units=4), name)
        out = model(texts).numpy()
        assert out.shape == (3, 3) and np.allclose(out.sum(1), 1, atol=1e-5), name
        model.save(tmp_path / f"{name}.keras")
        again = keras.saving.load_model(tmp_path / f"{name}.keras", safe_mode=True)
        np.testing.assert_allclose(again(texts).numpy(), out, atol=1e-5)


def test_auto_model_by_data_size():
    """Few long texts: bow (not bow_transformer: it lost to bow over ten real splits); many short texts: a sequence model."""
    from kiln.tasks.text.task import auto_model, auto_epochs

    assert auto_model(1000, 214)[0] == "bow" and auto_model(300_000, 20)[0] == "cnn1d"
    assert auto_epochs("bow_transformer")[0] == 12 and auto_epochs("bow")[0] == 40 and auto_epochs("gru")[0] == 20


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """A small model=bow_transformer run (an Ensemble of bow and a transformer on the same n-gram ids)."""
    import kiln
    from kiln.tasks.text.synth import write_reviews

    path = write_reviews(tmp_path_factory.mktemp("ens") / "reviews.csv", n=120, seed=3, classes=3)
    return kiln.train(data=str(path), task="text", model="bow_transformer", run_dir=str(tmp_path_factory.mktemp("xruns") / "ens"),
                      train={"verbose": 0, "tensorboard": False, "epochs": 3}, evaluate={"report": False},
                      **{"text.text": "review", "text.label": "sentiment", "text.baseline": False})


def test_ensemble_exports_one_token_model_that_averages_its_members(ensemble_run, tmp_path):
    """bow_transformer's ONNX copy: one functional model on the shared ids = the Keras ensemble on raw text; parity holds."""
    import kiln
    from kiln.tasks.text.export import export_model, tokenizer_of
    from kiln.tasks.text.models import token_models
    from kiln.train.ensemble import members_of

    run = ensemble_run
    assert run.meta["model"] == "bow_transformer"
    assert [m.name for m in token_models(run.model)] == ["token_model_bow", "token_model_transformer"]
    token_model, _ = export_model(run, "onnx")
    texts = ["a wonderful , delightful film", "dull and boring plot", ""]
    ids = tokenizer_of(run).ids(texts)
    for member in members_of(run.model):  # each member's copy of the one vectorizer tokenises as the shipped tokenizer
        np.testing.assert_array_equal(member.get_layer("vectorize")(np.array(texts)).numpy(), ids)
    np.testing.assert_allclose(token_model(ids).numpy(), run.model(np.array(texts)).numpy(), atol=1e-5)
    members = [m(ids).numpy() for m in token_models(run.model)]
    np.testing.assert_allclose(token_model(ids).numpy(), np.mean(members, axis=0), atol=1e-6)
    m = kiln.export_run(run.path, "onnx", out=str(tmp_path / "onnx"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"] and m["agreement"] >= 0.99 and (tmp_path / "onnx" / "tokenizer.py").is_file()


def test_a_fresh_process_loads_the_ensemble_run(ensemble_run):
    """model.keras of bow_transformer is an Ensemble: `kiln predict` in a new interpreter must find the class."""
    code = f"import sys; from kiln.cli import main; sys.exit(main(['predict', {str(ensemble_run.path)!r}, 'a wonderful film']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(c in done.stdout for c in ensemble_run.classes), done.stdout


def test_serving_an_export_without_its_tokenizer_files_is_one_line(tflite_export, tmp_path):
    import shutil

    from kiln.errors import FileError
    from kiln.serve.app import create_app

    out, _ = tflite_export
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "vocabulary.txt").unlink()
    with pytest.raises(FileError, match="tokenizer files cannot be read"):
        create_app(broken)


def test_pretrained_vectors_from_a_local_file(tmp_path):
    from kiln.errors import DataError
    from kiln.tasks.text.models import read_vectors

    glove = tmp_path / "vectors.txt"
    glove.write_text("2 3\nfilm 0.1 0.2 0.3\nsuperb 1 2 3\n")  # word2vec text format: a "count dim" header
    matrix, found = read_vectors(str(glove), ["", "[UNK]", "superb", "dull"])
    assert matrix.shape == (4, 3) and found == 1 and matrix[2].tolist() == [1.0, 2.0, 3.0] and not matrix[0].any()
    (tmp_path / "bad.txt").write_text("word one two\n")
    with pytest.raises(DataError, match="not a word followed by numbers"):
        read_vectors(str(tmp_path / "bad.txt"), ["", "[UNK]", "word"])
    with pytest.raises(DataError, match="cannot be read"):
        read_vectors(str(tmp_path / "missing.txt"), ["", "[UNK]"])


def test_tune_space_takes_text_keys(reviews_csv):
    from kiln.config import load_config
    from kiln.train.tune import parse_space

    cfg = load_config(None, [f"data={reviews_csv}", "text=review", "target=sentiment"])
    cfg = cfg.model_copy(update={"tune": cfg.tune.model_copy(update={"space": {"text.embed_size": [8, 16], "max_tokens": [100, 500]}})})
    assert [d.key for d in parse_space(cfg)] == ["text.embed_size", "text.max_tokens"]


def test_bow_bag_is_sublinear_l2_normalised_tfidf():
    """IdfBag(sublinear=True) with an identity kernel is scikit-learn's TfidfTransformer(sublinear_tf=True) row."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    from kiln.tasks.text.layers import IdfBag

    rng = np.random.default_rng(0)
    v, length = 30, 40
    ids = rng.integers(1, v, (5, length))
    ids[0, 20:] = 0  # padding
    ids[1, :] = 0  # an empty text
    ids[2, :9] = 7  # one term repeated
    counts = np.stack([np.bincount(r, minlength=v) for r in ids]).astype(float)
    counts[:, 0] = 0
    idf = rng.uniform(0.5, 3.0, v)
    idf[0] = 0.0
    tfidf = TfidfTransformer(sublinear_tf=True, norm="l2").fit(sp.csr_matrix(counts))
    tfidf.idf_ = idf
    expected = tfidf.transform(sp.csr_matrix(counts)).toarray()
    bag = IdfBag(v, v, idf=idf, scale=1.0, sublinear=True)
    bag.build((None, length))
    bag.kernel.assign(np.eye(v, dtype="float32"))
    np.testing.assert_allclose(np.asarray(bag(ids)), expected, atol=1e-5)
    assert bag.get_config()["sublinear"] is True


def test_char_wb_bow_trains_exports_and_serves_raw_text(reviews_csv, tmp_path, capsys):
    """analyzer=char_wb: a bow on character 2-5-grams within words learns the reviews, its model.keras reloads in a
    fresh process (the split function is registered), and its ONNX export ships a tokenizer that agrees."""
    import kiln

    run = kiln.train(data=str(reviews_csv), task="text", run_dir=str(tmp_path / "cw"), seed=0,
                     train={"verbose": 0, "tensorboard": False, "epochs": 8}, evaluate={"report": False},
                     **{"text.text": "review", "text.label": "sentiment", "text.analyzer": "char_wb", "text.baseline": False})
    assert run.meta["model"] == "bow" and run.meta["text"]["analyzer"] == "char_wb"
    assert run.metrics["test"]["accuracy"] >= 0.8
    code = f"import sys; from kiln.cli import main; sys.exit(main(['predict', {str(run.path)!r}, 'a wonderful film']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and any(c in done.stdout for c in run.classes), done.stderr[-2000:]
    m = kiln.export_run(run.path, "onnx", out=str(tmp_path / "onnx"), timing={"latency_runs": 2, "batch_runs": 1, "batch_size": 4})
    assert m["passed"] and m["agreement"] >= 0.99
    assert json.loads((tmp_path / "onnx" / "tokenizer.json").read_text())["analyzer"] == "char_wb"
    capsys.readouterr()
    assert main(["train", f"data={reviews_csv}", "text=review", "target=sentiment", "model=cnn1d", "analyzer=char_wb",
                 f"run_dir={tmp_path / 'bad'}", "verbose=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train received text.analyzer=char_wb; cnn1d reads word tokens") and "\n" not in err
