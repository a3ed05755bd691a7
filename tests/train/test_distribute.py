"""distribute=multi_worker: two real `kiln train` worker processes on loopback (CPU) train to the same
accuracy band as one worker with the same global batch; TF_CONFIG parsing and chief selection."""

import json
import os
import signal
import socket
import subprocess

import pytest

import kiln
from conftest import KILN
from kiln.config import load_config
from kiln.errors import ConfigError
from kiln.train.distribute import cluster_size, is_chief, make_strategy, resolve, tf_config
from kiln.train.trainer import train

COMMON = ["image_size=32", "epochs=6", "lr=0.003", "schedule=constant", "seed=1", "model.filters=[16,32]", "model.units=[32]",
          "tensorboard=false", "verbose=0", "evaluate.report=false"]


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _accuracy(run) -> float:
    m = run.metrics
    return (m["val"]["accuracy"] * m["val"]["n"] + m["test"]["accuracy"] * m["test"]["n"]) / (m["val"]["n"] + m["test"]["n"])


def test_two_workers_on_loopback_match_one_worker(tmp_path, shapes_dir):
    run_dir = tmp_path / "multi"
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
            # batch_size is per replica: 16 on each of 2 workers = the single worker's global batch of 32
            args = [KILN, "train", f"data={shapes_dir}", f"run_dir={run_dir}", "distribute=multi_worker", "batch_size=16", *COMMON]
            procs.append(subprocess.Popen(args, stdout=(tmp_path / f"worker{index}.log").open("wb"), stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True))
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "worker finished; the chief writes the run folder" in logs[1]

    multi = kiln.load_run(run_dir)
    assert multi.meta["replicas"] == 2 and multi.meta["global_batch"] == 32
    assert len(multi.history) == 6
    single = train(load_config(overrides=[f"data={shapes_dir}", f"run_dir={tmp_path / 'single'}", "batch_size=32", *COMMON]))
    assert single.meta["replicas"] == 1
    a_multi, a_single = _accuracy(multi), _accuracy(single)
    assert a_single >= 0.75 and a_multi >= 0.75 and abs(a_multi - a_single) <= 0.2, (a_multi, a_single)


def test_tf_config_and_chief(monkeypatch):
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert cluster_size(tf_config()) == 2 and not is_chief() and resolve("auto") == "multi_worker"
    assert is_chief({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    assert is_chief({"cluster": {**cluster, "chief": ["c:3"]}, "task": {"type": "chief", "index": 0}})
    assert not is_chief({"cluster": {**cluster, "chief": ["c:3"]}, "task": {"type": "worker", "index": 0}})
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG=.*it is not JSON"):
        tf_config()
    monkeypatch.delenv("TF_CONFIG")
    assert is_chief() and resolve("auto") in ("none", "mirrored")
    with pytest.raises(ConfigError, match="TF_CONFIG is not set"):
        make_strategy("multi_worker")
    assert make_strategy("none").num_replicas_in_sync == 1
    assert load_config(overrides={"distribute": "mirrored"}).train.distribute == "mirrored"


def test_bad_distribute_value_is_one_line(capsys):
    from kiln.cli import main  # the console script's body in this process; an escaping exception fails the test

    assert main(["train", "data=x", "distribute=tpu"]) == 2
    err = capsys.readouterr().err
    assert "train.distribute=tpu" in err and "Traceback" not in err
