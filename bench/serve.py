"""`kiln serve` under bounded load on loopback: micro-batching on vs off, as a ratio.

    .venv/bin/python bench/serve.py [--model mobilenet_v3_small|cnn] [--run RUN_DIR] [--clients 32]
                                    [--requests 3000] [--rounds 2]

The model (one run folder, served by both modes):
- `mobilenet_v3_small` (default): Kiln's MobileNetV3-Small backbone, weights=none, 96x96 RGB, 8
  classes, 943,736 parameters: the kind of model people serve on a CPU. Trained here once (~1 min,
  reused after) for 3 epochs on 1,200 generated 96x96 PNGs (bench/export.py's ambiguous shapes).
  Train accuracy reaches 0.93 but test accuracy stays at chance (0.13): from scratch, 75 steps do
  not settle the backbone's BatchNorm moving statistics (momentum 0.999), so inference predictions
  are nearly constant. The weights do not change the work per image (dense float convolutions), which
  is all this benchmark measures.
- `cnn`: bench/export.py's run (cnn 32/64/128 filters, 111,848 parameters, 64x64, test accuracy
  0.94): so small that each request's HTTP, JSON and decode cost about as much as its model share.
- `--run`: any run or export folder.

Starts `kiln serve RUN` in its own process, batching on (max_batch_size=32, max_delay_ms=2) and off
(max_batch_size=1: one decode call and one model call per request, through the same code), alternating
on/off for --rounds rounds. Each time, --clients concurrent keep-alive connections (one asyncio event
loop, raw HTTP/1.1) send --requests TF Serving REST calls
`POST /v1/models/NAME:predict {"instances": [{"b64": <PNG>}]}` of one test-split image each (64
different files, cycled), after a warm-up of 200. Every request is decoded and classified: no
response is cached. Reports throughput, p50/p99 latency and the mean micro-batch size from /metrics,
and for scale: the HTTP stack alone (GET /v2/health/ready under the same load) and the model alone
(in-process, batch 1 vs batch 32). Only 127.0.0.1 is used.
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


def alternate(run: Path, bodies: list[bytes], clients: int, requests: int, rounds: int) -> list[list[dict]]:
    """[[on, off], ...]: on/off, then off/on, so drift in the machine's load hits both modes alike."""
    out = []
    for k in range(rounds):
        order = list(MODES.items()) if k % 2 == 0 else list(MODES.items())[::-1]
        done = {name: bench_mode(run, name, extra, bodies, clients, requests) for name, extra in order}
        out.append([done["on"], done["off"]])
    return out


def print_rounds(rounds: list[list[dict]], unit: str) -> None:
    print(f"| round | batching | {unit} | p50 ms | p99 ms | mean batch | errors | HTTP-only req/s |")
    print("|---|---|---|---|---|---|---|---|")
    for k, pair in enumerate(rounds, 1):
        for r in pair:
            print(f"| {k} | {r['mode']} | {r['throughput']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                  f"{r['mean_batch']:.1f} | {r['errors']} | {r['http_only_throughput']:.0f} |")


def model_ceiling(path: Path) -> dict:
    """Per-image model time at batch 1 vs batch 32 (what micro-batching can save, before any HTTP cost)."""
    from kiln.serve.model import load_served

    served = load_served(path)
    x1 = np.zeros((1, *served.spec.shape), np.uint8)
    x32 = np.zeros((32, *served.spec.shape), np.uint8)
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


SERVE_DATA = ROOT / "bench" / "_data" / "serve"


def serve_run(epochs: int = 3) -> Path:
    """The default served model: mobilenet_v3_small (weights=none) at 96 px, trained once, reused after."""
    import kiln
    from export import noisy_folder  # bench/export.py

    run_dir = SERVE_DATA / "mobilenet_v3_small_96"
    if (run_dir / "model.keras").exists():
        return run_dir
    data = noisy_folder(SERVE_DATA / "images_96", per_class=150, size=96)
    print(f"training the served model in {run_dir} ...", flush=True)
    kiln.train(data=str(data), run_dir=str(run_dir), epochs=epochs, seed=0, image_size=96, val_split=0.1,
               test_split=0.25, model={"name": "mobilenet_v3_small", "weights": "none"},
               train={"verbose": 0, "tensorboard": False, "patience": 0})
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mobilenet_v3_small", "cnn"], default="mobilenet_v3_small",
                        help="the benchmark's own run to serve (see above); ignored with --run")
    parser.add_argument("--run", help="a run or export folder to serve instead")
    parser.add_argument("--rounds", type=int, default=2, help="on/off measurements, alternating the order")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).parent))
    if args.run:
        run = Path(args.run)
    elif args.model == "cnn":
        from export import bench_run  # bench/export.py

        run = bench_run()
    else:
        run = serve_run()
    import pandas as pd

    source = run if (run / "splits.csv").exists() else Path(json.loads((run / "export.json").read_text())["run"])
    splits = pd.read_csv(source / "splits.csv")
    paths = splits[splits["split"] == "test"]["path"].tolist()[:64]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(Path(p).read_bytes()).decode()}]}).encode() for p in paths]

    ceiling = model_ceiling(run)
    rounds = alternate(run, bodies, args.clients, args.requests, args.rounds)
    metrics = source / "metrics.json"
    accuracy = json.loads(metrics.read_text()).get("test", {}).get("accuracy") if metrics.exists() else None
    print(f"\n{run} (test accuracy {accuracy if accuracy is None else round(accuracy, 4)}): {args.requests} requests (+200 warm-up) from {args.clients} concurrent loopback clients, "
          f"TF Serving REST b64 PNG, 1 image each; {os.cpu_count()} CPU cores shared by server and clients\n")
    print_rounds(rounds, "throughput req/s")
    print(f"\nmodel alone, in-process: {ceiling['single_ms']:.2f} ms for 1 image, {ceiling['batched_ms']:.2f} ms per image "
          f"at batch 32 ({ceiling['gain']:.1f}x); HTTP-only: GET /v2/health/ready under the same load")
    ratios = [on["throughput"] / off["throughput"] for on, off in rounds]
    for k, ((on, off), ratio) in enumerate(zip(rounds, ratios), 1):
        print(f"round {k}: throughput ratio on/off {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'NOT met'}); "
              f"p50 {off['p50_ms'] / on['p50_ms']:.2f}x lower, p99 {off['p99_ms'] / on['p99_ms']:.2f}x lower with batching")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "model": ceiling, "rounds": rounds, "ratios": ratios}, indent=2))

if __name__ == "__main__":
    main()
