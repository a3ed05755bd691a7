"""The spine knows no task (DESIGN.md rule 1): no task name as a string, no import of a task's module (kiln.tasks.image...
and the like; the contract's kiln.tasks.base / types / models and the shared kiln.tasks.common are allowed) and no
isinstance on a class a task defines, in train/, export/, serve/, the report renderer, config/, the CLI, the Python
API, run.py, runs.py, io.py and inspect*.py. And no task package imports another task's package: what two tasks
share lives in kiln/tasks/common."""

from __future__ import annotations

import ast
import functools
import io
import tokenize
from pathlib import Path

from kiln.tasks.base import TASKS, _load

KILN = Path(__file__).resolve().parents[2] / "kiln"
SPINE = [*sorted((KILN / "train").rglob("*.py")), *sorted((KILN / "export").rglob("*.py")),
         *sorted((KILN / "serve").rglob("*.py")), *sorted((KILN / "doctor").rglob("*.py")), KILN / "evaluate" / "report.py",
         *sorted((KILN / "config").rglob("*.py")),
         *sorted(KILN.glob("cli*.py")), KILN / "api.py", KILN / "run.py", KILN / "runs.py", KILN / "io.py",
         *sorted(KILN.glob("inspect*.py"))]
CONTRACT = ("base", "types", "models", "common")  # kiln.tasks.<these> are the contract and the shared code, not a task

# Spine lines that still know a task, each with the work that removes it. The test below fails when an entry is no
# longer needed, so this list only shrinks; never add to it to make a new leak pass.
ALLOWED: set = set()  # empty: config by task and kiln demo's dispatch through the task removed the last ones


@functools.cache
def _task_names() -> frozenset[str]:
    _load()
    return frozenset(n for t in TASKS.values() for n in (t.info.name, *t.info.aliases))


def _task_packages() -> set[str]:
    """The folders under kiln/tasks that hold a task (every package but the shared one)."""
    return {p.parent.name for p in (KILN / "tasks").glob("*/__init__.py")} - set(CONTRACT)


@functools.cache
def _task_classes() -> frozenset[str]:
    """Classes a task's own package defines (not the contract's, not the shared package's)."""
    names = set()
    for package in _task_packages():
        for path in (KILN / "tasks" / package).rglob("*.py"):
            names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}
    return frozenset(names)


def _strings(path: Path) -> list[tuple[int, str]]:
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type == tokenize.STRING:
            try:
                out.append((tok.start[0], str(ast.literal_eval(tok.string))))
            except (ValueError, SyntaxError):  # f-strings: check their text as written
                out.append((tok.start[0], tok.string))
    return out


def _homonyms(path: Path) -> set[int]:
    """Lines of kiln/cli_options.py's TEXT_TABLE = "table" (format=table, a text layout): the one spelling of a task's
    word the spine may hold, because it does not mean the task."""
    if path.name != "cli_options.py":
        return set()
    return {n.lineno for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Assign)
            and [getattr(t, "id", None) for t in n.targets] == ["TEXT_TABLE"]}


