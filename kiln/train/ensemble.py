"""An ensemble of independently trained members, held as one Keras model.

Why: on small data one network's test score swings with its initial weights and with which epoch a small val
split happens to prefer; the mean of a few independently trained members is steadier and usually better than
the typical member (a seed ensemble; N-BEATS is published as one). Kept as ONE model so the spine needs no
change: the trainer fits it, resume checkpoints it, model.keras saves it and every export traces its `call`.

- Inference (`training=False`: predict, evaluate, val metrics, exports) returns the leaf-wise mean of the
  members' outputs, so members output probabilities (classifiers) or values (regression, forecasts).
- Training: `call(training=True)` returns the members' outputs; each member gets the gradient of the compiled
  loss on its own output (plus its regularisation), exactly as if it trained alone, and the reported loss is
  the members' mean. No member sees the others' predictions, so they stay as independent as separately
  trained models; the train metrics, and the val loss early stopping watches, are the averaged ensemble's.
"""

from __future__ import annotations

import keras
from keras import ops


def _mean(outputs):
    """Leaf-wise mean of a list of equally structured outputs (tensors, dicts or lists of tensors)."""
    if len(outputs) == 1:
        return outputs[0]
    return keras.tree.map_structure(lambda *leaves: ops.mean(ops.stack(leaves, axis=0), axis=0), *outputs)


@keras.saving.register_keras_serializable(package="kiln")
class Ensemble(keras.Model):
    """K member models that take the same inputs; predicts the mean of their outputs."""

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        if not members:
            raise ValueError("Ensemble needs at least one member model")
        self.members = list(members)
        self._members_out = False  # set while tracing call(training=True); read by compute_loss/compute_metrics
        if all(m.built for m in self.members):
            self.built = True

    def call(self, inputs, training=None):
        outputs = [m(inputs, training=training) for m in self.members]
        self._members_out = bool(training)
        return outputs if training else _mean(outputs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        members_out = self._members_out and isinstance(y_pred, list) and len(y_pred) == len(self.members)
        if not (training and members_out and self._compile_loss is not None):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        total = ops.sum(ops.stack([self._compile_loss(y, p, sample_weight) for p in y_pred]))
        # the value is the members' mean loss (comparable with val_loss); the gradient is each member's own loss,
        # so a member trains exactly as it would alone (plain SGD included), not at 1/K of its learning rate
        loss = total - ops.stop_gradient(total * (1.0 - 1.0 / len(y_pred)))
        for extra in self.losses:  # the members' regularisation, counted once
            loss = loss + self._aggregate_additional_loss(extra)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._members_out and isinstance(y_pred, list) and len(y_pred) == len(self.members):
            y_pred = _mean(y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "members": [keras.saving.serialize_keras_object(m) for m in self.members]}

    @classmethod
    def from_config(cls, config):
        members = [keras.saving.deserialize_keras_object(m) for m in config.pop("members")]
        return cls(members, **config)


def members_of(model) -> list:
    """The member models of an ensemble, or [model] for a single model (for code that inspects layers)."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


__all__ = ["Ensemble", "members_of"]
