"""`kiln doctor RUN`: the findings on a run, as text (worst first, each with evidence, rule, source and fix), as JSON
(`[{"kind", "severity", "evidence", "fix", "rule", "source"}]`) or as the head section of report.html.

    from kiln.doctor.findings import doctor
    findings, notes = doctor("runs/train")
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from kiln.doctor.rules import SEVERITY, Finding, diagnose
from kiln.doctor.signals import Signals, load


def notes(s: Signals) -> list[str]:
    """What the findings rest on, in words (fewer checks on a run from before the recorder, a run still training)."""
    out = []
    epochs = len(s.history)
    state = "finished" if s.finished else "still training or stopped before the end"
    if s.diagnostics is not None:
        stopped = s.rows("stopped", None)
        if len(stopped):
            state = {"finished": "finished", "interrupted": "stopped by Ctrl+C", "nonfinite_loss": "stopped by a non-finite loss",
                     "crashed": "stopped by an error"}.get(str(stopped["layer"].iloc[-1]), state)
    out.append(f"{epochs} epochs in history.csv; {state}")
    if s.diagnostics is None:
        out.append("no diagnostics.csv (a run from before the recorder, or doctor=false): history only, so the gradient, "
                   "dead-unit, init-loss and input checks were skipped")
    elif not len(s.rows("grad_norm")):
        out.append("no gradient samples were recorded (see the kiln log): gradient checks skipped")
    else:
        out.append(f"{s.rows('grad_norm')['step'].nunique()} gradient samples in diagnostics.csv")
    return out


def probed(path: Path) -> tuple[list[Finding], str | None]:
    """The findings `kiln doctor RUN probe=true` left in RUN/probes.json, and a note saying when ([], None: none)."""
    from kiln.doctor.probes import FILE
    from kiln.io import read_json

    file = Path(path) / FILE
    if not file.is_file():
        return [], None
    saved = read_json(file, "a Kiln probes.json", fix="Delete it and run kiln doctor RUN probe=true again")
    try:
        found = [Finding(**f) for f in saved["findings"]]
    except (KeyError, TypeError):
        from kiln.errors import bad_file

        raise bad_file(file, "it is not a Kiln probes.json", "Delete it and run kiln doctor RUN probe=true again") from None
    return found, f"{len(found)} probe results from {saved.get('created', '?')} ({FILE}; kiln doctor RUN probe=true reruns them)"


def doctor(path: str | Path) -> tuple[list[Finding], list[str]]:
    s = load(path)
    found, note = probed(s.path)
    findings = sorted(diagnose(s) + found, key=lambda f: SEVERITY[f.severity])
    return findings, notes(s) + ([note] if note else [])


def as_text(path, findings: list[Finding], about: list[str]) -> str:
    lines = [f"kiln doctor: {path} ({'; '.join(about[:1])})"] + [f"  note: {n}" for n in about[1:]]
    serious = [f for f in findings if f.severity != "info"]
    if not serious:
        lines.append("healthy: no rule fired" + (" above information level" if findings else ""))
    for f in findings:
        lines += [f"{f.severity.upper():<8}{f.kind}: {f.evidence}", f"        rule: {f.rule} ({f.source})"]
        lines += [f"        fix: {f.fix}"] if f.fix else []  # a passed probe has nothing to fix
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2)


def summary_lines(path) -> list[str]:
    """The lines printed at the end of `kiln train`: one per finding above information level, or `healthy`."""
    try:
        findings, _ = doctor(path)
    except Exception as err:  # noqa: BLE001 - the run is saved; a doctor problem must not fail the training command
        return [f"kiln: doctor could not read the run ({type(err).__name__}: {err})"]
    serious = [f for f in findings if f.severity != "info"]
    if not serious:
        return [f"kiln: doctor: healthy (no rule fired{' above information level' if findings else ''})"]
    return [f"kiln: doctor: {f.severity} {f.kind}: {f.evidence}. Fix: {f.fix}" for f in serious] + \
        [f"kiln: details: kiln doctor {path}"]


def report_section(run_dir) -> str:
    """The findings as the first section of report.html ('' when the run has no history)."""
    try:
        findings, about = doctor(run_dir)
    except Exception as err:  # noqa: BLE001 - the report still renders, saying why
        return f'<h2 id="doctor">Doctor</h2><p class="muted">Not diagnosed: {html.escape(str(err))}</p>'
    esc = html.escape
    colour = {"error": "bad", "warning": "bad", "info": "muted"}
    rows = "".join(f"<tr><td class='l {colour[f.severity]}'>{esc(f.severity)}</td><td class='l'>{esc(f.kind)}</td>"
                   f"<td class='l'>{esc(f.evidence)}<br><span class='muted'>rule: {esc(f.rule)} ({esc(f.source)})</span></td>"
                   f"<td class='l'>{esc(f.fix)}</td></tr>" for f in findings)
    serious = [f for f in findings if f.severity != "info"]
    head = "<p class='good'>Healthy: no rule fired above information level.</p>" if not serious else ""
    table = (f"<table><tr><th class='l'>severity</th><th class='l'>kind</th><th class='l'>evidence and rule</th>"
             f"<th class='l'>fix</th></tr>{rows}</table>") if rows else ""
    return (f'<h2 id="doctor">Doctor</h2>{head}{table}<p class="muted">{esc("; ".join(about))}. '
            f"<code>kiln doctor {esc(str(run_dir))}</code> prints the same.</p>")


__all__ = ["as_json", "as_text", "doctor", "notes", "probed", "report_section", "summary_lines"]
