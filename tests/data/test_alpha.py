"""Transparency: composited onto data.alpha_background (white by default) the same way in training,
evaluation, the server and the audit, whatever colour hides under alpha 0; channels=4 keeps alpha."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from alpha_images import KINDS, UNDER, expected, glyph_mask, transparent  # noqa: E402

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "#336699": (0x33, 0x66, 0x99)}


@pytest.mark.parametrize("under", UNDER)
@pytest.mark.parametrize("kind", KINDS)
def test_decode_composites_onto_the_background(kind, under):
    from kiln.tasks.image.data.pipeline import decode_bytes

    data = transparent(kind, under)
    for name, rgb in BACKGROUNDS.items():
        got = decode_bytes(data, (16, 16), 3, "stretch", background=name)
        assert np.abs(got.astype(int) - expected(kind, rgb)).max() <= 1, (kind, under, name)
    grey = decode_bytes(data, (16, 16), 1, "stretch", background="white")
    assert grey.shape == (16, 16, 1) and (grey[~glyph_mask()[..., None] & (np.arange(16)[:, None, None] < 12)] == 255).all()
    rgba = decode_bytes(data, (16, 16), 4, "stretch")
    assert rgba.shape == (16, 16, 4)
    assert (rgba[..., 3][glyph_mask()] == 255).all() and (rgba[:4, :, 3] == 0).all()  # alpha kept as it was


def test_a_run_saved_before_compositing_keeps_dropping_alpha():
    from kiln.tasks.image.data.pipeline import decode_bytes
    from kiln.tasks.image.data.prepare import ImageSpec

    old = ImageSpec.from_dict({"height": 16, "width": 16, "channels": 3, "resize": "stretch"})
    assert old.alpha_background is None
    got = decode_bytes(transparent("rgba_png", "black"), (16, 16), 3, "stretch", background=old.alpha_background)
    assert (got[:4] == 0).all()  # the hidden black, as those runs were trained
    new = ImageSpec(16, 16, 3, "stretch")
    assert ImageSpec.from_dict(new.to_dict()) == new and new.to_dict()["alpha_background"] == "#ffffff"


def test_config_key_and_channels_4(tmp_path):
    from kiln.config import load_config
    from kiln.tasks.image.data.prepare import resolve_spec
    from kiln.errors import KilnError

    cfg = load_config(overrides={"data.alpha_background": "black", "data.channels": 4})
    facts = __import__("pandas").DataFrame({"ok": [True], "width": [16], "height": [16], "mode": ["RGBA"]})
    from kiln.tasks.image.config import image_data

    spec = resolve_spec(image_data(cfg), facts)
    assert (spec.channels, spec.alpha_background) == (4, "#000000")
    assert resolve_spec(image_data(load_config()), facts).alpha_background == "#ffffff"  # white by default
    with pytest.raises(KilnError, match=r"image.alpha_background=blurple; .*colour"):
        load_config(overrides={"data.alpha_background": "blurple"})


def test_training_evaluation_and_server_see_the_same_pixels(tmp_path):
    """make_dataset (training and evaluation), the server's batch decoder and its one-file decode agree."""
    from kiln.tasks.image.data import alpha
    from kiln.tasks.image.data.pipeline import make_dataset
    from kiln.tasks.image.data.prepare import ImageSpec
    from kiln.tasks.image.serve.inputs import BatchDecoder, decode_image

    paths, blobs = [], []
    for kind in KINDS:
        for under in UNDER:
            data = transparent(kind, under)
            path = tmp_path / f"{kind}_{under}.{'gif' if kind == 'gif' else 'webp' if 'webp' in kind else 'png'}"
            path.write_bytes(data)
            paths.append(str(path))
            blobs.append(data)
    for background in ("#ffffff", "#336699"):
        spec = ImageSpec(16, 16, 3, "stretch", background)
        ds = make_dataset(paths, np.zeros(len(paths), int), 2, size=spec.size, channels=3, batch_size=64,
                          background=spec.alpha_background)
        trained = next(iter(ds))[0].numpy()
        served, failed = BatchDecoder(spec)(blobs)
        assert not failed and (served == trained).all()
        assert all((decode_image(b, spec, 10_000) == trained[i]).all() for i, b in enumerate(blobs))
        outside = trained[:, 0, 0]
        assert (outside == alpha.background_rgb(background)).all(), background


