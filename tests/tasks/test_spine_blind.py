"""The spine knows no task: no task name as a string, no import of a task's package, and no isinstance
on a class a task defines, in kiln/train, kiln/export, kiln/serve and the report renderer (DESIGN.md rule 1)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

from kiln.tasks.base import TASKS, _load

KILN = Path(__file__).resolve().parents[2] / "kiln"
SPINE = [*sorted((KILN / "train").rglob("*.py")), *sorted((KILN / "export").rglob("*.py")),
         *sorted((KILN / "serve").rglob("*.py")), *sorted((KILN / "doctor").rglob("*.py")), KILN / "evaluate" / "report.py"]


def _task_names() -> set[str]:
    _load()
    return {n for t in TASKS.values() for n in (t.info.name, *t.info.aliases)}


def _task_classes() -> set[str]:
    names = set()
    for path in (KILN / "tasks").rglob("*.py"):
        if path.name != "base.py":
            names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}
    return names


def _strings(path: Path) -> list[tuple[int, str]]:
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.STRING:
            try:
                out.append((tok.start[0], str(ast.literal_eval(tok.string))))
            except (ValueError, SyntaxError):  # f-strings: check their text as written
                out.append((tok.start[0], tok.string))
    return out


def test_no_task_name_in_spine_strings():
    names = _task_names()
    found = [f"{p.relative_to(KILN)}:{line}: {text!r}" for p in SPINE for line, text in _strings(p)
             if text.strip().strip("'\"").lower() in names]
    assert not found, found


def test_no_task_package_import_in_spine():
    found = []
    for path in SPINE:
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(KILN)}:{node.lineno}: {m}" for m in mods
                      if m.startswith("kiln.tasks.") and m != "kiln.tasks.base"]
    assert not found, found


def test_no_isinstance_on_task_classes_in_spine():
    classes = _task_classes()
    found = []
    for path in SPINE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} | \
                        {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                found += [f"{path.relative_to(KILN)}:{node.lineno}: isinstance(..., {c})" for c in named & classes]
    assert not found, found


def test_the_check_catches_a_leak(tmp_path):
    """The string check is not vacuous: a spine line naming a task is found."""
    leak = tmp_path / "leak.py"
    name = sorted(_task_names())[0]
    leak.write_text(f"if task == {name!r}:\n    pass\n")
    assert any(text == name for _, text in _strings(leak))


CLI = KILN / "cli.py"
BLIND_COMMANDS = ("audit", "models", "convert", "export_cmd", "serve", "demo", "_data_task", "_file_task")  # and module-level code


def _cli_parts() -> list[ast.AST]:
    tree = ast.parse(CLI.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(BLIND_COMMANDS) <= set(funcs), set(BLIND_COMMANDS) - set(funcs)
    top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return [funcs[name] for name in BLIND_COMMANDS] + top


def _cli_leaks(part: ast.AST, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(part):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip().lower() in names:
            found.append(f"cli.py:{node.lineno}: {node.value!r}")
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"cli.py:{node.lineno}: import {m}" for m in mods if m.startswith("kiln.tasks.") and m != "kiln.tasks.base"]
    return found


def test_cli_commands_know_no_task():
    """kiln audit / models / convert / export / serve / demo dispatch through the registered tasks: no task name, no task folder."""
    names = _task_names()
    found = [leak for part in _cli_parts() for leak in _cli_leaks(part, names)]
    assert not found, found


def test_cli_check_catches_a_leak():
    """The CLI check is not vacuous: a command importing a task's folder, or naming a task, is found."""
    names = _task_names()
    name = sorted(names)[0]
    leak = ast.parse(f"def demo():\n    from kiln.tasks.{name}.demo import demo\n    return demo({name!r})\n")
    assert len(_cli_leaks(leak, names)) == 2
