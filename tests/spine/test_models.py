"""Model registry and the from-scratch families."""

import numpy as np
import pytest

from kiln.errors import ConfigError
from kiln.tasks.image.models import create_model, list_models


def test_registry_lists_simple_families():
    assert {"linear", "dnn", "cnn"} <= set(list_models())
    assert list_models("c*")[0] == "cnn"


def test_unknown_name_lists_closest():
    with pytest.raises(ConfigError, match="model.name=cnnn; no model is registered under that name. Did you mean cnn"):
        create_model("cnnn", (8, 8, 1), 2)


@pytest.mark.parametrize("name, kwargs, params", [
    ("linear", {}, (8 * 8 * 1 + 1) * 3),
    ("dnn", {"units": [16], "batchnorm": False, "dropout": 0.0}, (64 + 1) * 16 + (16 + 1) * 3),
    ("cnn", {"filters": [4], "units": [], "batchnorm": False, "dropout": 0.0, "kernel_size": 3},
     (3 * 3 * 1 + 1) * 4 + (4 + 1) * 3),
])
def test_parameter_counts(name, kwargs, params):
    model = create_model(name, (8, 8, 1), 3, **kwargs)
    assert model.count_params() == params


def test_cnn_options_and_raw_pixel_input():
    model = create_model("cnn", (16, 16, 3), 4, filters=[8, 16], convs_per_block=2, strides=1, padding="valid",
                         pooling="avg", head="flatten", units=[8], l2=1e-4, initializer="glorot_uniform",
                         activation="gelu")
    x = np.random.randint(0, 256, (2, 16, 16, 3)).astype("uint8")
    p = model.predict(x, verbose=0)
    assert p.shape == (2, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert model.layers[1].name == "rescale"
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    assert len(model.losses) > 0  # L2 penalty is on
