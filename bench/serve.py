"""`kiln serve` under bounded load on loopback: micro-batching on vs off, as a ratio.

    .venv/bin/python bench/serve.py [--run RUN_DIR] [--clients 32] [--requests 3000]

Starts `kiln serve RUN_DIR` in its own process twice: batching on (max_batch_size=32, max_delay_ms=2)
and off (max_batch_size=1: one model call per request). Each time, --clients concurrent keep-alive
connections (one asyncio event loop, raw HTTP/1.1) send --requests TF Serving REST calls
`POST /v1/models/NAME:predict {"instances": [{"b64": <PNG>}]}` of one test-split image each, after a
warm-up of 200. Reports throughput, p50/p99 latency and the mean micro-batch size from /metrics, and
for scale: the HTTP stack alone (GET /v2/health/ready under the same load) and the model alone
(in-process, batch 1 vs batch 32), since batching can only save model time.
Only 127.0.0.1 is used. Without --run it uses the run bench/export.py trains.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
KILN = str(Path(sys.executable).parent / "kiln")
MODES = {"on": ["max_batch_size=32", "max_delay_ms=2"], "off": ["max_batch_size=1"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http(reader, writer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def load(port: int, path: str, bodies: list[bytes], clients: int, n: int, method: str = "POST") -> tuple[float, list[float], int]:
    """n requests over `clients` connections: (wall seconds, latencies, errors)."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0

    async def client():
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (i := next(counter)) < n:
            t = time.perf_counter()
            status, _ = await http(reader, writer, method, path, bodies[i % len(bodies)] if method == "POST" else b"")
            latencies.append(time.perf_counter() - t)
            errors += status != 200
        writer.close()

    t = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - t, latencies, errors


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await http(reader, writer, "GET", path)
    finally:
        writer.close()


def bench_mode(run: Path, name: str, extra: list[str], bodies: list[bytes], clients: int, n: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([KILN, "serve", str(run), f"port={port}", "name=bench", *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read()[-2000:])
            try:
                if asyncio.run(get(port, "/v2/health/ready"))[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("kiln serve did not become ready")
            time.sleep(0.25)
        path = "/v1/models/bench:predict"
        asyncio.run(load(port, path, bodies, clients, 200))  # warm-up: traces, thread pools, caches
        before = asyncio.run(get(port, "/metrics"))[1].decode()
        wall, lat, errors = asyncio.run(load(port, path, bodies, clients, n))
        after = asyncio.run(get(port, "/metrics"))[1].decode()
        http_wall, _, _ = asyncio.run(load(port, "/v2/health/ready", bodies, clients, n, method="GET"))  # the HTTP stack alone
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    batches = metric(after, "kiln_batch_size_count") - metric(before, "kiln_batch_size_count")
    images = metric(after, "kiln_batch_size_sum") - metric(before, "kiln_batch_size_sum")
    lat_ms = np.array(lat) * 1000
    return {"mode": name, "requests": n, "errors": errors, "seconds": wall, "throughput": n / wall,
            "p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99)),
            "mean_batch": images / max(batches, 1), "http_only_throughput": n / http_wall}


def model_ceiling(path: Path) -> dict:
    """Per-image model time at batch 1 vs batch 32 (what micro-batching can save, before any HTTP cost)."""
    from kiln.serve.model import load_served

    served = load_served(path)
    x1 = np.zeros((1, *served.shape), np.uint8)
    x32 = np.zeros((32, *served.shape), np.uint8)
    for _ in range(5):
        served.predictor(x1), served.predictor(x32)
    t = time.perf_counter()
    for _ in range(100):
        served.predictor(x1)
    single = (time.perf_counter() - t) / 100
    t = time.perf_counter()
    for _ in range(10):
        served.predictor(x32)
    batched = (time.perf_counter() - t) / 10 / 32
    return {"single_ms": single * 1000, "batched_ms": batched * 1000, "gain": single / batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run or export folder (default: the run bench/export.py trains)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    if args.run:
        run = Path(args.run)
    else:
        from export import bench_run  # bench/export.py

        run = bench_run()
    import pandas as pd

    source = run if (run / "splits.csv").exists() else Path(json.loads((run / "export.json").read_text())["run"])
    splits = pd.read_csv(source / "splits.csv")
    paths = splits[splits["split"] == "test"]["path"].tolist()[:64]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(Path(p).read_bytes()).decode()}]}).encode() for p in paths]

    ceiling = model_ceiling(run)
    results = [bench_mode(run, name, extra, bodies, args.clients, args.requests) for name, extra in MODES.items()]
    print(f"\n{run}: {args.requests} requests (+200 warm-up) from {args.clients} concurrent loopback clients, "
          f"TF Serving REST b64 PNG, 1 image each; {os.cpu_count()} CPU cores shared by server and clients\n")
    print("| batching | throughput req/s | p50 ms | p99 ms | mean batch | errors |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['throughput']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} | {r['errors']} |")
    print(f"\nHTTP stack alone (GET /v2/health/ready, same clients): {results[0]['http_only_throughput']:.0f} req/s; "
          f"model alone, in-process: {ceiling['single_ms']:.2f} ms for 1 image, {ceiling['batched_ms']:.2f} ms per image "
          f"at batch 32: batching can raise throughput by at most {ceiling['gain']:.1f}x when the model is the only cost")
    on, off = results
    ratio = on["throughput"] / off["throughput"]
    print(f"\nthroughput ratio on/off: {ratio:.2f}x (target >= 2x): {'met' if ratio >= 2 else 'NOT met'}; "
          f"p50 {off['p50_ms'] / on['p50_ms']:.2f}x lower, p99 {off['p99_ms'] / on['p99_ms']:.2f}x lower with batching")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": ceiling, "modes": results}, indent=2))


if __name__ == "__main__":
    main()
