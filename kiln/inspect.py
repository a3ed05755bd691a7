"""`kiln inspect MODEL|RUN_DIR|FILE.keras [task=NAME] [input_shape=H,W,C] [format=table|json]`: what each layer costs.

MODEL is a registered model of any task (`kiln models`), built by its task (`Task.inspect_model`): for `input_shape` and
`classes` where the task's models take them, else for the task's own example data, as a run of that task builds it.

Per layer: output shape, parameters (trainable and not), multiply-accumulates (MACs), and along
convolution / pooling paths the receptive field and cumulative stride. Nested models (a "backbone")
are walked layer by layer; their rows are named `backbone/<layer>`.

Textbook formulas (per spatial axis; k_eff = d*(k-1)+1 for dilation d):
  output size      valid: floor((n - k_eff) / s) + 1      same: ceil(n / s)
  Conv             params (kh*kw*cin/groups + 1)*cout     MACs H'*W'*cout*kh*kw*cin/groups
  DepthwiseConv    params (kh*kw + 1)*cin*m               MACs H'*W'*cin*m*kh*kw
  SeparableConv    depthwise + pointwise (cin*m*cout)     MACs depthwise + H'*W'*cin*m*cout
  Dense            params (in + 1)*out                    MACs positions*in*out
  BatchNorm        4*C params (gamma, beta trainable; moving mean/var not)
  MultiHeadAttn    q/k/v/out projections + QK^T + attention*V
  pooling, activations, add, reshape: 0 params, 0 MACs
  receptive field  r_out = r_in + (k_eff - 1)*j_in,   cumulative stride j_out = j_in*s
Conventions: a MAC is one multiply plus one add; bias additions, BatchNorm (folded into the conv at
inference), activations, pooling, element-wise products (squeeze-excitation gates, layer scale)
and softmax count 0. Receptive fields follow the convolution / pooling path: global branches
(global pooling, squeeze-excitation gates, attention, dense on flattened maps) end it.

Each layer's parameter formula is checked against the variables Keras created; totals are the
sum of the model's distinct variables, so they equal `model.count_params()`.

    from kiln.inspect import inspect_model
    info = inspect_model("resnet50", input_shape=(224, 224, 3))
    info["macs"], info["total_params"], info["layers"][0]
"""

from __future__ import annotations

import logging
from pathlib import Path

from kiln.errors import ConfigError, KilnError, received
from kiln.inspect_costs import (CONVENTIONS, _dims, _prod, _rf_step, _show_pair, _weights_count, layer_cost,  # noqa: F401
                                layer_weights, out_size)

log = logging.getLogger("kiln.inspect")
# ---------------------------------------------------------------- walking the graph

def _graph_of(layer):
    """A functional graph to walk: the layer itself, a built Sequential's inner functional, or None (a leaf)."""
    import keras

    if not isinstance(layer, keras.Model):
        return None
    if hasattr(layer, "_nodes_by_depth"):
        return layer
    inner = getattr(layer, "_functional", None)
    return inner if inner is not None and hasattr(inner, "_nodes_by_depth") else None


def _walk(model, states: dict, prefix: str, rows: list, seen_layers: set, variables: dict, mismatches: list) -> None:
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            op = node.operation
            if node.is_input or op is None:
                continue
            inputs = list(node.input_tensors)
            outputs = list(node.outputs)
            graph = _graph_of(op)
            if graph is not None:
                inner_states = {id(t): states.get(id(x)) for t, x in zip(graph.inputs, inputs)}
                _walk(graph, inner_states, f"{prefix}{op.name}/", rows, seen_layers, variables, mismatches)
                for t, x in zip(outputs, graph.outputs):
                    states[id(t)] = inner_states.get(id(x))
                continue
            in_shapes = [tuple(t.shape) for t in inputs]
            out_shapes = [tuple(t.shape) for t in outputs]
            cost = layer_cost(op, in_shapes, out_shapes)
            first_call = id(op) not in seen_layers
            seen_layers.add(id(op))
            t, nt = _weights_count(op) if first_call else (0, 0)
            actual = t + nt
            name = f"{prefix}{op.name}"
            note = []
            if first_call:
                for w in layer_weights(op):
                    variables.setdefault(id(w), (_prod(w.shape), bool(w.trainable) and _effectively_trainable(op)))
                if cost["params"] is not None and cost["params"] != actual:
                    mismatches.append(f"{name}: parameter formula {cost['params']} != Keras {actual}")
                    note.append("params from Keras (formula differs)")
            else:
                note.append("shared layer: params counted once")
            if cost["shape_ok"] is False:
                mismatches.append(f"{name}: output-size formula disagrees with Keras {out_shapes[0][1:]}")
            if not cost["macs_known"]:
                note.append("no MAC formula for this layer type")
            rf = _rf_step(op, [states.get(id(x)) for x in inputs], in_shapes, out_shapes[0]) if outputs else None
            for out in outputs:
                states[id(out)] = rf
            rows.append({
                "name": name, "type": type(op).__name__,
                "output_shape": [list(_dims(s)) for s in out_shapes] if len(out_shapes) > 1 else list(_dims(out_shapes[0])),
                "params": actual, "trainable_params": t, "non_trainable_params": nt, "macs": int(cost["macs"]),
                "receptive_field": _show_pair(rf[0]) if rf else None, "stride": _show_pair(rf[1]) if rf else None,
                "note": "; ".join(note),
            })


