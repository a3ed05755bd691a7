"""Resume after a crash: one atomic checkpoint per completed epoch, and the run folder that reopens it.

RUN/state/checkpoint.npz holds everything needed to continue: the model's weights, the optimizer's
variables (`iterations` carries the per-step LR schedule's position), early stopping / LR reduction /
best-checkpoint counters, early stopping's best weights, and a JSON header (phase, completed epochs,
where the phase started, whether it stopped early). It is written after the epoch's history.csv row,
through a temp file and a rename, so a SIGKILL at any moment leaves either the previous checkpoint or
the new one. On restart, history.csv is cut back (atomically) to the checkpoint's epoch count, so no
epoch is lost or repeated. A finished run (model.keras written) drops its state folder.

A run folder is unfinished when it has state/checkpoint.npz and no model.keras. `kiln train` with the
same run_dir continues it (`train.resume=auto`); `resume=true` also finds the latest unfinished
runs_root/name[-N]; `resume=false` refuses an unfinished folder. `epochs` may be raised on resume.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kiln.config import Config
from kiln.errors import KilnError, bad_file, received
from kiln.io import FORMAT_VERSION, atomic_path, check_version, read_csv, read_yaml, write_text

log = logging.getLogger("kiln.train")

STATE = Path("state") / "checkpoint.npz"
# Keys whose change makes a checkpoint unusable or the continued run a different experiment; each task
# adds its own (TaskInfo.resume_keys, e.g. the input size).
BINDING = ("seed", "model.", "data.path", "data.val_split", "data.test_split", "train.optimizer", "train.precision",
           "train.phases", "train.unfreeze")
STATEFUL = {  # callback class name -> attributes that carry over a restart
    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
    "BestCheckpoint": ("best",),
}


@dataclass
class State:
    phase: int
    epoch: int  # completed epochs, all phases together
    phase_start: int  # epoch at which this phase began
    stopped: bool = False  # the phase ended early (early stopping) at `epoch`
    weights: list = field(default_factory=list)
    optimizer: dict | None = None  # optimizer.save_own_variables store; None at a phase boundary
    best_weights: list | None = None
    callbacks: dict = field(default_factory=dict)


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / STATE


def is_unfinished(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return state_path(run_dir).is_file() and not (run_dir / "model.keras").exists()


def write_state(run_dir: Path, model, *, phase: int, epoch: int, phase_start: int, optimizer: bool, stopped: bool = False,
                callbacks: dict | None = None, best_weights: list | None = None) -> None:
    commit_state(run_dir, snapshot_state(model, phase=phase, epoch=epoch, phase_start=phase_start, optimizer=optimizer,
                                         stopped=stopped, callbacks=callbacks, best_weights=best_weights))


def snapshot_state(model, *, phase: int, epoch: int, phase_start: int, optimizer: bool, stopped: bool = False,
                   callbacks: dict | None = None, best_weights: list | None = None) -> dict:
    """The checkpoint's arrays, copied out of the model now (on the training thread); `commit_state`
    writes them, possibly later and on another thread."""
    arrays = {f"w/{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    if optimizer and model.optimizer is not None:
        store: dict = {}
        model.optimizer.save_own_variables(store)
        arrays.update({f"o/{k}": np.asarray(v) for k, v in store.items()})
    for i, w in enumerate(best_weights or []):  # early stopping replaces its list on improvement, never mutates it
        arrays[f"b/{i}"] = np.asarray(w)
    meta = {"format_version": FORMAT_VERSION, "phase": phase, "epoch": epoch, "phase_start": phase_start, "stopped": bool(stopped),
            "callbacks": callbacks or {}, "time": time.time()}
    arrays["meta"] = np.array(json.dumps(meta))
    return arrays


def commit_state(run_dir: Path, arrays: dict) -> None:
    """Write a checkpoint atomically and durably (fsync before the rename)."""
    with atomic_path(state_path(run_dir)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())


def read_state(run_dir: str | Path) -> State | None:
    path = state_path(run_dir)
    if not path.is_file():
        return None
    meta, groups = _load_state(path, arrays=True)

    def ordered(d):
        return [d[i] for i in sorted(d)]

    return State(phase=int(meta["phase"]), epoch=int(meta["epoch"]), phase_start=int(meta["phase_start"]),
                 stopped=bool(meta.get("stopped")), weights=ordered(groups["w"]),
                 optimizer={str(i): v for i, v in sorted(groups["o"].items())} or None,
                 best_weights=ordered(groups["b"]) or None, callbacks=meta.get("callbacks", {}))


def check_state(run_dir: str | Path) -> None:
    """The checkpoint's header only: a damaged or newer checkpoint fails before data and TensorFlow start."""
    _load_state(state_path(run_dir), arrays=False)


