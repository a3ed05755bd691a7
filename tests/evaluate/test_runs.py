"""kiln runs lists run folders; kiln compare shows them side by side and overlays their curves."""

import json
import shutil

import yaml


def test_runs_and_compare(tiny_run, tmp_path, capsys):
    from kiln.cli import main

    root = tmp_path / "runs"
    a = root / "a"
    b = root / "group" / "b"
    shutil.copytree(tiny_run.path, a)
    shutil.copytree(tiny_run.path, b)
    cfg = yaml.safe_load((b / "config.yaml").read_text())
    cfg["train"]["lr"] = 0.01
    (b / "config.yaml").write_text(yaml.safe_dump(cfg))
    (root / "notes").mkdir()

    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "status", "task", "model"] and len(lines) == 4  # header, rule, two runs
    assert "accuracy/macro F1" in out  # the figures the run's task leads with, named
    assert "finished" in out and "cnn" in out

    assert main(["runs", str(root), "format=json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["run"] for r in rows} == {"a", "b"}
    assert rows[0]["test_accuracy"] == tiny_run.metrics["test"]["accuracy"]
    assert rows[0]["headline"]["test"]["accuracy"] == tiny_run.metrics["test"]["accuracy"]

    png = tmp_path / "curves.png"
    assert main(["compare", str(a), str(b), f"out={png}"]) == 0
    out = capsys.readouterr().out
    assert "config train.lr" in out and "0.0100" in out and "accuracy/macro F1" in out
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["compare", str(a), str(b), "format=json", f"out={png}"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differences"]["train.lr"] == [tiny_run.config.train.lr, 0.01]

    assert main(["compare", str(a)]) == 2
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