def _imported(tree: ast.AST, package: str = "") -> list[tuple[int, str]]:
    """(line, dotted module) of every import, `from kiln.tasks import image` read as kiln.tasks.image and relative
    imports resolved against `package`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if base == "kiln.tasks"]
    return out


def _task_module(module: str) -> str | None:
    """The task package `module` belongs to (kiln.tasks.image.data -> image), None for the contract and shared code."""
    parts = module.split(".")
    if len(parts) >= 3 and parts[:2] == ["kiln", "tasks"] and parts[2] not in CONTRACT and all(p.isidentifier() for p in parts):
        return parts[2]
    return None


def leaks(path: Path, root: Path = KILN) -> list[str]:
    """Every way `path` knows a task: a string equal to a task's name or alias, a string naming a task's module
    (importlib), an import of a task's module, an isinstance on a task's class."""
    names, classes = _task_names(), _task_classes()
    rel = path.relative_to(root).as_posix()
    skip = _homonyms(path)
    found = [f"{rel}:{line}: {text!r}" for line, text in _strings(path)
             if line not in skip and (text.strip().strip("'\"").lower() in names or _task_module(text.strip()) is not None)]
    tree = ast.parse(path.read_text())
    package = ".".join(["kiln", *path.relative_to(root).parts[:-1]]) if root == KILN else "kiln"
    found += [f"{rel}: import {m}" for _, m in _imported(tree, package) if _task_module(m) is not None]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} | \
                    {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            found += [f"{rel}:{node.lineno}: isinstance(..., {c})" for c in named & classes]
    return found


def _allowed(leak: str) -> bool:
    rel, _, what = leak.partition(": ")
    return (rel, what) in ALLOWED


def test_spine_knows_no_task():
    found = [leak for path in SPINE for leak in leaks(path) if not _allowed(leak)]
    assert not found, found


def test_allow_list_only_shrinks():
    """Each ALLOWED entry is still a leak; when the work that removes it lands, the entry must go too."""
    found = {leak for path in SPINE for leak in leaks(path)}
    stale = [entry for entry in ALLOWED if f"{entry[0]}: {entry[1]}" not in found]
    assert not stale, f"no longer needed, remove from ALLOWED: {stale}"


def cross_task_imports(tasks_dir: Path, package: str = "kiln.tasks") -> list[str]:
    """Imports of one task's package from inside another's (or from the shared package)."""
    found = []
    for folder in sorted(p.parent for p in tasks_dir.glob("*/__init__.py")):
        for path in sorted(folder.rglob("*.py")):
            module = ".".join([package, *path.relative_to(tasks_dir).with_suffix("").parts])
            owner = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            for line, imported in _imported(ast.parse(path.read_text()), owner):
                other = _task_module(imported)
                if other is not None and other != folder.name:
                    found.append(f"{path.relative_to(tasks_dir).as_posix()}:{line}: import {imported}")
    return found


# Cross-task imports still to move into kiln/tasks/common (the anomaly task, merged last, reuses the table preparation,
# the series readers and the image suffixes by importing them). The list only shrinks: a stale entry fails the test.
CROSS_DEBT = {("anomaly", "kiln.tasks.image.data.sources"), ("anomaly", "kiln.tasks.series.audit"),
              ("anomaly", "kiln.tasks.series.source"), ("anomaly", "kiln.tasks.table.adapter"),
              ("anomaly", "kiln.tasks.table.features"), ("anomaly", "kiln.tasks.table.prepare"),
              ("anomaly", "kiln.tasks.table.spec")}


def test_no_task_imports_another_task():
    assert _task_packages() >= {"image"}  # the check walks real task folders
    found = {(f.split("/")[0], f.split("import ")[1]) for f in cross_task_imports(KILN / "tasks")}
    assert found <= CROSS_DEBT, sorted(found - CROSS_DEBT)
    assert not CROSS_DEBT - found, f"no longer imported, remove from CROSS_DEBT: {sorted(CROSS_DEBT - found)}"


def test_the_checks_catch_leaks(tmp_path):
    """Not vacuous: each kind of leak is found in a file written to hold it, and the format homonym is found anywhere
    but its one declaration."""
    name = sorted(_task_names())[0]
    spine = tmp_path / "kiln"
    spine.mkdir()
    cases = {
        "name.py": f"if task == {name!r}:\n    pass\n",
        "alias.py": "TASK = 'Forecast'\n" if "forecast" in _task_names() else f"TASK = {name.upper()!r}\n",
        "direct.py": "from kiln.tasks.image.models import create_model\n",
        "package.py": "from kiln.tasks import text\n",
        "plain.py": "import kiln.tasks.series.windows\n",
        "dynamic.py": "import importlib\nimportlib.import_module('kiln.tasks.table.adapter')\n",
        "isinstance.py": "from kiln.tasks.base import Task\ndef f(m):\n    return isinstance(m, ImageAdapter)\n",
        "cli_options.py": "TABLE = 'table'\n",
    }
    for file, text in cases.items():
        (spine / file).write_text(text)
        assert leaks(spine / file, tmp_path), file
    clean = spine / "clean.py"
    clean.write_text("from kiln.tasks.base import get_task\nfrom kiln.tasks.common.parity import agreement\n"
                     "TEXT_TABLE = 'table'\nx = 'an image of a table'\n")
    (spine / "cli_options.py").write_text("TEXT_TABLE = 'table'\n")
    assert leaks(spine / "cli_options.py", tmp_path) == []
    assert leaks(clean, tmp_path) == ["kiln/clean.py:3: 'table'"]  # TEXT_TABLE is exempt in cli_options.py only


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
def test_cross_task_check_catches_a_leak(tmp_path):
    tasks = tmp_path / "tasks"
    for folder, text in {"alpha": "from kiln.tasks.beta.source import read\n", "beta": "from ..alpha import thing\n",
                         "gamma": "from kiln.tasks.common.tabular import read_table\nfrom . import own\n",
                         "common": "from kiln.tasks.alpha import x\n"}.items():
        (tasks / folder).mkdir(parents=True)
        (tasks / folder / "__init__.py").write_text("")
        (tasks / folder / "mod.py").write_text(text)
    found = cross_task_imports(tasks)
    assert any(f.startswith("alpha/mod.py") and "kiln.tasks.beta.source" in f for f in found), found
    assert any(f.startswith("beta/mod.py") and "kiln.tasks.alpha" in f for f in found), found
    assert not any(f.startswith("gamma/") for f in found), found
    assert any(f.startswith("common/") for f in found), found  # the shared package imports no task either
