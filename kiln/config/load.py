"""Parse `key=value` overrides and config files once, at the edge, into a validated `Config`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from kiln.config.schema import Config, config_model
from kiln.errors import ConfigError, received


def leaf_keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every dotted key of a config model mapped to its field."""
    keys = {}
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.update(leaf_keys(ann, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = field
    return keys


def _shortcuts(model: type[BaseModel]) -> dict[str, str]:
    """Unqualified names that are unique across sections (`epochs` -> `train.epochs`)."""
    counts: dict[str, list[str]] = {}
    for dotted in leaf_keys(model):
        counts.setdefault(dotted.rsplit(".", 1)[-1], []).append(dotted)
    short = {name: paths[0] for name, paths in counts.items() if len(paths) == 1}
    if "data" in model.model_fields and "data.path" in leaf_keys(model):
        short["data"] = "data.path"  # `kiln train data=DIR`
    if "model" in model.model_fields:
        short["model"] = "model.name"  # `kiln train model=cnn`
    return short


def _parse_value(text: str) -> Any:
    """YAML scalars (`true`, `3`, `[32,64]`); a bare `a,b` becomes a list; paths stay strings."""
    if text == "":
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and "," in value and not any(c in value for c in "/\\ "):
        parts = [_parse_value(p) for p in value.split(",") if p != ""]
        return parts
    return value


def parse_overrides(args: Iterable[str], component: str = "kiln") -> dict[str, Any]:
    """`['train.epochs=5', 'data=x']` -> `{'train.epochs': 5, 'data': 'x'}` (keys not yet resolved)."""
    out = {}
    for arg in args:
        if "=" not in arg:
            raise ConfigError(received(component, "argument", arg, "arguments are key=value pairs",
                                       "Example: epochs=20 or data=path/to/images"))
        key, value = arg.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def _task_shared(model: type[BaseModel]) -> dict[str, list[str]]:
    """Bare names held by several task sections only (`target` -> table.target, series.target): a bare
    key sets each of them, and each task reads its own section."""
    from kiln.tasks.base import task_names

    tasks = set(task_names())
    counts: dict[str, list[str]] = {}
    for dotted in leaf_keys(model):
        counts.setdefault(dotted.rsplit(".", 1)[-1], []).append(dotted)
    return {name: paths for name, paths in counts.items()
            if len(paths) > 1 and all(p.split(".", 1)[0] in tasks and "." in p for p in paths)}


def resolve_keys(key: str, model: type[BaseModel], component: str) -> list[str]:
    """Every dotted key `key` sets: one, or each task section's for a name several tasks share."""
    if key not in leaf_keys(model) and key in _task_shared(model):
        return _task_shared(model)[key]
    return [resolve_key(key, model, component)]


def legacy_key(key: str) -> str:
    """Where a key of an older config file lives now (each task's `Task.config_legacy`: `data.image_size` ->
    `image.image_size`, `augment.` -> `image.augment.`); other keys unchanged."""
    from kiln.tasks.base import TASKS, _load

    _load()
    for task in TASKS.values():
        for old, new in task.config_legacy.items():
            if key == old or (old.endswith(".") and key.startswith(old)):
                return new + key[len(old):]
    return key


def resolve_key(key: str, model: type[BaseModel], component: str) -> str:
    keys = leaf_keys(model)
    if key not in keys:
        key = legacy_key(key)
    if key in keys:
        return key
    short = _shortcuts(model)
    if key in short:
        return short[key]
    shared = _task_shared(model)
    if key in shared:
        return shared[key][0]
    candidates = list(keys) + list(short)
    near = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    if not near:
        near = difflib.get_close_matches(key.rsplit(".", 1)[-1], candidates, n=3, cutoff=0.5)
    hint = f"Did you mean {' or '.join(near)}?" if near else "Run `kiln config` to list every key"
    raise ConfigError(f"{component} received unknown key {key}; it is not a config key. {hint}")


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config received {dotted}; {part} is not a section. Use {part}.KEY=value")
    node[parts[-1]] = value


def mapping_keys(model: type[BaseModel] | None = None) -> set[str]:
    """Keys whose value is itself a mapping (`tune.space`), by dotted name and by unique shortcut."""
    model = config_model() if model is None else model
    keys = {k for k, f in leaf_keys(model).items() if getattr(f.annotation, "__origin__", None) is dict}
    return keys | {short for short, dotted in _shortcuts(model).items() if dotted in keys}


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    flat = {}
    keep = mapping_keys()
    for key, value in tree.items():
        if isinstance(value, Mapping) and f"{prefix}{key}" not in keep:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def build(model: type[BaseModel], values: Mapping[str, Any], component: str = "config") -> BaseModel:
    """Validate flat or dotted values against `model`; the first problem becomes one-line ConfigError."""
    tree: dict = {}
    for key, value in values.items():
        for dotted in resolve_keys(key, model, component):
            _set_dotted(tree, dotted, value)
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_explain(err, model, values, component)) from None


def _explain(err: ValidationError, model: type[BaseModel], values: Mapping[str, Any], component: str) -> str:
    errors = err.errors()
    first = errors[0]
    others = [e for e in errors[1:] if e["loc"][:-1] == first["loc"][:-1] and e["type"] != "literal_error"]
    if first["type"] == "literal_error" and others:  # an `auto`-or-value key (epochs, patience, translation, ...)
        if isinstance(first.get("input"), str):  # neither auto nor a value: say both
            why = others[0]["msg"].removeprefix("Input should be ").split(",")[0]
            first = {**first, "msg": f"{first['msg']} or {why}"}
        else:  # a value out of range: told by the value's own rule
            first = others[0]
    loc = ".".join(str(p) for p in first["loc"] if not isinstance(p, int))
    keys = leaf_keys(model)
    # Pydantic reports union members as extra loc parts; keep the longest real key prefix.
    while loc and loc not in keys and "." in loc:
        loc = loc.rsplit(".", 1)[0]
    flat = {resolve_key(k, model, component): v for k, v in values.items()}
    msg = first["msg"].removeprefix("Value error, ")
    if "|" in msg:  # section validators name their key: "key|why"
        key, msg = msg.split("|", 1)
        loc = f"{loc}.{key}" if loc else key
    value = flat.get(loc, "<unset>")
    field = keys.get(loc)
    if field is not None:
        default = field.get_default(call_default_factory=True)
        fix = f"Example: {loc}={_show(default)} ({field.description})"
    else:
        fix = "See `kiln config` for valid keys and values"
    return received(component, loc or "config", _show(value), msg, fix)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def load_config(file: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = (),
                base: Mapping[str, Any] | None = None) -> Config:
    """Config from (base dict) <- (YAML file) <- (overrides); validated once."""
    values: dict[str, Any] = {}
    if base:
        values.update(_flatten(base))
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(received("config", "--config", file, "no such file", "Pass the path of a YAML config"))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(received("config", "--config", file, f"it is not valid YAML ({str(err).splitlines()[0]})",
                                       "Fix the YAML syntax")) from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(received("config", "--config", file, "the file is not a mapping of keys", "Write key: value lines"))
        values.update(_flatten(loaded))
    if isinstance(overrides, Mapping):
        values.update(overrides)
    else:
        values.update(parse_overrides(overrides))
    return build(config_model(), values)


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
