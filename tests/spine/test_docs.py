"""The docs cannot promise what the code does not do.

Every `kiln ...` command in README.md and docs/*.md runs through the real CLI (`kiln.cli.main`) up to the
point where it would start work (train, load a run, read data): its mode, options and config keys must resolve.
A documented error (`$ kiln ...` followed by the line it prints) must print exactly that line. The site builds
with its internal links and anchors checked (`mkdocs build --strict`).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROMPT = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?kiln (?P<args>[a-z-]+(?: .*)?)$")  # `kiln doctor: ...` is output


class Reached(BaseException):
    """Raised where a command would start its work: everything before it (parsing, validation) passed."""


def _commands():
    """(page, line number, argv, expected error line or None) for each `kiln` command in a code block."""
    found = []
    for page in PAGES:
        if page.is_symlink():
            continue
        lines = page.read_text().splitlines()
        in_code = prompted = False
        for i, line in enumerate(lines):
            if line.startswith("```"):
                in_code = not in_code
                prompted = in_code and any(x.startswith("$ ") for x in lines[i + 1:lines.index("```", i + 1)])
                continue
            if not in_code or (prompted and not line.startswith("$ ")):  # after a prompt, the other lines are output
                continue
            m = PROMPT.match(line.strip())
            if not m:
                continue
            args = m.group("args").split("  #")[0].split(" # ")[0].strip()
            args = args.split(" | ")[0].split(" && ")[0].split(" & ")[0].strip()
            try:
                argv = shlex.split(args)
            except ValueError:
                continue
            expected = None
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if line.startswith("$ ") and " received " in nxt and not nxt.startswith("$"):
                expected = nxt
            found.append(pytest.param(argv, expected, id=f"{page.name}:{i + 1}"))
    return found


def _stop(*_args, **_kwargs):
    raise Reached()


@pytest.fixture
def stopped(monkeypatch):
    """Every place a mode starts real work raises Reached instead."""
    import kiln.api
    import kiln.demo
    import kiln.evaluate.report
    import kiln.export.export
    import kiln.inspect
    import kiln.run
    import kiln.runs
    import kiln.serve.app
    import kiln.tasks.base
    import kiln.tasks.image.label_issues
    import kiln.train.lr_find
    import kiln.train.trainer
    import kiln.train.tune

    for module, name in [(kiln.train.trainer, "train"), (kiln.run, "load_run"), (kiln.export.export, "export_run"),
                         (kiln.serve.app, "serve"), (kiln.demo, "demo"), (kiln.train.lr_find, "lr_find"),
                         (kiln.train.tune, "tune"), (kiln.api, "augment_preview"), (kiln.evaluate.report, "write_report"),
                         (kiln.runs, "list_runs"), (kiln.runs, "compare_runs"), (kiln.inspect, "inspect_model"),
                         (kiln.tasks.image.label_issues, "find_label_issues")]:
        monkeypatch.setattr(module, name, _stop)
    monkeypatch.setattr(kiln.tasks.base.Task, "command", lambda self, name: _stop)


@pytest.mark.parametrize("argv,expected", _commands())
def test_documented_command_resolves(argv, expected, stopped, capsys, tmp_path, monkeypatch):
    from kiln.cli import main

    if "--config" in argv:  # the YAML file a page shows is the user's own: an empty one stands in for it
        empty = tmp_path / "config.yaml"
        empty.write_text("{}\n")
        argv = [str(empty) if i and argv[i - 1] == "--config" else a for i, a in enumerate(argv)]
    monkeypatch.chdir(tmp_path)

    try:
        code = main(argv)
    except Reached:
        code = None
    err = capsys.readouterr().err.strip()
    if expected and code is None:  # the documented error is about the user's own files, which are not here
        return
    if code == 2 and len(argv) > 1 and re.search(
            rf"received (data|MANIFEST|DIR|RUN)={re.escape(argv[-1] if argv[1] in ('restore', 'verify') else argv[1])};", err):
        return  # the mode and its task resolved; what remains is the user's own dataset, which is not here
    if expected:
        assert err.splitlines()[-1:] == [expected], f"kiln {' '.join(argv)} printed {err!r}"
        assert code == 2
    else:
        assert code in (None, 0), f"kiln {' '.join(argv)} failed ({code}): {err}"


def test_docs_commands_were_found():
    assert len(_commands()) >= 60  # the extraction itself cannot silently find nothing


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None, reason="mkdocs not installed")
def test_site_builds_with_links_checked(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    out = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "site" / "tables" / "index.html").exists()
