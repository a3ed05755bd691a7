"""The table task's own CLI mode (Task.command): `kiln audit FILE target=COL [task=classify|regress]
[out=DIR] [strict=true] [ignore=KIND,..]`, moved here from kiln/cli.py (which knows no task)."""

from __future__ import annotations

import sys

from kiln.cli_options import ignore_kinds, mode_options


def audit(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.tasks.base import get_task
    from kiln.tasks.table.audit import KINDS, strict_failures, summary_lines

    opts = mode_options(pairs, {"out": str, "strict": bool, "ignore": list, "target": str, "task": str}, "audit")
    ignore = ignore_kinds(opts.get("ignore"), KINDS)
    report = get_task("table").audit(words[0], out=opts.get("out"), target=opts.get("target"), task=opts.get("task", "auto"))
    for line in summary_lines(report):
        print(line)
    print(f"kiln: wrote {report['out']}/audit.json and audit.html")
    failures = strict_failures(report, ignore)
    if opts.get("strict") and failures:
        print(f"kiln: strict: {len(failures)} problem(s) found; exit 1", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"audit": audit}
