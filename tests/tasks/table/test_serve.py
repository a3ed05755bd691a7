"""Serving raw rows over loopback on the spine's server (kiln/serve/app.py: API key, metrics, micro-batching):
TF Serving REST (rows and columns), KServe v2, /predict; 400s that name the missing column or the wrong value, never a 5xx."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest
import requests

KEY = "secret"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def server(table_run):
    import uvicorn

    from kiln.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(table_run.path, name="people", max_delay_ms=5, api_key=KEY)
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
    r = requests.post(server + "/v1/models/people:predict", json={"instances": rows}, timeout=30, headers=AUTH)
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predictions"], expected, atol=1e-5)
    cols = {c: [row[c] for row in rows] for c in rows[0]}
    r = requests.post(server + "/v1/models/people:predict", json={"inputs": cols}, timeout=30, headers=AUTH)
    np.testing.assert_allclose(r.json()["outputs"], expected, atol=1e-5)
    kserve = {"inputs": [{"name": c, "datatype": "BYTES", "shape": [4], "data": v} for c, v in cols.items()]}
    r = requests.post(server + "/v2/models/people/infer", json=kserve, timeout=30, headers=AUTH)
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["probabilities"]["shape"] == [4, 2] and len(out["label"]["data"]) == 4
    r = requests.post(server + "/predict", json=rows[1], timeout=30, headers=AUTH)
    assert r.status_code == 200 and r.json()["prediction"] in ("c0", "c1")
    meta = requests.get(server + "/v2/models/people", timeout=30, headers=AUTH).json()
    assert [i["name"] for i in meta["inputs"]] == ["age", "city", "joined", "flag"]
    assert "<form" in requests.get(server + "/", timeout=30, headers=AUTH).text


def test_bad_rows_are_400_naming_the_problem(server):
    row = {"age": "40", "city": "Paris", "joined": "2021-05-01", "flag": "yes"}
    cases = [({"instances": [{k: v for k, v in row.items() if k != "city"}]}, "city"),
             ({"instances": [{**row, "age": "forty"}]}, "expected a number"),
             ({"instances": [{**row, "city": ["a"]}]}, "single value"), ({"rows": []}, "instances")]
    for body, why in cases:
        r = requests.post(server + "/v1/models/people:predict", json=body, timeout=30, headers=AUTH)
        assert r.status_code == 400 and why in r.json()["error"], (body, r.text)
    r = requests.post(server + "/predict", data=b"{not json", headers={"Content-Type": "application/json", **AUTH}, timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_typed_kserve_inputs_and_their_errors(server, table_run, table_csv):
    """KServe v2 with FP64 numbers and BYTES text agrees with predict; a wrong datatype or shape is a 400 naming the input."""
    from kiln.tasks.base import task_of

    frame = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[10:13]
    expected = task_of(table_run.meta).predict_outputs(table_run, frame)
    typed = [{"name": "age", "datatype": "FP64", "shape": [3], "data": [float(v) if v else None for v in frame["age"]]},
             {"name": "city", "datatype": "BYTES", "shape": [3], "data": list(frame["city"])},
             {"name": "joined", "datatype": "BYTES", "shape": [3], "data": list(frame["joined"])},
             {"name": "flag", "datatype": "BYTES", "shape": [3], "data": list(frame["flag"])}]
    r = requests.post(server + "/v2/models/people/infer", json={"id": "q1", "inputs": typed}, timeout=30, headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == "q1", r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    np.testing.assert_allclose(np.reshape(out["probabilities"]["data"], (3, 2)), expected, atol=1e-5)
    bad = [({**typed[0], "datatype": "FP64", "data": ["x", "y", "z"]}, "age: datatype FP64 holds text"),
           ({**typed[0], "datatype": "COMPLEX"}, "age: datatype 'COMPLEX'"), ({**typed[0], "shape": [5]}, "age: shape [5]")]
    for tensor, why in bad:
        r = requests.post(server + "/v2/models/people/infer", json={"inputs": [tensor, *typed[1:]]}, timeout=30, headers=AUTH)
        assert r.status_code == 400 and why in r.json()["error"], (why, r.text)
    r = requests.post(server + "/v2/models/people/infer", json={"inputs": typed[1:]}, timeout=30, headers=AUTH)
    assert r.status_code == 400 and "missing column(s) the model needs: age" in r.json()["error"]
    assert requests.post(server + "/v2/models/other/infer", json={"inputs": typed}, timeout=30, headers=AUTH).status_code == 404


def test_concurrent_rows_share_batches_and_answers_stay_each_rows_own(server, table_run, table_csv):
    """16 one-row requests at once go through the micro-batcher: each gets its own row's answer; /metrics counts every row."""
    from concurrent.futures import ThreadPoolExecutor

    from kiln.tasks.base import task_of

    frame = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[20:36]
    expected = task_of(table_run.meta).predict_outputs(table_run, frame)
    rows = frame.drop(columns=["label"]).to_dict(orient="records")

    def rows_seen() -> float:
        text = requests.get(server + "/metrics", timeout=30, headers=AUTH).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("kiln_batch_size_sum"))

    before = rows_seen()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda row: requests.post(server + "/v1/models/people:predict", json={"instances": [row]},
                                                          timeout=60, headers=AUTH), rows))
    assert all(a.status_code == 200 for a in answers)
    np.testing.assert_allclose([a.json()["predictions"][0] for a in answers], expected, atol=1e-5)
    assert rows_seen() - before == 16


def test_api_key_guards_the_table_routes(server):
    row = {"age": "40", "city": "Paris", "joined": "2021-05-01", "flag": "yes"}
    r = requests.post(server + "/predict", json=row, timeout=30)
    assert r.status_code == 401 and "API key" in r.json()["error"]
    assert requests.get(server + "/v2/health/ready", timeout=30).status_code == 200  # health stays open
    page = requests.get(server + "/", timeout=30).text
    assert "<form" in page and "name='city'" in page and "id='key'" in page  # the form asks for the key


def test_served_rows_encode_as_encode_rows_does(table_run, table_csv):
    """The server's cell-by-cell encoder gives exactly encode_rows' arrays, odd cells included."""
    from kiln.tasks.table.rows import encode_cells, fast_encodable
    from kiln.tasks.table.spec import encode_rows

    spec = table_run.spec
    assert fast_encodable(spec)
    rows = pd.read_csv(table_csv, dtype=str, keep_default_na=False).iloc[:40].to_dict(orient="records")
    odd = {"age": [" 41 ", "NA", "?", "", "1e2", "inf", "1_000", "-.5"], "city": [" Paris ", "N/A", "", "Atlantis", "paris", "-", "x", "Lille"],
           "flag": ["Yes", "no", "1", "0", "", "maybe", "T", "2"],
           "joined": ["2021-05-01", "", "not a date", "2019-12-31", "none", "2020-02-29", "2018-01-01", "2022-07-04"]}
    rows += [{**rows[0], **{c: v[i] for c, v in odd.items()}} for i in range(8)]
    fast, ref = encode_cells(rows, spec), encode_rows(pd.DataFrame(rows, dtype=object), spec)
    assert set(fast) == set(ref)
    for name in ref:
        assert fast[name].dtype == ref[name].dtype and fast[name].shape == ref[name].shape == (48, 1), name
        if ref[name].dtype == object:
            assert fast[name].tolist() == ref[name].tolist(), name
        else:
            np.testing.assert_array_equal(fast[name], ref[name], err_msg=name)
