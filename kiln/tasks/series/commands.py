"""The series task's own CLI mode (Task.command): `kiln audit FILE time=COL target=COL [series=COL]
[time_format=FMT] [out=DIR] [strict=true]`, the timestamp audit; kept here because kiln/cli.py knows no task."""

from __future__ import annotations

import sys

from kiln.cli_options import mode_options


def audit(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.tasks.base import get_task
    from kiln.tasks.series.audit import summary_lines

    opts = mode_options(pairs, {"out": str, "time": str, "target": str, "series": str, "time_format": str, "strict": bool,
                                "horizon": int, "task": str}, "audit")
    report = get_task("series").audit(words[0], out=opts.get("out"), time=opts.get("time"), target=opts.get("target"),
                                      series=opts.get("series"), time_format=opts.get("time_format"))
    for line in summary_lines(report):
        print(line)
    print(f"kiln: wrote {report['out']}/audit.json and audit.html")
    if opts.get("strict") and any(p["severity"] == "error" for p in report["problems"]):
        print("kiln: strict: errors found; exit 1", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"audit": audit}