def _load_state(path: Path, arrays: bool) -> tuple[dict, dict]:
    fix = "Start a new run_dir; this one cannot be continued"
    if path.stat().st_size == 0:
        raise bad_file(path, "it is empty (cut short while it was written?)", fix)
    groups: dict[str, dict[int, np.ndarray]] = {"w": {}, "o": {}, "b": {}}
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            for key in z.files if arrays else ():
                if "/" in key:
                    group, i = key.split("/", 1)
                    groups[group][int(i)] = z[key]
    except Exception as err:  # noqa: BLE001 - a damaged file is a user-level problem here
        why = "it is cut short or damaged" if isinstance(err, (EOFError, OSError)) or "zip" in type(err).__name__.lower() \
            else "it is not a Kiln resume checkpoint"
        raise bad_file(path, f"{why} ({type(err).__name__})", fix) from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("phase", "epoch", "phase_start")):
        raise bad_file(path, "it is not a Kiln resume checkpoint (its header lacks phase / epoch)", fix)
    check_version(meta, path)
    return meta, groups


def restore(model, state: State) -> None:
    """Weights, then (mid-phase) optimizer variables. Call inside the strategy scope, after compile."""
    if len(state.weights) != len(model.weights):
        raise KilnError(received("train", "resume", f"{len(state.weights)} weight tensors",
                                 f"the model now has {len(model.weights)}, so the checkpoint belongs to another model",
                                 "Resume with the original config, or start a new run_dir"))
    model.set_weights(state.weights)
    if state.optimizer:
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        if len(optimizer.variables) != len(state.optimizer):
            raise KilnError(received("train", "resume", f"{len(state.optimizer)} optimizer variables",
                                     f"the optimizer now has {len(optimizer.variables)}", "Resume with the original config"))
        optimizer.load_own_variables(state.optimizer)


def truncate_history(path: Path, rows: int) -> None:
    """Keep the header and the first `rows` complete rows (atomically); none -> remove the file."""
    if not path.is_file():
        return
    with open(path, newline="") as f:  # keep CSVLogger's \r\n line ends
        lines = f.read().splitlines(keepends=True)
    if rows == 0:
        path.unlink()
        return
    body = [line for line in lines[1:] if line.endswith("\n")]
    if len(lines) and len(body) == rows and len(lines) == rows + 1:
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            f.write("".join(lines[:1] + body[:rows]))


def check_config(run_dir: Path, cfg: Config, resolved: Config | None = None) -> None:
    """Refuse to continue with a changed binding key; other keys (epochs, patience, verbose ...) may change.
    config.yaml holds the values `auto` resolved to (`resolved`); a key matching either the command's or the resolved
    value passes (config.yaml written before it held resolved values keeps `auto`)."""
    from kiln.config.load import _flatten

    saved_file = run_dir / "config.yaml"
    if not saved_file.exists():
        return
    from kiln.tasks.base import resolve_task

    binding = BINDING + tuple(resolve_task(cfg).info.resume_keys)
    saved = _flatten(read_yaml(saved_file, "a Kiln config", "Start a new run_dir, or restore config.yaml from a copy"))
    now = _flatten(cfg.model_dump(mode="json"))
    also = _flatten(resolved.model_dump(mode="json")) if resolved is not None else now
    for key in sorted(set(saved) | set(now)):
        if not key.startswith(binding) or saved.get(key) in (now.get(key), also.get(key)):
            continue
        raise KilnError(received("train", key, now.get(key), f"the unfinished run in {run_dir} was started with {key}={saved.get(key)}, "
                                 "and a checkpoint continues only with the same value",
                                 f"Pass {key}={saved.get(key)} to resume, or pick a new run_dir (or resume=false)"))


