"""The image task's own CLI modes (Task.command): `kiln audit` with its limits and fix=quarantine, `kiln audit
restore`, `kiln convert` into TFRecord shards, `kiln convert verify` and `kiln label-issues RUN` (moved here from
kiln/cli.py, which knows no task). Each returns the exit code."""

from __future__ import annotations

import sys

from kiln.cli_options import ignore_kinds, mode_options
from kiln.errors import ConfigError, received


def audit(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.config.load import build
    from kiln.tasks.image.data import audit as auditing

    limits = set(auditing.AuditOptions.model_fields)
    own = {"out": str, "strict": bool, "fix": str, "ignore": list}
    opts = mode_options([p for p in pairs if p.split("=", 1)[0] not in limits], own, "audit")
    options = build(auditing.AuditOptions, mode_options([p for p in pairs if p.split("=", 1)[0] in limits],
                                                        dict.fromkeys(limits, object), "audit"), "audit")
    strict = opts.get("strict", False)
    if not isinstance(strict, bool):
        raise ConfigError(received("audit", "strict", strict, "it must be true or false", "Example: strict=true"))
    if opts.get("fix") not in (None, "quarantine"):
        raise ConfigError(received("audit", "fix", opts["fix"], "the only fix is quarantine (move problem files aside)", "Example: fix=quarantine"))
    ignore = ignore_kinds(opts.get("ignore"), auditing.KINDS)
    report = auditing.audit(words[0], out=opts.get("out"), options=options)
    for line in auditing.summary_lines(report):
        print(line)
    if opts.get("fix") == "quarantine" and report["quarantine"]:
        from kiln.tasks.image.data.quarantine import quarantine

        manifest = quarantine(report)
        print(f"kiln: moved {len(report['quarantine'])} file(s) to {manifest.parent}; undo with kiln audit restore {manifest}")
    failures = auditing.strict_failures(report, ignore)
    if strict and failures:
        print(f"kiln: strict: {len(failures)} problem(s) found; exit 1", file=sys.stderr)
        return 1
    return 0


def audit_restore(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.tasks.image.data.quarantine import restore

    mode_options(pairs, {}, "audit restore")
    print(f"kiln: restored {restore(words[0])} file(s) to where they were")
    return 0


def convert(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.config import load_config
    from kiln.tasks.image.data import records

    own = {"out": str, "shard_mb": int, "shard_images": int, "workers": int}
    opts = mode_options([p for p in pairs if p.split("=", 1)[0] in own], own, "convert")
    if not opts.get("out"):
        raise ConfigError(received("convert", "out", "<unset>", "the shard folder is required", "Example: kiln convert data/images out=data/shards"))
    cfg = load_config(config, [p for p in pairs if p.split("=", 1)[0] not in own])
    manifest = records.convert(words[0], opts.pop("out"), cfg, **opts)
    if manifest["up_to_date"]:
        print(f"kiln: {manifest['images']:,} images already converted and unchanged; nothing to do")
    else:
        counts = ", ".join(f"{s} {sum(c.values()):,}" for s, c in manifest["counts"].items())
        print(f"kiln: wrote {len(manifest['shards'])} shard(s), {manifest['bytes'] / 2**20:,.1f} MiB ({counts}); "
              f"{manifest['skipped']} file(s) left out")
    return 0


def convert_verify(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.tasks.image.data import records

    mode_options(pairs, {}, "convert verify")
    problems = records.verify(words[0])
    for line in problems:
        print(f"kiln: {line}", file=sys.stderr)
    if problems:
        print(f"kiln: {len(problems)} shard(s) failed verification; convert again", file=sys.stderr)
        return 1
    manifest = records.read_manifest(words[0], "convert verify")
    print(f"kiln: all {len(manifest['shards'])} shard(s) match their sha256 ({manifest['images']:,} images)")
    return 0


def label_issues(words: list[str], pairs: list[str], config=None) -> int:
    from kiln.run import load_run
    from kiln.tasks.image.label_issues import find_label_issues

    opts = mode_options(pairs, {"method": str, "folds": int, "epochs": int, "batch_size": int, "top": int}, "label-issues")
    top = opts.pop("top", 20)
    table = find_label_issues(load_run(words[0]), **opts)
    issues = table[table["is_issue"]].head(top)
    if len(issues):
        print(issues[["rank", "path", "label", "suggested", "label_quality"]].to_string(index=False))
    return 0


COMMANDS = {"audit": audit, "audit restore": audit_restore, "convert": convert, "convert verify": convert_verify,
            "label-issues": label_issues}
