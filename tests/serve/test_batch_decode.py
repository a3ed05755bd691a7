"""Serving decodes a micro-batch's encoded images in one TensorFlow call: same pixels as one decode per
file, a bad file fails only its own request, and the PNG orientation shortcut reads what Pillow reads."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import numpy as np
import pytest


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _files() -> list[bytes]:
    """PNG, JPEG (small, and big enough for the reduced-scale DCT decode), GIF, grayscale and RGBA PNG."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 240 * 320, dtype=np.float32).reshape(240, 320)
    photo = np.clip(np.stack([ramp, ramp[::-1], 255 - ramp], -1)
                    + rng.normal(0, 20, (240, 320, 3)), 0, 255).astype(np.uint8)
    return [
        _encode(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "PNG"),
        _encode(photo[:40, :50], "JPEG", quality=90),
        _encode(photo, "JPEG", quality=85),  # 240x320 -> 24x24: decoded at 1/8 scale
        _encode(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), "GIF"),
        _encode(rng.integers(0, 256, (33, 17), dtype=np.uint8), "PNG"),
        _encode(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8), "PNG"),
    ]


@pytest.mark.parametrize("channels,resize", [(3, "stretch"), (3, "crop"), (3, "pad"), (1, "stretch")])
def test_batched_decode_equals_one_decode_per_file(channels, resize):
    from kiln.tasks.image.data.pipeline import decode_bytes
    from kiln.tasks.image.data.prepare import ImageSpec
    from kiln.tasks.image.serve.inputs import BatchDecoder

    spec = ImageSpec(24, 24, channels, resize)
    files = _files()
    decoder = BatchDecoder(spec)
    pixels, failed = decoder(files)
    assert failed == {} and pixels.shape == (len(files), 24, 24, channels) and pixels.dtype == np.uint8
    for i, data in enumerate(files):
        np.testing.assert_array_equal(pixels[i], decode_bytes(data, (24, 24), channels, resize), err_msg=f"file {i}")
    one, _ = decoder(files[2:3])  # a batch of one (batching off) runs the same graph
    np.testing.assert_array_equal(one[0], pixels[2])


def test_a_file_that_fails_to_decode_fails_only_its_own_request():
    from kiln.tasks.image.data.pipeline import decode_bytes
    from kiln.tasks.image.data.prepare import ImageSpec
    from kiln.serve.batching import MicroBatcher
    from kiln.tasks.image.serve.inputs import ApiError, BatchDecoder, prepare_images

    spec = ImageSpec(24, 24, 3, "stretch")
    files = _files()
    truncated = files[0][:80]  # a PNG header that opens, pixel data cut off: only the full decode fails
    assert prepare_images([truncated], spec, 10**6) == [truncated]
    calls = []

    def predict(x):  # (n, 24, 24, 3) -> (n, 1): each image's pixel sum, so a mixed-up row would show
        calls.append(len(x))
        return x.reshape(len(x), -1).sum(1, keepdims=True).astype(np.float32)

    pixels = np.stack([decode_bytes(f, (24, 24), 3, "stretch") for f in files])
    requests = [[files[0]], [truncated], pixels[1:3], [files[3], pixels[4]], [files[5], truncated]]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=32, max_delay_ms=100, decode=BatchDecoder(spec))
        await batcher.start()
        out = await asyncio.gather(*(batcher.predict(r) for r in requests), return_exceptions=True)
        await batcher.stop()
        return out

    out = asyncio.run(scenario())
    assert calls == [8]  # one model call for the five requests
    sums = pixels.reshape(len(files), -1).sum(1).astype(np.float32)
    np.testing.assert_array_equal(out[0][:, 0], sums[[0]])
    np.testing.assert_array_equal(out[2][:, 0], sums[[1, 2]])
    np.testing.assert_array_equal(out[3][:, 0], sums[[3, 4]])
    for bad in (out[1], out[4]):
        assert isinstance(bad, ApiError) and bad.status == 400 and "could not be decoded" in bad.message


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _with_chunk_after_pixels(png: bytes, kind: bytes, body: bytes) -> bytes:
    end = png.rindex(b"IEND") - 4  # the IEND chunk's length field
    return png[:end] + _png_chunk(kind, body) + png[end:]


def test_png_orientation_shortcut_reads_what_pillow_reads():
    from PIL import Image, PngImagePlugin

    from kiln.tasks.image.serve.inputs import _exif, check_image

    base = _encode(np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta tiff:Orientation="3"/>', zip=True)
    cases = {
        "plain": (base, None),
        "eXIf before the pixels": (_encode(np.zeros((12, 10, 3), np.uint8), "PNG", exif=exif.tobytes()), 6),
        "eXIf after the pixels": (_with_chunk_after_pixels(base, b"eXIf", exif.tobytes()), 6),
        "compressed XMP": (_encode(np.zeros((12, 10, 3), np.uint8), "PNG", pnginfo=xmp), 3),
        "XMP after the pixels": (_with_chunk_after_pixels(base, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00"
                                                          b'<x tiff:Orientation="8"/>'), 8),
    }
    for name, (data, want) in cases.items():
        with Image.open(io.BytesIO(data)) as img:
            fast = _exif(img, data).get(0x0112)
        with Image.open(io.BytesIO(data)) as img:
            slow = img.getexif().get(0x0112)
        assert fast == slow == want, name
        assert check_image(data, 10**6) is (want is not None), name  # a rotated PNG is decoded by Pillow, as in training
