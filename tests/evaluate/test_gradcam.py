"""Grad-CAM peaks on the object: two classes whose images differ only in the colour of a small square."""

import numpy as np
import pytest

from kiln.errors import KilnError

SIZE, OBJ = 32, 8


def _images(rng, n):
    x = rng.integers(0, 90, (n, SIZE, SIZE, 3)).astype(np.uint8)  # the same noise background for both classes
    y = rng.integers(0, 2, n)
    boxes = rng.integers(0, SIZE - OBJ, (n, 2))
    for i, (r, c) in enumerate(boxes):
        x[i, r:r + OBJ, c:c + OBJ] = (230, 60, 40) if y[i] == 0 else (40, 90, 230)
    return x, y, boxes


@pytest.fixture(scope="module")
def trained():
    import keras

    from kiln.tasks.image.models import create_model

    rng = np.random.default_rng(0)
    x, y, _ = _images(rng, 400)
    keras.utils.set_random_seed(0)
    model = create_model("cnn", (SIZE, SIZE, 3), 2, filters=[16, 32], units=[32], dropout=0.0, batchnorm=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return model, _images(np.random.default_rng(1), 60)


def test_heatmap_peaks_on_the_object(trained):
    from kiln.tasks.image.gradcam import find_target_layer, gradcam, upsample

    model, (x, y, boxes) = trained
    assert [layer.name for layer in find_target_layer(model)] == ["block2_conv1_act"]
    heat, probs, explained = gradcam(model, x)
    assert (probs.argmax(1) == y).mean() >= 0.9  # the model learned the task, so its evidence is the object
    assert heat.shape == (60, 16, 16) and heat.min() >= 0.0 and heat.max() <= 1.0
    hits = 0
    for h, (r, c) in zip(heat, boxes):
        pr, pc = np.unravel_index(upsample(h, (SIZE, SIZE)).argmax(), (SIZE, SIZE))
        hits += (r - 2 <= pr < r + OBJ + 2) and (c - 2 <= pc < c + OBJ + 2)
    # a peak placed at random would land in the 12x12 box about 14 % of the time
    assert hits / len(boxes) >= 0.8


def test_nested_backbone_gives_the_same_map(trained):
    import keras

    from kiln.tasks.image.gradcam import find_target_layer, gradcam, overlay

    model, (x, y, _) = trained
    backbone = keras.Model(model.input, model.get_layer("block2_conv1_act").output, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    z = backbone(inputs)
    for name in ["block2_pool", "gap", "fc1_dense", "fc1_act", "predictions"]:
        z = model.get_layer(name)(z)
    nested = keras.Model(inputs, z)
    assert [layer.name for layer in find_target_layer(nested)] == ["backbone", "block2_conv1_act"]
    flat_heat, flat_probs, _ = gradcam(model, x[:8], class_index=y[:8])
    heat, probs, explained = gradcam(nested, x[:8], class_index=y[:8], target="backbone/block2_conv1_act")
    np.testing.assert_allclose(heat, flat_heat, atol=1e-5)
    assert list(explained) == list(y[:8])
    picture = overlay(x[0], heat[0])
    assert picture.shape == (SIZE, SIZE, 3) and picture.dtype == np.uint8


def test_no_conv_layer_is_a_clear_error():
    from kiln.tasks.image.gradcam import gradcam
    from kiln.tasks.image.models import create_model

    with pytest.raises(KilnError, match="no 2-D convolution"):
        gradcam(create_model("dnn", (8, 8, 1), 2, units=[4]), np.zeros((1, 8, 8, 1), np.uint8))


def test_tiny_final_map_falls_back_to_a_4x4_map():
    import keras
    from keras import layers

    from kiln.tasks.image.gradcam import find_target_layer, gradcam

    x = inputs = keras.Input((16, 16, 3))
    for i, f in enumerate((4, 8, 8, 8)):  # 8x8, 4x4, 2x2, 1x1
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"c{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="predictions")(x))
    assert [layer.name for layer in find_target_layer(model)] == ["c1"]
    assert [layer.name for layer in find_target_layer(model, min_side=1)] == ["c3"]
    assert gradcam(model, np.zeros((1, 16, 16, 3), np.uint8))[0].shape == (1, 4, 4)
