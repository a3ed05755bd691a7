"""The decoder every path shares (`decode_bytes`) and the batched tf.data pipeline built on it."""

import io

import numpy as np
import pytest
from PIL import Image

from kiln.tasks.image.data.pipeline import _decode, decode_batch, decode_bytes, make_dataset, resize_array


def smooth(h, w, seed=0):
    """A smooth colour image: JPEG round trips stay within a few grey levels of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 6, 3)
    return np.stack([127 + 120 * np.sin(3 * xx + 2 * yy + p) for p in phase], -1).astype(np.uint8)


def encoded(arr, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def pil_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def test_each_format_decodes_to_the_pixels_pillow_sees():
    base = smooth(30, 40)
    rgba = np.concatenate([base, np.full((30, 40, 1), 90, np.uint8)], -1)
    cases = {
        "jpeg": encoded(base, "JPEG", quality=90),
        "png rgba (alpha dropped)": encoded(rgba, "PNG"),
        "png grey": encoded(base[..., 0], "PNG"),
        "webp lossless": encoded(base, "WEBP", lossless=True),
        "gif": encoded(base, "GIF"),
        "bmp": encoded(base, "BMP"),
    }
    for name, data in cases.items():
        got = decode_bytes(data, (30, 40), 3, "stretch")  # native size: no resize, decode only
        assert got.shape == (30, 40, 3) and got.dtype == np.uint8, name
        # libjpeg-turbo (simplejpeg) and Pillow's libjpeg use the same IDCT and upsampling
        np.testing.assert_allclose(got.astype(int), pil_rgb(data).astype(int), atol=1, err_msg=name)
    grey = decode_bytes(cases["jpeg"], (30, 40), 1, "stretch")
    assert grey.shape == (30, 40, 1)
    with Image.open(io.BytesIO(cases["jpeg"])) as img:
        assert np.abs(grey[..., 0].astype(int) - np.asarray(img.convert("L")).astype(int)).max() <= 2


def test_16_bit_png_is_scaled_to_8_bits_not_clipped():
    wide = (np.arange(30 * 40).reshape(30, 40) * 54).astype(np.uint16)  # 0 .. 64,746
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, "PNG")
    got = decode_bytes(buf.getvalue(), (30, 40), 1, "stretch")[..., 0]
    assert got.max() >= 250  # clipping would saturate most of the image at 255 instead
    np.testing.assert_allclose(got.astype(float), wide / 257, atol=1.01)


def test_large_jpeg_decodes_at_a_reduced_dct_scale_that_still_covers_the_target():
    data = encoded(smooth(800, 1000), "JPEG", quality=92)
    assert _decode(data, 3, None).shape == (800, 1000, 3)
    assert _decode(data, 3, (224, 224)).shape == (300, 375, 3)  # 3/8: the smallest M/8 scale with both sides >= 224
    assert _decode(data, 3, (400, 400)).shape == (400, 500, 3)  # 4/8
    fast = decode_bytes(data, (224, 224), 3, "stretch")
    full = resize_array(_decode(data, 3, None), (224, 224), "stretch")
    assert fast.shape == (224, 224, 3) and np.abs(fast.astype(int) - full.astype(int)).mean() < 2.0


@pytest.mark.parametrize("mode", ["stretch", "pad", "crop"])
@pytest.mark.parametrize("channels", [1, 3])
def test_resize_into_a_batch_slot_equals_a_fresh_resize(mode, channels):
    image = smooth(37, 53)[..., :channels].copy()
    out = np.full((2, 24, 20, channels), 7, np.uint8)
    resize_array(image, (24, 20), mode, out=out[1])
    np.testing.assert_array_equal(out[1], resize_array(image, (24, 20), mode))
    assert (out[0] == 7).all()  # the neighbouring slot is untouched


def test_recoverable_jpeg_warning_decodes_and_a_truncated_jpeg_fails_loudly():
    data = encoded(smooth(30, 40), "JPEG")
    extra = data[:-2] + b"\x00\x00\x00" + data[-2:]  # libjpeg: "extraneous bytes before marker 0xd9"
    np.testing.assert_array_equal(decode_bytes(extra, (30, 40), 3, "stretch"), pil_rgb(extra))
    with pytest.raises(Exception):
        decode_bytes(data[: len(data) // 2], (30, 40), 3, "stretch")


def test_make_dataset_gives_decode_bytes_pixels_in_order_and_every_file_once_when_training(tmp_path):
    paths, labels = [], []
    for i in range(45):
        p = tmp_path / f"{i:02d}.{'jpg' if i % 3 else 'png'}"
        p.write_bytes(encoded(smooth(30 + i % 4, 40, seed=i), "JPEG" if i % 3 else "PNG"))
        paths.append(str(p))
        labels.append(i % 3)
    expected = decode_batch([open(p, "rb").read() for p in paths], (16, 16), 3, "crop")
    ds = make_dataset(paths, labels, 3, size=(16, 16), channels=3, resize="crop", batch_size=8)
    batches = list(ds)
    assert [len(x) for x, _ in batches] == [8] * 5 + [5]
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), expected)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in batches]).argmax(1), labels)

    key = {expected[i].tobytes(): labels[i] for i in range(45)}
    for cache in ("none", "memory"):
        ds = make_dataset(paths, labels, 3, size=(16, 16), channels=3, resize="crop", batch_size=8, training=True,
                          cache=cache, drop_remainder=True, seed=1)
        assert ds.cardinality().numpy() == 5  # a known length: Keras counts steps (and LR schedules) right
        orders = []
        for _ in range(2):
            pairs = [(img.tobytes(), int(label)) for x, y in ds for img, label in zip(x.numpy(), y.numpy().argmax(1))]
            assert len(pairs) == 40  # 5 full batches, the remainder dropped
            assert len({img for img, _ in pairs}) == 40 and all(key.get(img) == label for img, label in pairs)
            orders.append([img for img, _ in pairs])
        assert orders[0] != orders[1]  # reshuffled each epoch


def test_a_cached_training_dataset_gives_the_same_batches_for_the_same_seed(tmp_path):
    """A seeded run is repeatable when its images are cached (what small datasets get): the cache is filled
    in file order, then a seeded shuffle orders every epoch."""
    paths = []
    for i in range(96):
        p = tmp_path / f"{i:02d}.png"
        p.write_bytes(encoded(smooth(20, 20, seed=i), "PNG"))
        paths.append(str(p))

    def epochs(seed):
        ds = make_dataset(paths, np.arange(96) % 4, 4, size=(12, 12), channels=3, batch_size=8, training=True,
                          cache="memory", seed=seed)
        return [np.concatenate([x.numpy().reshape(len(x), -1)[:, :4] for x, _ in ds]).tobytes() for _ in range(3)]

    first = epochs(7)
    assert len(set(first)) == 3  # each epoch reshuffled...
    assert epochs(7) == first  # ...the same way on a rebuilt dataset
    assert epochs(8) != first


def test_a_file_broken_after_the_audit_is_named_in_the_error(tmp_path):
    import tensorflow as tf

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(encoded(smooth(20, 20), "PNG"))
    bad.write_bytes(b"\x89PNG not really")
    ds = make_dataset([str(good), str(bad)], [0, 1], 2, size=(8, 8), channels=3, batch_size=2)
    with pytest.raises(tf.errors.OpError, match="bad.png could not be decoded"):
        list(ds)


def test_datasets_run_without_the_autotuner(tmp_path):
    """Its thread made each per-epoch iterator teardown cost 20-650 ms (bench/autotune.py)."""
    p = tmp_path / "a.png"
    p.write_bytes(encoded(smooth(8, 8), "PNG"))
    for training, cache in ((True, "memory"), (True, "none"), (False, "none")):
        ds = make_dataset([str(p)] * 4, [0, 1, 0, 1], 2, size=(8, 8), channels=3, batch_size=2, training=training, cache=cache)
        assert ds.options().autotune.enabled is False
        assert sum(len(x) for x, _ in ds) == 4
