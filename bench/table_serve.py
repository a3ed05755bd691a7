"""`kiln serve` of a table run under load on loopback: micro-batching on vs off (batch-1), as a ratio.

    .venv/bin/python bench/table_serve.py [--rows 20000] [--clients 32] [--requests 3000] [--rounds 2] [--run RUN_DIR]

The model: Kiln's table defaults (model=auto -> resnet_plr, its preprocessing inside: imputation,
scaling, vocabularies, date parts) trained for 3 epochs on bench/tables.py's generated table of 20
numbers (5% missing), 8 categories and one date column (`--rows` rows); the weights do not change
the work per row, which is all this measures. `--run`: any table run or export folder instead (an anomaly run of
a table too: its rows are served the same way and answered with a score and a flag).

Starts `kiln serve RUN` in its own process (bench/serve.py's harness), batching on (max_batch_size=32,
max_delay_ms=2) and off (max_batch_size=1: one decode and one model call per request, same code),
alternating on/off for --rounds rounds. Each time --clients concurrent keep-alive connections send
--requests TF Serving REST calls `POST /v1/models/NAME:predict {"instances": [ROW]}` of one raw test
row each (JSON values as a user sends them: numbers, category text, date text; 64 rows cycled), after
a warm-up of 200. Reports rows/s, p50/p99 latency and the mean micro-batch from /metrics. The issue's
target: batching >= 3x the rows/s of batch-1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kiln.tasks.table.adapter import _number  # noqa: E402  (the adapter's own test of a number cell)
from serve import alternate, print_rounds  # noqa: E402  (bench/serve.py)

TARGET = 3.0


def table_run(root: Path, rows: int) -> Path:
    """Train (once; reused after) a defaults table run on the generated table."""
    from tables import large_table  # bench/tables.py

    run = root / f"table-serve-{rows}"
    if (run / "metrics.json").is_file():
        return run
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"table-{rows}.csv"
    large_table(rows).to_csv(data, index=False)
    from kiln.config import load_config
    from kiln.train.trainer import train

    train(load_config(None, [f"data={data}", "target=label", f"run_dir={run}", "epochs=3", "verbose=0", "tensorboard=false",
                             "importance=false", "baselines=false", "evaluate.report=false"]))
    return run


def bodies_of(run: Path) -> list[bytes]:
    import pandas as pd

    source = run if (run / "splits.csv").exists() else Path(json.loads((run / "export.json").read_text())["run"])
    meta = json.loads((source / "run.json").read_text())
    frame = pd.read_csv(meta["source"]["path"], dtype=str, keep_default_na=False)
    splits = pd.read_csv(source / "splits.csv")
    target = (meta.get("table") or {}).get("target") or (meta.get("anomaly") or {}).get("label")  # a table or an anomaly run
    test = frame.iloc[splits[splits["split"] == "test"]["row"].to_numpy()[:64]].drop(columns=[c for c in (target,) if c in frame.columns])
    out = []
    for row in test.to_dict(orient="records"):
        row = {k: (float(v) if _number(v) else (None if v == "" else v)) for k, v in row.items()}
        out.append(json.dumps({"instances": [row]}).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a table run or export folder to serve instead of the generated one")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the generated table (80%% train)")
    parser.add_argument("--root", default="runs/bench", help="where the generated table and its run are kept")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    run = Path(args.run) if args.run else table_run(Path(args.root), args.rows)
    bodies = bodies_of(run)
    rounds = alternate(run, bodies, args.clients, args.requests, args.rounds)
    print(f"\n{run}: {args.requests} requests (+200 warm-up) from {args.clients} concurrent loopback clients, TF Serving REST, "
          f"1 raw row each; {os.cpu_count()} CPU cores shared by server and clients\n")
    print_rounds(rounds, "rows/s")
    ratios = [on["throughput"] / off["throughput"] for on, off in rounds]
    for k, ratio in enumerate(ratios, 1):
        print(f"round {k}: rows/s ratio on/off {ratio:.2f}x (target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "rounds": rounds, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
