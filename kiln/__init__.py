"""Kiln: from labelled images to a trained, evaluated, exported and served Keras 3 model.

    import kiln
    run = kiln.train(data="path/to/images", epochs=20)
    run.evaluate()["accuracy"]
    run.predict(["cat.jpg"])
"""

__version__ = "0.1.0"

from kiln.api import (  # noqa: E402
    audit,
    augment_preview,
    compare_runs,
    convert,
    export_run,
    inspect_model,
    label_issues,
    list_runs,
    load_run,
    lr_find,
    report,
    serve_model,
    train,
    tune,
)

__all__ = ["__version__", "audit", "augment_preview", "compare_runs", "convert", "export_run", "inspect_model",
           "label_issues", "list_runs", "load_run", "lr_find", "report", "serve_model", "train", "tune"]
