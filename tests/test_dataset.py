"""Tests for ganmodels.dataset: image preparation, dataset building, loading and batch sampling."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganmodels.dataset import (
    IMAGE_SUFFIXES,
    BuildProgress,
    BuildReport,
    DatasetError,
    ImageDataset,
    balance_weights,
    build_dataset,
    concept_keys,
    group_sizes,
    list_sources,
    load_images,
    load_names,
    prepare_image,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def solid(color: tuple[int, ...], size: tuple[int, int] = (8, 8), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def quadrants(size: int = 8) -> Image.Image:
    """RGB square: top-left red, top-right green, bottom-left blue, bottom-right white."""
    a = np.zeros((size, size, 3), np.uint8)
    h = size // 2
    a[:h, :h], a[:h, h:], a[h:, :h], a[h:, h:] = RED, GREEN, BLUE, WHITE
    return Image.fromarray(a)


def asymmetric(seed: int, size: int = 8) -> Image.Image:
    a = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(a)


def run(gen) -> tuple[list[BuildProgress], BuildReport]:
    """Drain a build, check the protocol (progress items, then exactly one report last) and return both."""
    items = list(gen)
    assert isinstance(items[-1], BuildReport)
    progress = items[:-1]
    assert progress and all(isinstance(p, BuildProgress) for p in progress)
    return progress, items[-1]


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- prepare_image


def test_rgba_transparent_pixels_become_background_exactly() -> None:
    a = np.zeros((8, 8, 4), np.uint8)
    a[:, :4] = (12, 200, 34, 0)  # colour hidden under alpha 0
    a[:, 4:6] = (200, 10, 20, 255)  # opaque
    a[:, 6:] = (0, 0, 0, 128)  # half-transparent black
    img = Image.fromarray(a)
    assert img.mode == "RGBA"
    out = prepare_image(img, resolution=8)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert (out[:, :4] == 255).all()
    assert (out[:, 4:6] == (200, 10, 20)).all()
    expected = round(255 * (1 - 128 / 255))  # black at alpha 128 over white
    assert np.abs(out[:, 6:].astype(int) - expected).max() <= 1

    black = prepare_image(img, resolution=8, background=(0, 0, 0))
    assert (black[:, :4] == 0).all()
    assert (black[:, 4:6] == (200, 10, 20)).all()


def test_fully_transparent_image_is_background_after_resizing() -> None:
    a = np.random.default_rng(0).integers(0, 256, (40, 40, 4), dtype=np.uint8)
    a[..., 3] = 0
    out = prepare_image(Image.fromarray(a), resolution=16, background=(10, 20, 30))
    assert out.shape == (16, 16, 3)
    assert (out == (10, 20, 30)).all()


@pytest.mark.parametrize(
    ("mode", "color"),
    [("P", 3), ("LA", (90, 255)), ("I;16", 30000), ("CMYK", (0, 255, 255, 0)), ("L", 77), ("1", 1), ("F", 12.0)],
)
def test_any_mode_gives_uint8_rgb(mode: str, color) -> None:
    img = Image.new(mode, (12, 10), color)
    out = prepare_image(img, resolution=6)
    assert out.dtype == np.uint8
    assert out.shape == (6, 6, 3)
    assert out.flags.c_contiguous


def test_mode_conversions_keep_colours(tmp_path: Path) -> None:
    # palette with a transparent index, through a real PNG file
    p = Image.new("P", (8, 8), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    p.paste(1, (0, 0, 4, 8))  # left half: index 1 (blue)
    p.save(tmp_path / "p.png", transparency=1)
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "P"
        out = prepare_image(img, resolution=8)
    assert (out[:, :4] == WHITE).all()  # transparent index -> background
    assert (out[:, 4:] == RED).all()

    # LA: grey with alpha
    la = Image.new("LA", (8, 8), (100, 255))
    la.paste((50, 0), (0, 0, 8, 4))
    la.save(tmp_path / "la.png")
    with Image.open(tmp_path / "la.png") as img:
        assert img.mode == "LA"
        out = prepare_image(img, resolution=8)
    assert (out[:4] == 255).all()
    assert (out[4:] == 100).all()

    # CMYK (TIFF keeps it lossless)
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.tif")
    with Image.open(tmp_path / "c.tif") as img:
        assert img.mode == "CMYK"
        assert (prepare_image(img, resolution=8) == RED).all()


def test_16_bit_greyscale_uses_the_full_range(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 128, 65535, 257 * 7]], dtype=np.uint16).repeat(4, axis=0)  # [4, 4]
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode in ("I;16", "I")
        out = prepare_image(img, resolution=4)
    assert out.shape == (4, 4, 3)
    assert (out[..., 0] == out[..., 2]).all()
    assert out[0, :, 0].tolist() == [0, 128, 255, 7]  # Pillow's own convert would clip to 255 instead


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_6_rotates_clockwise(tmp_path: Path, fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / f"rot.{fmt.lower()}"
    quadrants(32).save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    with Image.open(path) as img:
        out = prepare_image(img, resolution=32).astype(int)
    tol = 0 if fmt == "PNG" else 12

    def close(y: int, x: int, color: tuple[int, int, int]) -> bool:
        return bool(np.abs(out[y - 4 : y + 4, x - 4 : x + 4] - color).max() <= tol)

    # stored top-left (red) is displayed top-right, stored bottom-left (blue) top-left, and so on
    assert close(8, 24, RED)
    assert close(8, 8, BLUE)
    assert close(24, 24, GREEN)
    assert close(24, 8, WHITE)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as img:
        assert img.n_frames == 3
        img.seek(2)  # even when positioned on a later frame
        out = prepare_image(img, resolution=4)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert (out == RED).all()


@pytest.mark.parametrize("wide", [True, False])
def test_centre_crop_of_non_square_image(wide: bool) -> None:
    a = np.zeros((4, 12, 3), np.uint8)
    a[:, :4], a[:, 4:8], a[:, 8:] = RED, GREEN, BLUE
    img = Image.fromarray(a if wide else a.transpose(1, 0, 2).copy())
    out = prepare_image(img, resolution=4)
    assert out.shape == (4, 4, 3)
    assert (out == GREEN).all()


def test_downscale_keeps_content_in_place() -> None:
    out = prepare_image(quadrants(64).resize((64, 64)), resolution=16).astype(int)
    assert out.shape == (16, 16, 3)
    assert np.abs(out[2:6, 2:6] - RED).max() <= 2
    assert np.abs(out[2:6, 10:14] - GREEN).max() <= 2
    assert np.abs(out[10:14, 2:6] - BLUE).max() <= 2


def test_prepare_image_rejects_bad_resolution() -> None:
    with pytest.raises(DatasetError):
        prepare_image(solid(RED), resolution=0)


# ---------------------------------------------------------------- list_sources / build_dataset


def test_list_sources_folder_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.gif", "notes.txt", ".hidden.png", ".git/x.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list_sources(tmp_path) == ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.gif"]
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)


def test_corrupt_and_empty_files_are_skipped_and_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    solid(RED).save(src / "a.png")
    solid(GREEN).save(src / "sub" / "b.jpg", quality=95)
    asymmetric(0).save(src / "d.bmp")
    (src / "empty.png").write_bytes(b"")
    (src / "garbage.png").write_bytes(np.random.default_rng(1).bytes(300))
    asymmetric(5, 64).save(src / "truncated.png")
    (src / "truncated.png").write_bytes((src / "truncated.png").read_bytes()[:60])
    (src / "bomb.png").write_bytes(bomb_png(20_000, 20_000))
    (src / "readme.txt").write_text("not an image")

    progress, report = run(build_dataset(src, resolution=8, out=tmp_path / "d.npz"))
    total = 7
    assert report.count == 3
    assert report.resolution == 8
    assert report.duplicates == 0
    skipped = dict(report.skipped)
    assert set(skipped) == {"empty.png", "garbage.png", "truncated.png", "bomb.png"}
    assert "0 bytes" in skipped["empty.png"]
    assert "decompression bomb" in skipped["bomb.png"]
    assert all(reason for reason in skipped.values())

    assert progress[0].done == 0 and progress[0].total == total
    per_file = [p for p in progress if p.done > 0][:total]
    assert [p.done for p in per_file] == list(range(1, total + 1))
    assert all(p.total == total for p in progress)
    assert progress[-1].kept == 3
    assert progress[-1].skipped == report.skipped
    assert [n for n, _ in report.skipped] == sorted(skipped)  # reported in source order

    with np.load(tmp_path / "d.npz") as z:
        assert z["names"].tolist() == ["a.png", "d.bmp", "sub/b.jpg"]
        images = z["images"]
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    assert (images[0] == RED).all()
    assert np.array_equal(images[1], np.asarray(asymmetric(0)))


def test_zip_source_matches_folder_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    asymmetric(1).save(src / "a.png")
    asymmetric(2, 16).save(src / "sub" / "b.webp", lossless=True)
    (src / "empty.png").write_bytes(b"")
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(src / "sub" / "b.webp", "sub/b.webp")
        zf.write(src / "a.png", "a.png")
        zf.write(src / "empty.png", "empty.png")
        zf.writestr("readme.txt", "hello")
        zf.writestr("__MACOSX/._a.png", b"resource fork")
        zf.writestr("sub/", b"")

    assert list_sources(archive) == ["a.png", "empty.png", "sub/b.webp"]
    _, from_zip = run(build_dataset(archive, resolution=8, out=tmp_path / "zip.npz"))
    run(build_dataset(src, resolution=8, out=tmp_path / "dir.npz"))
    assert from_zip.count == 2
    assert [n for n, _ in from_zip.skipped] == ["empty.png"]
    assert np.array_equal(load_images(tmp_path / "zip.npz"), load_images(tmp_path / "dir.npz"))


def test_dedup_drops_exact_duplicates_after_resizing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    solid(RED, (16, 16)).save(src / "a.png")
    solid(RED, (16, 16)).save(src / "b.png")  # same file content
    solid(RED, (40, 24)).save(src / "c.png")  # different file, same pixels at 8 px
    solid(GREEN, (16, 16)).save(src / "d.png")

    (src / "more.zip").write_bytes(b"PK")  # a zip or a note in the folder is not read: the report says so
    (src / "notes.txt").write_text("x")
    progress, report = run(build_dataset(src, resolution=8, out=tmp_path / "d.npz"))
    assert report.count == 2
    assert report.duplicates == 2 and report.duplicate_of == (("b.png", "a.png"), ("c.png", "a.png"))
    assert report.not_pictures == ("more.zip", "notes.txt")
    assert any("duplicate of a.png" in p.message for p in progress)
    with np.load(tmp_path / "d.npz") as z:
        assert z["names"].tolist() == ["a.png", "d.png"]

    _, report = run(build_dataset(src, resolution=8, out=tmp_path / "all.npz", dedup=False))
    assert report.count == 4
    assert report.duplicates == 0


def test_xflip_doubles_and_appends_mirrors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        asymmetric(10 + i).save(src / f"{i}.png")
    _, plain = run(build_dataset(src, resolution=8, out=tmp_path / "plain.npz"))
    progress, flipped = run(build_dataset(src, resolution=8, out=tmp_path / "flip.npz", xflip=True))
    assert plain.count == 3
    assert flipped.count == 6
    assert progress[-1].kept == 3
    base, x = load_images(tmp_path / "plain.npz"), load_images(tmp_path / "flip.npz")
    assert x.shape == (6, 8, 8, 3)
    assert np.array_equal(x[:3], base)
    assert np.array_equal(x[3:], base[:, :, ::-1])
    assert not np.array_equal(x[3], x[0])
    with np.load(tmp_path / "flip.npz") as z:
        assert z["names"].tolist() == ["0.png", "1.png", "2.png"] * 2
        assert z["flipped"].tolist() == [False] * 3 + [True] * 3


@pytest.mark.parametrize("xflip", [False, True])
def test_npz_and_folder_outputs_reload_identically(tmp_path: Path, xflip: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        asymmetric(20 + i, 12).save(src / f"{i}.png")
    Image.new("RGBA", (10, 10), (0, 0, 255, 0)).save(src / "clear.png")
    _, r1 = run(build_dataset(src, resolution=8, out=tmp_path / "d.npz", xflip=xflip))
    _, r2 = run(build_dataset(src, resolution=8, out=tmp_path / "folder", xflip=xflip))
    assert r1.out == tmp_path / "d.npz" and r2.out == tmp_path / "folder"
    a, b = load_images(tmp_path / "d.npz"), load_images(tmp_path / "folder")
    n = 5 * (2 if xflip else 1)
    assert a.shape == b.shape == (n, 8, 8, 3)
    assert a.dtype == b.dtype == np.uint8
    assert np.array_equal(a, b)
    assert (a[4] == 255).all()  # clear.png (sorted last) -> white
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == sorted(
        [f"{i:06d}.png" for i in range(n)] + ["dataset.json"]
    )
    meta = json.loads((tmp_path / "folder" / "dataset.json").read_text())
    assert meta["resolution"] == 8 and meta["count"] == n and len(meta["names"]) == n
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rebuilding_a_folder_replaces_it_and_refuses_foreign_folders(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        asymmetric(30 + i).save(src / f"{i}.png")
    out = tmp_path / "ds"
    run(build_dataset(src, resolution=8, out=out, xflip=True))
    assert len(load_images(out)) == 6
    run(build_dataset(src, resolution=8, out=out))
    assert len(load_images(out)) == 3
    assert not (out / "000003.png").exists()  # nothing stale left from the bigger build

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(DatasetError, match="refusing"):
        build_dataset(src, resolution=8, out=foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    with pytest.raises(DatasetError, match="inside the source"):
        build_dataset(src, resolution=8, out=src / "ds")


def test_stopping_a_build_early_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        asymmetric(40 + i).save(src / f"{i}.png")
    gen = build_dataset(src, resolution=8, out=tmp_path / "d.npz")
    next(gen), next(gen)
    gen.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_max_images_caps_distinct_images(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        asymmetric(50 + i).save(src / f"{i}.png")
    _, report = run(build_dataset(src, resolution=8, out=tmp_path / "d.npz", max_images=2, xflip=True))
    assert report.count == 4
    with np.load(tmp_path / "d.npz") as z:
        assert z["names"].tolist() == ["0.png", "1.png"] * 2


def test_nothing_readable_raises_dataset_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    (src / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        list(build_dataset(src, resolution=8, out=tmp_path / "d.npz"))
    assert not (tmp_path / "d.npz").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    with pytest.raises(DatasetError, match="no image files"):
        list(build_dataset(empty, resolution=8, out=tmp_path / "e.npz"))
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset(tmp_path / "missing", resolution=8, out=tmp_path / "m.npz")


def test_load_images_rejects_non_datasets(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    solid(RED).save(pics / "a.png")
    with pytest.raises(DatasetError, match=r"dataset\.json"):
        load_images(pics)
    with pytest.raises(DatasetError):
        load_images(pics / "a.png")
    with pytest.raises(DatasetError, match="does not exist"):
        load_images(tmp_path / "nope.npz")
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 8, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="shape"):
        load_images(tmp_path / "wrong.npz")
    np.savez(tmp_path / "noimages.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="images"):
        load_images(tmp_path / "noimages.npz")


# ---------------------------------------------------------------- ImageDataset


@pytest.fixture
def images() -> np.ndarray:
    x = np.random.default_rng(7).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)  # [N, R, R, 3]
    x[0] = 0
    x[1] = 255
    return x


def test_batch_is_exact_and_deterministic(images: np.ndarray) -> None:
    ds = ImageDataset(images)
    assert len(ds) == 5 and ds.resolution == 8
    b = ds.batch(np.array([3, 0, 1, 3]))
    assert b.shape == (4, 3, 8, 8) and b.dtype == torch.float32
    expected = torch.from_numpy(images[3].astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.equal(b[0], expected)
    assert torch.equal(b[0], b[3])
    assert (b[1] == -1).all() and (b[2] == 1).all()
    f = ds.batch([3, 3], flip=np.array([False, True]))
    assert torch.equal(f[1], f[0].flip(-1))
    assert not torch.equal(f[0], f[1])


@pytest.mark.parametrize("xflip", [False, True])
def test_sample_is_deterministic_for_a_seeded_generator(images: np.ndarray, xflip: bool) -> None:
    ds = ImageDataset(images, xflip=xflip)
    torch.manual_seed(123)
    global_state = torch.random.get_rng_state()
    a = ds.sample(16, generator=torch.Generator().manual_seed(1))
    b = ds.sample(16, generator=torch.Generator().manual_seed(1))
    c = ds.sample(16, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.random.get_rng_state(), global_state)  # only the given generator is used
    assert a.shape == (16, 3, 8, 8) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1

    everything = ds.batch(np.arange(5))  # [5, 3, 8, 8]
    mirrored = everything.flip(-1)
    big = ds.sample(64, generator=torch.Generator().manual_seed(3))
    plain = [bool((everything == s).all(dim=(1, 2, 3)).any()) for s in big]
    flipped = [bool((mirrored == s).all(dim=(1, 2, 3)).any()) for s in big]
    assert all(p or f for p, f in zip(plain, flipped))
    # images 0 and 1 are constant, hence their own mirrors; count only the asymmetric ones
    asym = [not (p and f) for p, f in zip(plain, flipped)]
    n_flipped = sum(f for f, a in zip(flipped, asym) if a)
    if xflip:
        assert 0 < n_flipped < sum(asym)
    else:
        assert n_flipped == 0


def test_dataset_from_path_and_validation(tmp_path: Path, images: np.ndarray) -> None:
    np.savez(tmp_path / "d.npz", images=images)
    ds = ImageDataset.from_path(tmp_path / "d.npz", xflip=True)
    assert len(ds) == 5 and ds.resolution == 8 and ds.xflip
    assert torch.equal(ds.batch([2]), ImageDataset(images).batch([2]))
    with pytest.raises(DatasetError):
        ImageDataset(images.astype(np.float32))
    with pytest.raises(DatasetError):
        ImageDataset(images[:, :, :4])
    with pytest.raises(IndexError):
        ds.batch([5])


# ---------------------------------------------------------------- balanced sampling


def test_concept_keys_group_skin_tones_and_presentation_selectors_only() -> None:
    names = [
        "1f44b.webp",
        "1f44b-1f3fd.webp",
        "1F44B-1F3FF.WEBP",
        "emoji_u1f44b_1f3fb.png",
        "2764-fe0f.webp",
        "2764.png",
        "1f469-200d-1f4bb.webp",  # a woman technologist: not a variant of a woman
        "1f469.webp",
        "cat-fe0f.png",  # not made of code points: kept whole
        "photo_001.jpg",
    ]
    keys = concept_keys(names)
    assert keys[:4] == ["1f44b"] * 4
    assert keys[4] == keys[5] == "2764"
    assert keys[6] == "1f469-200d-1f4bb" and keys[7] == "1f469"
    assert keys[8] == "cat-fe0f" and keys[9] == "photo_001"
    assert concept_keys(["1f3fb.webp"]) == ["1f3fb"]  # a skin-tone swatch alone keeps its name
    assert concept_keys(["a/1f44b-1f3fd.png", "b\\1f44b.png", "a/x.png", "b/x.png"]) == [
        "a/1f44b",
        "b/1f44b",
        "a/x",
        "b/x",
    ]


def test_balance_weights_follow_group_sizes() -> None:
    keys = ["a"] * 6 + ["b", "c"]
    sizes = group_sizes(keys)
    assert sizes.dtype == np.int64 and sizes.tolist() == [6] * 6 + [1, 1]
    w1 = balance_weights(keys, power=1.0)
    assert w1.shape == (8,) and w1.dtype == np.float64
    assert np.isclose(w1.sum(), 1.0)
    assert np.isclose(w1[:6].sum(), 1 / 3) and np.isclose(w1[6], 1 / 3) and np.isclose(w1[7], 1 / 3)
    assert np.allclose(balance_weights(keys, power=0.0), 1 / 8)
    half = balance_weights(keys, power=0.5)
    assert np.isclose(half[:6].sum() / half[6], 6**0.5)  # a group of 6 is drawn sqrt(6) x as often as a single
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="power"):
            balance_weights(keys, power=bad)
    with pytest.raises(ValueError):
        balance_weights([], power=1.0)


def test_weighted_sampling_draws_as_often_as_the_weights_say(images: np.ndarray) -> None:
    plain = ImageDataset(images, labels=np.array([0, 0, 1, 1, 1]))
    assert plain.weights is None
    assert np.allclose(plain.class_frequencies(), [0.4, 0.6])
    w = np.array([0.0, 1.0, 1.0, 2.0, 4.0])
    ds = ImageDataset(images, labels=np.array([0, 0, 1, 1, 1]), weights=w)
    assert np.allclose(ds.weights, w / 8)
    assert np.allclose(ds.class_frequencies(), [1 / 8, 7 / 8])
    x, labels = ds.sample_labeled(4000, generator=torch.Generator().manual_seed(5))
    everything = ds.batch(np.arange(5))  # [5, 3, 8, 8]
    which = (x[:, None] == everything[None]).flatten(2).all(2).float().argmax(1)  # [4000] index of each draw
    counts = np.bincount(which.numpy(), minlength=5)
    assert counts[0] == 0
    assert np.allclose(counts / 4000, w / 8, atol=0.03)
    assert torch.equal(labels, torch.tensor([0, 0, 1, 1, 1])[which])
    again = ds.sample(16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, x[:16])  # the same generator gives the same draws
    # unweighted draws are those of torch.randint, as before weights existed; weighted=False draws so too
    idx = torch.randint(5, (16,), generator=torch.Generator().manual_seed(9))
    assert torch.equal(plain.sample(16, generator=torch.Generator().manual_seed(9)), plain.batch(idx))
    assert torch.equal(ds.sample(16, generator=torch.Generator().manual_seed(9), weighted=False), plain.batch(idx))
    for bad in (np.ones(4), np.array([1.0, -1, 1, 1, 1]), np.zeros(5), np.array([1.0, np.nan, 1, 1, 1])):
        with pytest.raises(DatasetError, match="weights"):
            ImageDataset(images, weights=bad)


def test_load_names_of_npz_and_folder_datasets(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["1f44b.png", "1f44b-1f3fd.png", "2764-fe0f.png"]):
        Image.new("RGB", (16, 16), (40 * i, 200, 30)).save(src / name)
    for out in (tmp_path / "d.npz", tmp_path / "folder"):
        for _ in build_dataset(src, resolution=8, out=out):
            pass
        names = load_names(out)
        assert sorted(names) == ["1f44b-1f3fd.png", "1f44b.png", "2764-fe0f.png"]
        assert len(names) == len(load_images(out))
    np.savez(tmp_path / "bare.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    assert load_names(tmp_path / "bare.npz") is None
    np.savez(tmp_path / "odd.npz", images=np.zeros((2, 8, 8, 3), np.uint8), names=np.array(["a"]))
    with pytest.raises(DatasetError, match="names"):
        load_names(tmp_path / "odd.npz")


def test_one_per_concept_keeps_the_plain_variant_of_each_emoji():
    from ganmodels.dataset import one_per_concept

    names = ["1f44b-1f3fd.webp", "1f44b.webp", "2764-fe0f.webp", "a/x.png", "b/x.png", "1f44b-1f3fb.webp", "x.png"]
    # 1f44b: its plain file (1), not the skin tones; 2764 has only a presentation variant; folders never merge
    assert one_per_concept(names).tolist() == [1, 2, 3, 4, 6]
    assert one_per_concept(["emoji_u1f44b_1f3fd.png", "emoji_u1f44b.png"]).tolist() == [1]
