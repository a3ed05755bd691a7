"""Reading text sources: folders (also pre-split), CSV / TSV / JSON Lines, undecodable bytes counted, bad input in one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kiln.errors import DataError
from kiln.tasks.base import infer_task
from kiln.tasks.text.source import assign_splits, read_texts


def test_folder_and_presplit_folder(reviews_folder, tmp_path):
    rows = read_texts(reviews_folder)
    assert len(rows) == 60 and set(rows["label"]) == {"neg", "pos"} and rows["split"].isna().all()
    for split in ("train", "test"):
        (tmp_path / "p" / split / "a").mkdir(parents=True)
        (tmp_path / "p" / split / "b").mkdir(parents=True)
        (tmp_path / "p" / split / "a" / "1.txt").write_bytes(b"good \xff\xfe text")
        (tmp_path / "p" / split / "b" / "1.txt").write_text("other text")
    rows = read_texts(tmp_path / "p")
    assert sorted(rows["split"]) == ["test", "test", "train", "train"]
    assert rows.loc[rows["label"] == "a", "bad_bytes"].tolist() == [2, 2]
    assert infer_task(str(tmp_path / "p")).info.name == "text"


def test_table_formats(tmp_path):
    frame = pd.DataFrame({"body": ["one text", "two texts", "three"], "y": ["a", "b", "a"], "split": ["train", "val", "test"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    for name in ("t.csv", "t.tsv", "t.jsonl"):
        rows = read_texts(tmp_path / name, text="body", label="y")
        assert rows["text"].tolist() == frame["body"].tolist() and rows["split"].tolist() == ["train", "val", "test"], name
    assert infer_task(str(tmp_path / "t.csv"), {"text": {"text": "body"}, "table": {"target": "y"}}).info.name == "text"
    assert infer_task(str(tmp_path / "t.csv"), {"table": {"target": "y"}}).info.name == "table"


def test_bad_sources_say_why(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no .txt files"):
        read_texts(tmp_path / "empty")
    pd.DataFrame({"review": ["x"], "label": ["a"]}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match="Did you mean review"):
        read_texts(tmp_path / "r.csv", text="reveiw")


def test_splits_are_seeded_and_stratified(reviews_csv):
    rows = read_texts(reviews_csv, text="review", label="sentiment")
    a, b = assign_splits(rows, 0.1, 0.2, seed=3), assign_splits(rows, 0.1, 0.2, seed=3)
    assert (a == b).all() and (a == "test").sum() == 60 and (a == "val").sum() == 30
    for split in ("val", "test"):
        assert rows["label"][a == split].nunique() == 3
