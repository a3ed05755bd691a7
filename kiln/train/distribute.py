"""`train.distribute` -> a tf.distribute strategy, and `train.precision` -> a Keras dtype policy.

Batch size: `data.batch_size` is per replica; the global batch fed to `fit` is
`batch_size x strategy.num_replicas_in_sync`, and tf.distribute splits every global batch across
the replicas (and, for multi_worker, across the workers). One CPU is one replica.

Several machines: start the same `kiln train ... distribute=multi_worker` on every machine, each
with a TF_CONFIG naming the whole cluster and its own index, e.g. for worker 1 of 2:

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 1}}'

Worker 0 is the chief: it alone writes the run folder; the others train in lockstep and write nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os

from kiln.errors import ConfigError, received

log = logging.getLogger("kiln.train")


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(received("train", "TF_CONFIG", text[:60], f"it is not JSON ({err.msg})",
                                   'Example: {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')) from None
    if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
        raise ConfigError(received("train", "TF_CONFIG", text[:60], "it needs both a cluster and a task",
                                   'Example: {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'))
    return value


def cluster_size(config: dict) -> int:
    cluster = config.get("cluster", {})
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def is_chief(config: dict | None = None) -> bool:
    """The task that writes files: `chief` if the cluster has one, else worker 0."""
    config = tf_config() if config is None else config
    if not config:
        return True
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in config.get("cluster", {}):
        return kind == "chief"
    return kind == "worker" and index == 0


def resolve(name: str) -> str:
    """`auto` -> multi_worker when TF_CONFIG names 2+ workers, mirrored with 2+ GPUs, else none."""
    if name != "auto":
        return name
    if cluster_size(tf_config()) > 1:
        return "multi_worker"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "none"


def make_strategy(name: str):
    """The strategy for `train.distribute`. Call it before any other TensorFlow op (multi_worker needs that)."""
    import tensorflow as tf

    kind = resolve(name)
    if kind == "multi_worker":
        config = tf_config()
        if not config:
            raise ConfigError(received("train", "distribute", "multi_worker", "TF_CONFIG is not set, so there is no cluster to join",
                                       "Set TF_CONFIG on every worker (see README: several machines) or use distribute=auto"))
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        patch_keras_for_multi_worker()
        log.info("train: multi_worker, %d workers, this is %s %s", cluster_size(config), config["task"].get("type"),
                 config["task"].get("index"))
        return strategy
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default strategy: one replica, no wrapping


_PATCHED = False


def patch_keras_for_multi_worker() -> None:
    """Work around Keras 3's `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585, still in 3.15).

    Two places all-reduce what they should not: the first-batch symbolic build reduces the *data* batch
    across workers (a PerReplica that cannot become a tensor), and the step outputs (scalar metric
    results) are reduced with `axis=0`. Here the symbolic build uses this worker's own batch (only its
    shapes matter) and scalar outputs are averaged across workers with `axis=None`. Both changes apply
    only under MultiWorkerMirroredStrategy; every other strategy keeps Keras's code.
    """
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    from keras import tree

    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer

        original_reduce = tf_trainer.reduce_per_replica
        original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    except (ImportError, AttributeError) as err:  # pragma: no cover - another Keras layout
        raise ConfigError(received("train", "distribute", "multi_worker", f"this Keras has no {err} to adapt",
                                   "Use keras==3.15.1 (pinned in pyproject.toml) or distribute=none")) from None

    def multi_worker(strategy) -> bool:
        return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues) else v, values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not multi_worker(strategy) or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v, batch)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _PATCHED = True


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def shard_options(ds, strategy):
    """Multi-worker: shard by element (the input is a list of files in one dataset, not one file per worker)."""
    import tensorflow as tf

    if ds is None or not is_multi_worker(strategy):
        return ds
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def agree(strategy, value: int, what: str) -> None:
    """Multi-worker: fail on every worker when they disagree on `value` (e.g. the epoch they resume from)."""
    import tensorflow as tf

    if not is_multi_worker(strategy):
        return
    # All equal <=> n * sum(v^2) == sum(v)^2 (Cauchy-Schwarz); ReduceOp has only SUM and MEAN.
    per_replica = strategy.run(lambda: tf.constant([float(value), float(value) ** 2]))
    total, squares = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy().tolist()
    same = abs(strategy.num_replicas_in_sync * squares - total ** 2) <= 1e-6 * max(1.0, total ** 2)
    if not same:
        raise ConfigError(received("train", what, value, "the workers disagree on it (each worker must see the same run_dir, e.g. on shared storage)",
                                   "Give every worker the same run_dir on a shared file system, or start a new run_dir"))


@contextlib.contextmanager
def precision_policy(name: str):
    """Set the global Keras dtype policy for the block; restore the previous one after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
