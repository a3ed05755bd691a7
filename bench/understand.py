"""Benchmarks for issue 6 (understanding a model).

1. `kiln inspect` MACs for keras.applications models (weights=None) against the papers' figures and
   against TensorFlow's own profiler (float ops of the frozen graph / 2), measured in the same run.
2. `kiln label-issues`: recall and precision of deliberately flipped labels, method=fast vs method=cv.

    .venv/bin/python bench/understand.py            # both
    .venv/bin/python bench/understand.py inspect    # one part
"""

from __future__ import annotations

import shutil
import sys
import time

import numpy as np

from common import DATA, table

PUBLISHED = [  # (application, input side, published multiply-accumulates, source)
    ("ResNet50", 224, 3.8e9, "He et al. 2016"),
    ("MobileNetV2", 224, 300e6, "Sandler et al. 2018"),
    ("VGG16", 224, 15.5e9, "Simonyan & Zisserman 2015 (via He et al.)"),
    ("MobileNetV3Large", 224, 219e6, "Howard et al. 2019"),
    ("EfficientNetB0", 224, 390e6, "Tan & Le 2019"),
    ("InceptionV3", 299, 5.72e9, "Szegedy et al. 2016"),
    ("DenseNet121", 224, 2.87e9, "Huang et al. 2017"),
    ("ConvNeXtTiny", 224, 4.5e9, "Liu et al. 2022"),
]


def tf_profiler_flops(model, side: int) -> float:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, side, side, 3], tf.float32)))
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=opts)
    return float(info.total_float_ops)


def bench_inspect() -> None:
    import keras

    from kiln.inspect import inspect_keras_model

    rows = []
    for app, side, published, source in PUBLISHED:
        keras.backend.clear_session()
        model = getattr(keras.applications, app)(weights=None, input_shape=(side, side, 3))
        t = time.perf_counter()
        info = inspect_keras_model(model)
        seconds = time.perf_counter() - t
        exact = info["total_params"] == model.count_params()
        try:
            half_flops = tf_profiler_flops(model, side) / 2
        except Exception as err:  # the profiler is a TF1 tool; report, do not stop
            print(f"{app}: TF profiler failed ({err})", file=sys.stderr)
            half_flops = float("nan")
        rows.append((app, side, f"{model.count_params():,}", "yes" if exact else "NO", f"{info['macs'] / 1e6:,.1f} M",
                     f"{published / 1e6:,.0f} M", f"{info['macs'] / published:.3f}", f"{half_flops / 1e6:,.1f} M",
                     f"{info['macs'] / half_flops:.3f}", f"{seconds * 1000:.0f} ms", source))
        print(rows[-1], flush=True)
    print(table(rows, ("model", "side", "params", "= count_params", "kiln MACs", "published", "kiln/published",
                       "TF profiler FLOPs/2", "kiln/profiler", "inspect time", "source")))


def bench_label_issues() -> None:
    import kiln
    from kiln.tasks.image.label_issues import find_label_issues
    from synth import make_image_folder

    root = DATA / "label_issues"
    shutil.rmtree(root, ignore_errors=True)
    data = make_image_folder(root / "data", classes=4, per_class=100, size=32, seed=5)
    names = sorted(p.name for p in data.iterdir())
    rng = np.random.default_rng(0)
    flipped = set()
    for f in rng.choice(sorted(data.rglob("*.png")), 40, replace=False):  # 10 % of the labels
        dest = data / names[(names.index(f.parent.name) + 1) % len(names)] / f"flipped_{f.parent.name}_{f.name}"
        f.rename(dest)
        flipped.add(str(dest))
    run = kiln.train(data=str(data), run_dir=str(root / "run"), epochs=15, seed=1, image_size=32,
                     model={"filters": [16, 32], "units": [32]}, train={"verbose": 0, "tensorboard": False},
                     evaluate={"report": False})
    split = run.splits
    target = set(split.loc[split["split"] == "train", "path"]) & flipped
    rows = []
    for method, kw in (("fast", {}), ("cv", {"folds": 5, "epochs": 15})):
        t = time.perf_counter()
        res = find_label_issues(run, method=method, report=False, **kw)
        seconds = time.perf_counter() - t
        got = set(res.loc[res["is_issue"], "path"])
        rows.append((method, len(res), len(target), len(got), f"{len(got & target) / len(target):.2f}",
                     f"{len(got & target) / max(1, len(got)):.2f}", f"{seconds:.1f} s"))
    rows.append(("cv / fast time", "", "", "", "", "", f"{float(rows[1][-1][:-2]) / float(rows[0][-1][:-2]):.1f}x"))
    print(table(rows, ("method", "train images", "flipped", "flagged", "recall", "precision", "time")))


if __name__ == "__main__":
    parts = sys.argv[1:] or ["inspect", "label_issues"]
    if "inspect" in parts:
        bench_inspect()
    if "label_issues" in parts:
        bench_label_issues()
