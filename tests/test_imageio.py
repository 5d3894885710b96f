"""Backend image reading: every common mode opens or fails with a clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganmodels.imageio import (
    ImageReadError,
    ImageTooLargeError,
    downscale_factor,
    float_to_uint8,
    load_image_rgb,
    load_image_rgba,
    load_mask,
    open_image,
    save_png,
)


def _save(tmp_path, im, name):
    p = tmp_path / name
    im.save(p)
    return p


@pytest.mark.parametrize(
    ("mode", "name"),
    [
        ("RGB", "a.png"),
        ("RGBA", "b.png"),
        ("L", "c.png"),
        ("LA", "d.png"),
        ("P", "e.png"),
        ("CMYK", "f.tif"),
        ("I;16", "g.png"),
        ("RGB", "h.jpg"),
        ("RGB", "i.webp"),
        ("RGB", "j.bmp"),
        ("RGB", "k.tiff"),
    ],
)
def test_modes_open_as_float_rgba(tmp_path, mode, name):
    im = Image.new("RGB", (12, 8), (200, 100, 50)).convert(mode)
    arr = load_image_rgba(_save(tmp_path, im, name))
    assert arr.shape == (8, 12, 4) and arr.dtype == np.float32
    assert 0 <= arr.min() and arr.max() <= 1


def test_rgba_on_white_and_16_bit_range(tmp_path):
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.array_equal(load_image_rgb(_save(tmp_path, im, "t.png")), np.ones((4, 4, 3), np.float32))
    arr16 = np.full((4, 4), 65535, np.uint16)
    rgb = load_image_rgb(_save(tmp_path, Image.fromarray(arr16), "w.png"))
    assert np.allclose(rgb, 1.0)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (20, 10), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 5, 5))  # red top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif, quality=95)
    arr = load_image_rgb(p)
    assert arr.shape == (20, 10, 3)
    assert arr[2, -3, 0] > 0.8 and arr[2, -3, 2] < 0.3  # red now at the top-right


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    arr = load_image_rgb(p)
    assert arr[0, 0, 0] > 0.9 and arr[0, 0, 1] < 0.1


@pytest.mark.parametrize("payload", [b"", b"not an image at all", None])
def test_bad_files_give_clear_errors(tmp_path, payload):
    p = tmp_path / "x.png"
    if payload is None:
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="PNG")
        payload = buf.getvalue()[:60]  # truncated
    p.write_bytes(payload)
    with pytest.raises(ImageReadError) as e:
        load_image_rgb(p)
    assert "x.png" in str(e.value)


def test_huge_image_is_refused(tmp_path):
    p = _save(tmp_path, Image.new("L", (300, 300)), "big.png")
    with pytest.raises(ImageReadError, match="limit"):
        open_image(p, max_pixels=10_000)


@pytest.mark.parametrize(("mode", "name"), [("RGB", "big.png"), ("P", "big.gif"), ("RGB", "big.jpg")])
def test_huge_image_opens_downscaled_on_request(tmp_path, mode, name):
    rng = np.random.default_rng(0)
    src = Image.fromarray(rng.integers(0, 256, (200, 310, 3), dtype=np.uint8)).convert(mode)
    p = _save(tmp_path, src, name)
    with pytest.raises(ImageTooLargeError) as info:
        open_image(p, max_pixels=5_000)
    err = info.value
    assert err.size == (310, 200) and err.factor == 4 and err.downscaled_size == (78, 50)
    assert "downscaled to 78x50" in str(err)
    im = open_image(p, max_pixels=5_000, downscale=True)
    assert im.size == (78, 50)
    if name.endswith(".png"):  # a box-filter reduction of the original
        expected = np.asarray(src).astype(np.float64)[:, :308].reshape(50, 4, 77, 4, 3).mean((1, 3))
        assert np.abs(np.asarray(im, np.float64)[:, :77] - expected).max() <= 1.0


@pytest.mark.parametrize(
    ("size", "limit"), [((310, 200), 5_000), ((1000, 1), 10), ((7, 7), 49), ((7, 7), 48), ((4000, 3000), 10**6)]
)
def test_downscale_factor_is_the_smallest_that_fits(size, limit):
    def fits(k: int) -> bool:
        return -(-size[0] // k) * -(-size[1] // k) <= limit

    f = downscale_factor(size, limit)
    assert fits(f) and (f == 1 or not fits(f - 1)), f


def test_masks_white_or_alpha_and_size_check(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:4] = 255
    mask = load_mask(_save(tmp_path, Image.fromarray(m), "m.png"))
    assert mask.dtype == np.float32 and mask[2:4].min() == 1 and mask[4:].max() == 0
    a = np.zeros((8, 8, 4), np.uint8)
    a[5:, :, 3] = 255
    amask = load_mask(_save(tmp_path, Image.fromarray(a, "RGBA"), "a.png"))
    assert amask[5:].min() == 1 and amask[:5].max() == 0
    assert load_mask(tmp_path / "m.png", size=(16, 16)).shape == (16, 16)
    with pytest.raises(ImageReadError, match="does not match"):
        load_mask(tmp_path / "m.png", size=(8, 16))


def test_save_png_round_trip_with_text(tmp_path):
    img = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    p = save_png(tmp_path / "o.png", img, text={"k": "v"})
    back = Image.open(p)
    assert back.text["k"] == "v"
    assert np.array_equal(np.asarray(back), (img * 255 + 0.5).astype(np.uint8))


def test_float_to_uint8_rounds_clips_and_keeps_the_shape():
    rng = np.random.default_rng(0)
    x = rng.random((7, 9, 4), dtype=np.float32) * 1.4 - 0.2  # some values outside [0, 1]
    ref = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    y = float_to_uint8(x)
    assert y.dtype == np.uint8 and y.shape == x.shape
    # every value is the nearest level; only exact halves may round the other way
    assert np.abs(y.astype(int) - np.clip(x, 0, 1) * 255).max() <= 0.5 + 1e-4
    assert (y == ref).mean() > 0.99 and y[x <= 0].max() == 0 and y[x >= 1].min() == 255
    levels = np.arange(256, dtype=np.float32) / 255  # what 8-bit pictures read as: exactly back
    np.testing.assert_array_equal(float_to_uint8(levels), np.arange(256))
    special = float_to_uint8(np.array([np.nan, np.inf, -np.inf, 0.5], np.float64))
    assert special.tolist() == [0, 255, 0, 128]
    for shape in [(2, 3, 4, 5), (5,), (), (0, 3)]:
        assert float_to_uint8(np.full(shape, 0.2)).shape == shape
    np.testing.assert_array_equal(float_to_uint8(np.full((2, 3, 4, 5), 0.2)), 51)
