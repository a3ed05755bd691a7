"""Image classification: a folder per class, a pre-split folder, a CSV of paths or TFRecord shards.

data/ (sources, checks, splits, the tf.data pipeline, augmentation, audit, shards), models/ (cnn, dnn,
linear, keras.applications backbones, ViT), evaluate/predict/report sections, export signature and
serving adapter, all behind the task contract (kiln/tasks/base.py).
"""

from kiln.tasks.image import task  # noqa: E402,F401  registers ImageTask
