"""Serving raw rows over loopback: TF Serving REST (rows and columns), KServe v2, /predict; 400s that
name the missing column or the wrong value, never a 5xx."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests


@pytest.fixture(scope="module")
def server(table_run):
    import uvicorn

    from kiln.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(table_run.path, name="people", max_delay_ms=5)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if requests.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    yield url
    srv.should_exit = True
    thread.join(10)


def test_protocols_agree_with_predict(server, table_run, table_csv):
    from kiln.tasks.base import task_of

    frame = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[:4]
    rows = frame.drop(columns=["label"]).to_dict(orient="records")
    rows[0]["age"] = None  # missing -> imputed
    expected = task_of(table_run.meta).predict_outputs(table_run, pd.DataFrame(rows).fillna(""))
    r = requests.post(server + "/v1/models/people:predict", json={"instances": rows}, timeout=30)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predictions"], expected, atol=1e-5)
    cols = {c: [row[c] for row in rows] for c in rows[0]}
    r = requests.post(server + "/v1/models/people:predict", json={"inputs": cols}, timeout=30)
    np.testing.assert_allclose(r.json()["outputs"], expected, atol=1e-5)
    kserve = {"inputs": [{"name": c, "datatype": "BYTES", "shape": [4], "data": v} for c, v in cols.items()]}
    r = requests.post(server + "/v2/models/people/infer", json=kserve, timeout=30)
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["probabilities"]["shape"] == [4, 2] and len(out["label"]["data"]) == 4
    r = requests.post(server + "/predict", json=rows[1], timeout=30)
    assert r.status_code == 200 and r.json()["prediction"] in ("c0", "c1")
    meta = requests.get(server + "/v2/models/people", timeout=30).json()
    assert [i["name"] for i in meta["inputs"]] == ["age", "city", "joined", "flag"]
    assert "<form" in requests.get(server + "/", timeout=30).text


def test_bad_rows_are_400_naming_the_problem(server):
    row = {"age": "40", "city": "Paris", "joined": "2021-05-01", "flag": "yes"}
    cases = [({"instances": [{k: v for k, v in row.items() if k != "city"}]}, "city"),
             ({"instances": [{**row, "age": "forty"}]}, "expected a number"),
             ({"instances": [{**row, "city": ["a"]}]}, "single value"), ({"rows": []}, "instances")]
    for body, why in cases:
        r = requests.post(server + "/v1/models/people:predict", json=body, timeout=30)
        assert r.status_code == 400 and why in r.json()["error"], (body, r.text)
    r = requests.post(server + "/predict", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
