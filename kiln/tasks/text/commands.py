"""The text task's own CLI mode (Task.command): `kiln audit DATA [text=COL] [target=COL] [out=DIR]
[strict=true] [ignore=KIND,..] [sequence_length=N] [max_chars=N]`, kept here because kiln/cli.py knows no task."""

from __future__ import annotations

import sys

from kiln.cli_options import ignore_kinds, mode_options


def audit(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.tasks.base import get_task
    from kiln.tasks.text.audit import KINDS, summary_lines

    opts = mode_options(pairs, {"out": str, "strict": bool, "ignore": list, "text": str, "target": str, "label": str, "task": str,
                                "sequence_length": object, "max_chars": int}, "audit")
    ignore = ignore_kinds(opts.pop("ignore", None), KINDS)
    strict = opts.pop("strict", False)
    opts.pop("task", None)
    report = get_task("text").audit(words[0], **opts)
    for line in summary_lines(report):
        print(line)
    print(f"kiln: wrote {report['out']}/audit.json and audit.html")
    failures = [p for p in report["problems"] if p["kind"] not in ignore and p["severity"] != "info"]
    if strict and failures:
        print(f"kiln: strict: {len(failures)} problem(s) found; exit 1", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"audit": audit}