def test_symbolic_icons_no_longer_reach_the_model_black(tmp_path):
    """The issue's case: a glyph drawn only in alpha over RGB 0 used to decode as an all-black image."""
    from kiln.tasks.image.data.pipeline import make_dataset

    paths = []
    for i in range(4):
        a = np.zeros((24, 24), np.uint8)
        a[4 + i:12 + i, 4:20] = 255
        path = tmp_path / f"icon{i}.png"
        Image.fromarray(np.dstack([np.zeros((24, 24, 3), np.uint8), a]), "RGBA").save(path)
        paths.append(str(path))
    images = next(iter(make_dataset(paths, np.zeros(4, int), 2, size=(24, 24), channels=3, batch_size=4)))[0].numpy()
    assert images.mean() > 150 and images.std() > 50  # a black glyph on white, different for each icon
    assert len({im.tobytes() for im in images}) == 4


def test_shards_keep_alpha_for_the_reading_run(tmp_path):
    """A file converted through Pillow (EXIF-rotated) keeps its alpha in the shard, so the run reading the
    shards composites it onto its own background."""
    from kiln.tasks.image.data.pipeline import decode_bytes
    from kiln.tasks.image.data.records import _encoded

    img = Image.open(io.BytesIO(transparent("rgba_png", "random")))
    exif = img.getexif()
    exif[0x0112] = 3  # rotated 180
    path = tmp_path / "rotated.png"
    img.save(path, exif=exif.tobytes())
    stored = _encoded(str(path), True, 3)
    assert Image.open(io.BytesIO(stored)).mode == "RGBA"
    got = decode_bytes(stored, (16, 16), 3, "stretch", background="black")
    assert np.abs(np.rot90(got, 2).astype(int) - expected("rgba_png", (0, 0, 0))).max() <= 1


def test_audit_says_what_happens_to_transparency(tmp_path):
    from kiln.tasks.image.data.audit import audit
    from kiln.tasks.image.data.audit_report import thumbnail

    folder = tmp_path / "data" / "icons"
    folder.mkdir(parents=True)
    a = np.zeros((32, 32), np.uint8)
    a[8:24, 8:24] = 255
    Image.fromarray(np.dstack([np.zeros((32, 32, 3), np.uint8), a]), "RGBA").save(folder / "symbolic.png")
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, np.full((32, 32), 200, np.uint8)]), "RGBA").save(folder / "photo.png")
    (tmp_path / "data" / "other").mkdir()
    (tmp_path / "data" / "other" / "glyph.gif").write_bytes(transparent("gif", "black"))
    report = audit(tmp_path / "data", options={"min_side": 8}, progress=False, write=False)
    kinds = {(Path(p["path"]).name, p["kind"]): p["detail"] for p in report["problems"]}
    assert set(kinds) == {("symbolic.png", "alpha"), ("symbolic.png", "alpha_only"), ("photo.png", "alpha"),
                          ("glyph.gif", "alpha")}
    assert "composites it onto white" in kinds[("photo.png", "alpha")]
    assert "drawn only in the alpha channel" in kinds[("symbolic.png", "alpha_only")]
    on_black = audit(tmp_path / "data", options={"min_side": 8, "alpha_background": "black"}, progress=False, write=False)
    detail = next(p["detail"] for p in on_black["problems"] if p["kind"] == "alpha_only")
    assert "blank too" in detail  # black glyph on black: nothing left to see
    uri = thumbnail(str(folder / "symbolic.png"))
    import base64

    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert shown[2, 2].min() > 240 and shown[16, 16].max() < 15  # white around, the black glyph inside


def test_the_run_carries_its_background_to_the_server(tiny_run):
    from kiln.serve.model import load_served

    assert tiny_run.spec.alpha_background == "#ffffff"
    assert load_served(tiny_run.path, None).spec.alpha_background == "#ffffff"