def _effectively_trainable(op) -> bool:
    return bool(getattr(op, "trainable", True))


def inspect_keras_model(model) -> dict:
    """The per-layer table and totals of a built functional Keras model (an ensemble: its members', summed)."""
    from kiln.train.ensemble import Ensemble

    if isinstance(model, Ensemble):
        parts = [inspect_keras_model(m) for m in model.members]
        info = dict(parts[0], model=model.name, mismatches=[x for p in parts for x in p["mismatches"]],
                    layers=[dict(r, name=f"member{i}/{r['name']}") for i, p in enumerate(parts) for r in p["layers"]],
                    macs_not_counted_for=sorted({u for p in parts for u in p["macs_not_counted_for"]}))
        for key in ("total_params", "trainable_params", "non_trainable_params", "macs"):
            info[key] = int(sum(p[key] for p in parts))
        return info
    graph = _graph_of(model)
    if graph is None:
        raise KilnError(received("inspect", "model", getattr(model, "name", "model"), "it is not a functional Keras model",
                                 "Build it with keras.Input / keras.Model or keras.Sequential"))
    for t in graph.inputs:
        if None in _dims(t.shape):
            raise KilnError(received("inspect", "input_shape", "x".join(map(str, _dims(t.shape))),
                                     "the model's input size is not fixed, so shapes and MACs are undefined",
                                     "Inspect a model built for one size, e.g. kiln inspect cnn input_shape=64,64,3"))
    rows: list = []
    variables: dict = {}
    mismatches: list = []
    states = {id(t): (tuple(1 for _ in _dims(t.shape)[:-1]), tuple(1 for _ in _dims(t.shape)[:-1])) for t in graph.inputs}
    _walk(graph, states, "", rows, set(), variables, mismatches)
    # variables no leaf layer owns directly (a custom layer's extra state) still count, as Keras counts them
    for w in model.weights:
        variables.setdefault(id(w), (_prod(w.shape), bool(w.trainable)))
    total = sum(n for n, _ in variables.values())
    trainable = sum(n for n, tr in variables.values() if tr)
    unknown = sorted({r["type"] for r in rows if "no MAC formula" in r["note"]})
    return {
        "model": model.name,
        "input_shape": [list(_dims(t.shape)) for t in graph.inputs][0] if len(graph.inputs) == 1 else [list(_dims(t.shape)) for t in graph.inputs],
        "total_params": int(total), "trainable_params": int(trainable), "non_trainable_params": int(total - trainable),
        "macs": int(sum(r["macs"] for r in rows)), "layers": rows, "mismatches": mismatches,
        "macs_not_counted_for": unknown, "conventions": CONVENTIONS,
    }


# ---------------------------------------------------------------- sources: name, run folder, file

def parse_input_shape(value) -> tuple[int, int, int] | None:
    """224 -> (224, 224, 3); [96, 128] -> (96, 128, 3); [32, 32, 1] stays."""
    if value is None:
        return None
    vals = value if isinstance(value, (list, tuple)) else str(value).replace("x", ",").split(",")
    try:
        vals = [int(v) for v in vals if str(v).strip() != ""]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = [vals[0], vals[0], 3]
    elif len(vals) == 2:
        vals = vals + [3]
    if len(vals) != 3 or min(vals) < 1:
        shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        raise ConfigError(received("inspect", "input_shape", shown, "it must be H,W,C (or one side)", "Example: input_shape=224,224,3"))
    return tuple(vals)