def check_splits(run_dir: Path, table) -> None:
    """The resumed run must train on the same rows with the same split: `table` (the task's splits_frame)
    against the saved splits.csv, compared on its columns."""
    saved_file = run_dir / "splits.csv"
    if not saved_file.exists():
        return
    columns = list(table.columns)
    saved = read_csv(saved_file, tuple(columns), "a Kiln splits.csv", "Start a new run_dir, or restore splits.csv from a copy",
                     dtype=str, keep_default_na=False)[columns]
    now = table.astype(str).reset_index(drop=True)
    if len(saved) != len(now) or not (saved.sort_values(columns).to_numpy() == now.sort_values(columns).to_numpy()).all():
        raise KilnError(received("train", "data", "<changed>", f"the files or their split differ from {saved_file}",
                                 "Resume with the same data, or start a new run_dir"))


class RunFolder:
    """Where a training job writes: a new folder, or an unfinished one to continue.

    Non-chief workers write to a temp folder that is removed at the end, and read the state of the
    shared `run_dir` (if any) so every worker continues from the same epoch.
    """

    def __init__(self, cfg: Config, chief: bool = True):
        self.cfg, self.chief = cfg, chief
        self.path: Path | None = None
        self.state: State | None = None
        self.resuming = False
        self._fd: int | None = None
        self._resume_from: Path | None = None
        mode = cfg.train.resume
        if cfg.run_dir:
            given = Path(cfg.run_dir)
            if not is_unfinished(given) and ((given / "model.keras").exists() or (given / "run.json").exists()):
                raise KilnError(received("train", "run_dir", cfg.run_dir, "it already holds a finished run, which Kiln never overwrites",
                                         "Pick a new run_dir or leave it out to auto-number"))
            if is_unfinished(given):
                if mode is False:
                    raise KilnError(received("train", "run_dir", cfg.run_dir, "it holds an unfinished run and resume=false",
                                             "Pass resume=true (or leave resume=auto) to continue it, or pick a new run_dir"))
                self._resume_from = given
                check_state(given)
            elif mode is True and chief:
                raise KilnError(received("train", "resume", "true", f"{cfg.run_dir} holds no unfinished run (no {STATE})",
                                         "Leave out resume=true to start a new run there"))
        elif mode == "auto" and cfg.name and chief:  # the same command again after Ctrl+C or a crash: continue it
            found = latest_unfinished(Path(cfg.runs_root), cfg.name)
            if found is not None:
                check_state(found)
                self._resume_from = found
                print(f"kiln: {found} is an unfinished run named {cfg.name}; continuing it (resume=false starts a new one)",
                      flush=True)
        elif mode is True:
            found = latest_unfinished(Path(cfg.runs_root), cfg.name or "train")
            if found is None:
                raise KilnError(received("train", "resume", "true", f"no unfinished run {cfg.name or 'train'}[-N] under {cfg.runs_root}",
                                         "Pass run_dir=RUN_FOLDER, or leave out resume=true"))
            self._resume_from = found
            check_state(found)

    def create(self, resolved: Config | None = None) -> Path:
        """Create (or reopen) the folder, lock it against a second process, load the checkpoint. `resolved`: the config
        with what `auto` resolved to, as config.yaml holds it (what a resumed run is checked against)."""
        from kiln.run import new_run_dir

        if not self.chief:
            self.path = Path(tempfile.mkdtemp(prefix="kiln-worker-"))
        elif self._resume_from is not None:
            self.path = self._resume_from
        else:
            self.path = new_run_dir(self.cfg.run_dir, self.cfg.runs_root, self.cfg.name)
        if self.chief:
            self._lock()
        if self._resume_from is not None:
            self.state = read_state(self._resume_from)
            self.resuming = self.state is not None
        if self.resuming and self.chief:
            check_config(self.path, self.cfg, resolved)
            shutil.rmtree(self.path / "cache", ignore_errors=True)  # a killed run may leave a half-written tf.data cache
            print(f"kiln: resuming {self.path} after epoch {self.state.epoch} (phase {self.state.phase})", flush=True)
        return self.path

    def _lock(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise KilnError(received("train", "run_dir", self.path, "another kiln process is training in this folder",
                                     "Wait for it to finish, or pick another run_dir")) from None
        self._fd = fd

    def finish(self) -> None:
        """The run is complete (model.keras written): its checkpoint is no longer needed."""
        if self.chief and self.path is not None:
            shutil.rmtree(self.path / "state", ignore_errors=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        if not self.chief and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def latest_unfinished(root: Path, base: str) -> Path | None:
    if not root.is_dir():
        return None
    found = [p for p in root.iterdir() if p.is_dir() and (p.name == base or p.name.startswith(f"{base}-")) and is_unfinished(p)]
    return max(found, key=lambda p: state_path(p).stat().st_mtime) if found else None
