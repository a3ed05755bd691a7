"""Kiln: from labelled images to a trained, evaluated, exported and served Keras 3 model.

    import kiln
    run = kiln.train(data="path/to/images", epochs=20)
    run.evaluate()["accuracy"]
    run.predict(["cat.jpg"])
"""

__version__ = "0.1.0"

from kiln.api import audit, augment_preview, convert, export_run, load_run, serve_model, train  # noqa: E402

from kiln.api import compare_runs, inspect_model, label_issues, list_runs, report  # noqa: E402

__all__ = ["__version__", "audit", "augment_preview", "convert", "export_run", "load_run", "serve_model", "train"]
__all__ += ["compare_runs", "inspect_model", "label_issues", "list_runs", "report"]

from kiln.api import lr_find, tune  # noqa: E402

__all__ += ["lr_find", "tune"]