def model_task(name: str, task: str | None = None):
    """The registered task whose model registry holds `name` (`task=` names it; needed when several tasks do)."""
    import difflib

    from kiln.tasks.base import TASKS, _load, get_task, model_tasks

    if task is not None:
        chosen = get_task(task)
        if name in chosen.models:
            return chosen
        near = difflib.get_close_matches(name, chosen.models.names(), n=3, cutoff=0.4)
        raise ConfigError(received("inspect", "MODEL", name, f"the {chosen.info.name} task registers no model of that name",
                                   f"Did you mean {', '.join(near)}?" if near else "Run kiln models to list them"))
    found = [t.info.name for t in model_tasks(name)]
    if len(found) == 1:
        return get_task(found[0])
    if found:
        both = "both" if len(found) == 2 else "each"
        raise ConfigError(received("inspect", "MODEL", name, f"the {', '.join(found[:-1])} and {found[-1]} tasks {both} register "
                                   "a model of that name", f"Add {' or '.join(f'task={n}' for n in found)}"))
    _load()
    every = sorted({n for t in TASKS.values() for n in t.models.names()})
    near = difflib.get_close_matches(name, every, n=3, cutoff=0.4)
    raise ConfigError(received("inspect", "MODEL", name, "no task registers a model of that name, and it is no run folder or "
                               ".keras file", f"Did you mean {', '.join(near)}?" if near else "Run kiln models to list them"))


def load_model_for_inspection(source: str, input_shape=None, classes: int | None = None, task: str | None = None):
    """A registered model name of any task (built without downloading weights; `input_shape` as typed, read by the
    task), a run folder or a .keras file -> (model, label)."""
    path = Path(source)
    if path.is_dir() and (path / "model.keras").is_file():
        path = path / "model.keras"
    if path.is_file():
        if path.suffix not in (".keras",):
            raise ConfigError(received("inspect", "MODEL", source, "only .keras model files can be read",
                                       "Pass a registered model name, a run folder or a .keras file"))
        from kiln.io import load_keras

        model = load_keras(path, fix="Pass another .keras file, or train the run again")
        input_shape = parse_input_shape(input_shape)
        if input_shape is not None and getattr(model, "inputs", None) and tuple(_dims(model.inputs[0].shape)) != tuple(input_shape):
            log.warning("inspect: %s has input %s; input_shape=%s ignored", source, tuple(_dims(model.inputs[0].shape)),
                        ",".join(map(str, input_shape)))
        return model, str(path)
    if path.exists() or "/" in source or source.endswith(".keras"):
        raise ConfigError(received("inspect", "MODEL", source, "it is neither a run folder with model.keras nor a .keras file",
                                   "Pass a registered model name (kiln models), a run folder or a .keras file"))
    return model_task(source, task).inspect_model(source, input_shape=input_shape, classes=classes), source


def inspect_model(source, input_shape=None, classes: int | None = None, task: str | None = None) -> dict:
    """Per-layer costs and totals of a registered model name (of any task), run folder, .keras file or Keras model."""
    if not isinstance(source, (str, Path)):  # a Keras model (not imported for a name or path: a damaged file fails fast)
        return inspect_keras_model(source)
    model, label = load_model_for_inspection(str(source), input_shape, classes, task)
    info = inspect_keras_model(model)
    info["source"] = label
    return info


# ---------------------------------------------------------------- output

def human(n: float, unit: str = "") -> str:
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}{unit}"
    return f"{int(n)} {unit}".strip()


def _shape_text(shape: list) -> str:
    """[32, 32, 3] -> "32x32x3"; several inputs [[1], [1]] -> "1, 1"; a scalar input (one string per example) [] -> "scalar"."""
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join(map(str, shape)) or "scalar"


def format_table(info: dict) -> str:
    def show(v):
        if v is None:
            return ""
        return "x".join(map(str, v)) if isinstance(v, list) and v and not isinstance(v[0], list) else str(v)

    header = ["layer", "type", "output", "params", "non-train", "MACs", "RF", "stride"]
    rows = [[r["name"], r["type"], show(r["output_shape"]).replace("None", "?"), f"{r['params']:,}",
             f"{r['non_trainable_params']:,}" if r["non_trainable_params"] else "", human(r["macs"]) if r["macs"] else "",
             show(r["receptive_field"]), show(r["stride"])] for r in info["layers"]]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {3, 4, 5, 6, 7}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    out.append(line(["-" * w for w in widths]))
    out.append(f"{info['model']}: input {_shape_text(info['input_shape'])}, {len(info['layers'])} layers")
    out.append(f"total params {info['total_params']:,}  (trainable {info['trainable_params']:,}, "
               f"non-trainable {info['non_trainable_params']:,})")
    out.append(f"MACs {info['macs']:,}  ({human(info['macs'])}; about {human(2 * info['macs'], 'FLOPs')})")
    if info["macs_not_counted_for"]:
        out.append(f"no MAC formula (counted 0): {', '.join(info['macs_not_counted_for'])}")
    for m in info["mismatches"]:
        out.append(f"check: {m}")
    out.append(f"conventions: {info['conventions']}")
    return "\n".join(out)


__all__ = ["format_table", "inspect_keras_model", "inspect_model", "layer_cost", "out_size", "parse_input_shape"]
