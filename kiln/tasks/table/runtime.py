"""The table task's `kiln predict` runtimes: Keras, or the run's verified ONNX export (kiln/export/runtime.py,
shared by every task, chooses it and says why)."""

from __future__ import annotations

from kiln.export.runtime import RUNTIMES, export_model


def predictor(task, run, runtime: str = "auto"):
    """(predict(inputs dict) -> (N, K) array, description) for the runtime chosen."""
    model = export_model(run, runtime)
    if model is None:
        from kiln.tasks.table.spec import predict_inputs

        return (lambda x: predict_inputs(run.model, x)), "keras"
    return model, model.description


__all__ = ["RUNTIMES", "predictor"]
