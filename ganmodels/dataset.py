"""Training data: turn a folder or .zip of pictures into a square uint8 dataset, and serve batches from it.

Two on-disk layouts, both written by :func:`build_dataset` and read by :func:`load_images`:

- ``*.npz``: ``images`` uint8 [N, R, R, 3], ``names`` str [N] (source file of each image) and ``flipped`` bool [N]
  (True for the mirrored copies added by ``xflip``). Plain arrays, loaded with ``allow_pickle=False``.
- any other path: a folder of ``000000.png``, ``000001.png`` ... plus ``dataset.json`` with ``format``,
  ``resolution``, ``count``, ``xflip``, ``names`` and ``flipped`` (one entry per PNG, in file order).

Either may carry class labels (``labels`` int64 [N] in the npz, a ``labels`` list in dataset.json), written by
:func:`save_labels` (e.g. ``ganmodels dataset cluster``) and used by conditional training.

With ``xflip=True`` the build stores every kept image twice: first the N originals in source order, then their N
horizontal mirrors in the same order, so ``images[N + i] == images[i][:, ::-1]`` and the first N images equal a
build without ``xflip``.

Building is a generator (one :class:`BuildProgress` per file, then a :class:`BuildReport`), so the GUI and the CLI
drive it the same way and can stop it between files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "BuildProgress",
    "BuildReport",
    "DatasetError",
    "ImageDataset",
    "balance_weights",
    "build_dataset",
    "concept_keys",
    "group_sizes",
    "list_sources",
    "load_images",
    "load_labels",
    "load_names",
    "prepare_image",
    "save_labels",
]

#: Lower-case file suffixes that are treated as images (all readable by Pillow's built-in plugins).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".png",
        ".apng",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".gif",
        ".tga",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".ico",
    }
)

DATASET_FORMAT = "gan-editor-dataset/1"
DATASET_JSON = "dataset.json"
#: Members of a .zip larger than this (uncompressed) are skipped instead of being read into memory.
MAX_MEMBER_BYTES = 512 * 1024 * 1024

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class DatasetError(ValueError):
    """A dataset that cannot be built or loaded, with a message meant for the user."""


@dataclass(frozen=True)
class BuildProgress:
    """Progress of :func:`build_dataset`, yielded once per source file."""

    done: int  # files looked at so far
    total: int  # files to look at
    kept: int  # distinct images kept so far (mirrored copies not counted)
    skipped: tuple[tuple[str, str], ...]  # (file name, reason) of unreadable files so far
    message: str = ""


@dataclass(frozen=True)
class BuildReport:
    """Result of :func:`build_dataset`, its last yielded item."""

    out: Path
    count: int  # images stored, mirrored copies included
    resolution: int
    skipped: tuple[tuple[str, str], ...]
    duplicates: int  # exact duplicates (after resizing) that were dropped
    duplicate_of: tuple[tuple[str, str], ...] = ()  # (dropped file, the kept file it repeats)
    not_pictures: tuple[str, ...] = ()  # files of the source that are not pictures (e.g. a .zip in a folder), left out


def _is_hidden(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") for p in parts) or "__MACOSX" in parts


def _has_image_suffix(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _source_files(src: Path) -> list[str] | None:
    """Every non-hidden file of a folder (recursive, '/'-separated relative paths; symlinked folders not followed)
    or of a .zip (member names); None when ``src`` is neither."""
    if src.is_dir():
        names = []
        for root, dirs, files in os.walk(src):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel_root = Path(root).relative_to(src)
            names += [(rel_root / f).as_posix() for f in files]
    elif src.is_file() and src.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(src) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"cannot read zip file {src}: {e}") from e
    else:
        return None
    return sorted(n for n in names if not _is_hidden(n))


def list_other_files(src: str | Path) -> list[str]:
    """Files of a source folder or .zip that :func:`list_sources` leaves out for not being pictures (hidden files
    excepted), so a build can say what it did not read."""
    return [n for n in _source_files(Path(src)) or [] if not _has_image_suffix(n)]


def list_sources(src: str | Path) -> list[str]:
    """Image files of a folder (recursive, as sorted '/'-separated relative paths) or of a .zip (sorted member names).

    Files are picked by suffix (:data:`IMAGE_SUFFIXES`, case-insensitive); hidden files and folders (name starting
    with '.') and macOS ``__MACOSX`` resource forks are left out. Symlinked folders are not followed.
    """
    src = Path(src)
    names = _source_files(src)
    if names is not None:
        return [n for n in names if _has_image_suffix(n)]
    if not src.exists():
        raise DatasetError(f"source {src} does not exist")
    raise DatasetError(f"source {src} must be a folder or a .zip file of images")


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any Pillow mode -> RGB, transparency composited on `background`."""
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255; scale the full 0..65535 range instead.
        a = np.asarray(img).astype(np.float64)  # [H, W]
        img = Image.fromarray(np.round(np.clip(a, 0, 65535) / 257.0).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        base = Image.new("RGBA", img.size, (*background, 255))
        return Image.alpha_composite(base, img).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def prepare_image(
    img: Image.Image, *, resolution: int, background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """One picture -> uint8 [resolution, resolution, 3] RGB.

    Applies the EXIF orientation, takes the first frame of animations, converts any mode to RGB (16-bit greyscale
    scaled from its full range, transparency composited on `background` before resampling so edges get no dark
    fringe), centre-crops to a square and resizes it with Lanczos (reducing_gap=3). Seeks `img` to frame 0.
    """
    _check_resolution(resolution)
    background = _check_background(background)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    img = ImageOps.exif_transpose(img)
    img = _to_rgb(img, background)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    out = img.resize(
        (resolution, resolution),
        Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )
    arr = np.asarray(out, dtype=np.uint8)  # [R, R, 3]
    return np.ascontiguousarray(arr)


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise DatasetError(f"resolution must be a positive integer, got {resolution!r}")


def _check_background(background: Sequence[int]) -> tuple[int, int, int]:
    bg = tuple(int(c) for c in background)
    if len(bg) != 3 or not all(0 <= c <= 255 for c in bg):
        raise DatasetError(f"background must be three integers in 0..255, got {background!r}")
    return bg  # type: ignore[return-value]


def _read_reason(e: BaseException) -> str:
    """A short user-facing reason for a file that could not be read."""
    if isinstance(e, Image.DecompressionBombError):
        return f"too large, refused as a possible decompression bomb ({e})"
    if isinstance(e, UnidentifiedImageError):
        return "not an image Pillow can read (corrupt or unsupported format)"
    msg = str(e).strip() or "no details"
    return f"{type(e).__name__}: {msg}"


def _load_one(opener: _Source, name: str, *, resolution: int, background: tuple[int, int, int]) -> np.ndarray:
    data = opener.read(name)
    if not data:
        raise _Skip("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as img:
        # JPEG only: let libjpeg decode at a reduced scale, never smaller than twice the target.
        img.draft(None, (2 * resolution, 2 * resolution))
        return prepare_image(img, resolution=resolution, background=background)


class _Skip(Exception):
    """A file skipped for a reason that is already user-facing."""


class _Source:
    """Reads the bytes of the members named by list_sources, from a folder or an open zip."""

    def __init__(self, src: Path) -> None:
        self._src = src
        self._zip = zipfile.ZipFile(src) if src.is_file() else None

    def read(self, name: str) -> bytes:
        if self._zip is None:
            path = self._src / name
            size = path.stat().st_size
            if size > MAX_MEMBER_BYTES:
                raise _Skip(f"file too large ({size} bytes)")
            return path.read_bytes()
        info = self._zip.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise _Skip(f"zip member too large ({info.file_size} bytes uncompressed)")
        return self._zip.read(info)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _is_npz(out: Path) -> bool:
    return out.suffix.lower() == ".npz"


def _check_out(out: Path, src: Path) -> None:
    """Refuse outputs that would destroy something that is not a dataset, or feed back into the source."""
    if _is_npz(out):
        if out.is_dir():
            raise DatasetError(f"output {out} is a folder, not an .npz file")
        return
    if out.exists():
        if not out.is_dir():
            raise DatasetError(f"output {out} exists and is not a folder (use a name ending in .npz for one file)")
        if not _is_replaceable_dataset_dir(out):
            raise DatasetError(f"output folder {out} is not empty and is not a dataset folder; refusing to replace it")
    if src.is_dir():
        src_r, out_r = src.resolve(), out.resolve()
        if out_r == src_r or src_r in out_r.parents:
            raise DatasetError(f"output folder {out} is inside the source folder {src}")


def _is_replaceable_dataset_dir(path: Path) -> bool:
    """An empty folder, or one holding only dataset.json and NNNNNN.png files (what build_dataset writes)."""
    for entry in path.iterdir():
        n = entry.name
        if entry.is_dir():
            return False
        if n != DATASET_JSON and not (len(n) == 10 and n.endswith(".png") and n[:6].isdigit()):
            return False
    return True


def build_dataset(
    src: str | Path,
    *,
    resolution: int,
    out: str | Path,
    xflip: bool = False,
    dedup: bool = True,
    background: tuple[int, int, int] = (255, 255, 255),
    max_images: int | None = None,
) -> Iterator[BuildProgress | BuildReport]:
    """Build a dataset from a folder or .zip of images; yields BuildProgress per file, then one BuildReport.

    Every image goes through :func:`prepare_image`. Unreadable, corrupt, empty or oversized files (including
    Pillow's decompression-bomb refusals) are skipped and listed in ``skipped``; they never stop the build.
    ``dedup`` drops images whose resized pixels equal an earlier one. ``xflip`` appends a mirrored copy of every
    kept image (N doubles; originals first, then mirrors, see the module docstring). ``max_images`` caps the number
    of distinct images kept. ``out`` ending in ``.npz`` gives one file, anything else a folder of PNGs; both are
    written under a temporary name and renamed at the end, so a stopped build leaves no partial output.

    Arguments and ``out`` are checked when called; the work happens while iterating. Raises DatasetError when the
    source holds no image file or none could be read.
    """
    src, out = Path(src), Path(out)
    _check_resolution(resolution)
    bg = _check_background(background)
    if max_images is not None and (isinstance(max_images, bool) or max_images < 1):
        raise DatasetError(f"max_images must be a positive integer or None, got {max_images!r}")
    if not (src.is_dir() or (src.is_file() and src.suffix.lower() == ".zip")):
        list_sources(src)  # raises the right DatasetError
    _check_out(out, src)
    return _build(src, resolution=resolution, out=out, xflip=xflip, dedup=dedup, background=bg, max_images=max_images)


def _build(
    src: Path,
    *,
    resolution: int,
    out: Path,
    xflip: bool,
    dedup: bool,
    background: tuple[int, int, int],
    max_images: int | None,
) -> Iterator[BuildProgress | BuildReport]:
    names = list_sources(src)
    total = len(names)
    if total == 0:
        raise DatasetError(f"no image files found in {src} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    skipped: list[tuple[str, str]] = []
    skipped_t: tuple[tuple[str, str], ...] = ()
    seen: dict[bytes, str] = {}
    images: list[np.ndarray] = []  # [R, R, 3] each
    kept_names: list[str] = []
    duplicates: list[tuple[str, str]] = []
    yield BuildProgress(0, total, 0, (), f"found {total} image files")

    source = _Source(src)
    try:
        for done, name in enumerate(names, start=1):
            try:
                arr = _load_one(source, name, resolution=resolution, background=background)
            except _Skip as e:
                skipped.append((name, str(e)))
            except Exception as e:  # any decoder failure skips this one file, never the whole build
                skipped.append((name, _read_reason(e)))
            else:
                key = hashlib.blake2b(arr.tobytes(), digest_size=16).digest()
                if dedup and key in seen:
                    duplicates.append((name, seen[key]))
                    yield BuildProgress(done, total, len(images), skipped_t, f"{name}: duplicate of {seen[key]}")
                    continue
                seen.setdefault(key, name)
                images.append(arr)
                kept_names.append(name)
                yield BuildProgress(done, total, len(images), skipped_t, name)
                if max_images is not None and len(images) >= max_images:
                    break
                continue
            skipped_t = tuple(skipped)
            yield BuildProgress(done, total, len(images), skipped_t, f"skipped {name}: {skipped[-1][1]}")
    finally:
        source.close()

    if not images:
        shown = "; ".join(f"{n}: {r}" for n, r in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise DatasetError(f"none of the {total} image files in {src} could be read: {shown}{more}")

    n = len(images)
    all_names = kept_names + kept_names if xflip else kept_names
    flipped = [False] * n + ([True] * n if xflip else [])
    yield BuildProgress(done, total, n, skipped_t, f"writing {out}")
    if _is_npz(out):
        _write_npz(out, images, all_names, flipped, xflip=xflip)
    else:
        _write_folder(out, images, all_names, flipped, resolution=resolution, xflip=xflip)
    yield BuildReport(
        out,
        len(all_names),
        resolution,
        skipped_t,
        len(duplicates),
        duplicate_of=tuple(duplicates),
        not_pictures=tuple(list_other_files(src)),
    )


def _temp_name(out: Path) -> Path:
    """A hidden sibling of `out` to write to before renaming it into place."""
    return out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")


def _write_npz(out: Path, images: list[np.ndarray], names: list[str], flipped: list[bool], *, xflip: bool) -> None:
    x = np.stack(images)  # [N, R, R, 3]
    if xflip:
        x = np.concatenate([x, x[:, :, ::-1]])  # [2N, R, R, 3]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(out)
    try:
        with open(tmp, "xb") as f:  # unlike mkstemp, honours the umask
            np.savez(f, images=x, names=np.array(names, dtype=str), flipped=np.array(flipped, dtype=bool))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_folder(
    out: Path, images: list[np.ndarray], names: list[str], flipped: list[bool], *, resolution: int, xflip: bool
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(out)
    tmp.mkdir()  # unlike mkdtemp, honours the umask
    try:
        files = [f"{i:06d}.png" for i in range(len(names))]
        for i, arr in enumerate(images):
            Image.fromarray(arr).save(tmp / files[i])
            if xflip:
                Image.fromarray(np.ascontiguousarray(arr[:, ::-1])).save(tmp / files[len(images) + i])
        meta = {
            "format": DATASET_FORMAT,
            "resolution": resolution,
            "count": len(names),
            "xflip": xflip,
            "names": names,
            "flipped": flipped,
        }
        (tmp / DATASET_JSON).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            if not (out.is_dir() and _is_replaceable_dataset_dir(out)):  # it may have changed while we worked
                raise DatasetError(f"output {out} changed during the build and is not a dataset folder; not replaced")
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_images(images: np.ndarray, where: str) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise DatasetError(f"{where}: images must be a uint8 numpy array, got {getattr(images, 'dtype', images)!r}")
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2] or images.shape[0] < 1:
        raise DatasetError(f"{where}: images must have shape [N, R, R, 3] with N >= 1, got {list(images.shape)}")
    return images


def load_images(path: str | Path) -> np.ndarray:
    """uint8 [N, R, R, 3] from an ``.npz`` or a dataset folder written by :func:`build_dataset`."""
    path = Path(path)
    hint = f"build one with: ganmodels dataset build SRC --res 64 --out {path}"
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist; {hint}")
    if path.is_file():
        if not _is_npz(path):
            raise DatasetError(f"{path} is not a dataset (.npz file or dataset folder); {hint}")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z.files:
                    raise DatasetError(f"{path} has no 'images' array (has {z.files}); {hint}")
                images = z["images"]
        except DatasetError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise DatasetError(f"cannot read dataset {path}: {e}") from e
        return _check_images(images, str(path))
    meta_path = path / DATASET_JSON
    if not meta_path.is_file():
        raise DatasetError(f"{path} is a folder without {DATASET_JSON}, not a dataset folder; {hint}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        count, res = int(meta["count"]), int(meta["resolution"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"invalid {meta_path}: {e}") from e
    if count < 1 or res < 1:
        raise DatasetError(f"invalid {meta_path}: count={count}, resolution={res}")
    images = np.empty((count, res, res, 3), dtype=np.uint8)  # [N, R, R, 3]
    for i in range(count):
        f = path / f"{i:06d}.png"
        try:
            with Image.open(f) as img:
                if img.mode != "RGB" or img.size != (res, res):
                    raise DatasetError(f"{f} is {img.mode} {img.size}, expected RGB ({res}, {res})")
                images[i] = np.asarray(img)
        except DatasetError:
            raise
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read {f} of dataset {path}: {e}") from e
    return images


def _check_labels(labels: np.ndarray, count: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != count or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{where}: labels must be {count} integers, got {labels.dtype} {list(labels.shape)}")
    if count and int(labels.min()) < 0:
        raise DatasetError(f"{where}: labels must be >= 0")
    return labels.astype(np.int64)


def load_names(path: str | Path) -> list[str] | None:
    """The source file name of each picture of a dataset (.npz or folder), or None when it does not record them."""
    path = Path(path)
    try:
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                if "names" not in z.files:
                    return None
                names, count = [str(n) for n in z["names"]], len(z["images"])
        else:
            meta = json.loads((path / DATASET_JSON).read_text(encoding="utf-8"))
            if meta.get("names") is None:
                return None
            names, count = [str(n) for n in meta["names"]], int(meta["count"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read the picture names of dataset {path}: {e}") from e
    if len(names) != count:
        raise DatasetError(f"{path}: {len(names)} picture names for {count} pictures")
    return names


#: Code points that make a variant of an emoji rather than another emoji: the five skin tones (Fitzpatrick
#: modifiers U+1F3FB..U+1F3FF) and the text / emoji presentation selectors (U+FE0E, U+FE0F).
_VARIANT_CODE_POINTS = frozenset({"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff", "fe0e", "fe0f"})


def concept_keys(names: Sequence[str]) -> list[str]:
    """A key per picture that variants of one emoji share: the file's path without suffix, lower case, with the
    skin-tone and presentation code points left out of file names made of code points (``"1f44b-1f3fd.webp"`` and
    ``"emoji_u1f44b_1f3fd.png"`` -> ``"1f44b"``). Other names are their own key (mirrored copies of one file share
    it); pictures in different folders never share one."""
    keys = []
    for name in names:
        path = Path(str(name).replace("\\", "/").lower())
        folder = "" if str(path.parent) == "." else path.parent.as_posix() + "/"
        stem = path.stem
        code = stem[len("emoji_u") :] if stem.startswith("emoji_u") else stem  # Noto's file names
        parts = code.replace("_", "-").split("-")
        if all(_is_code_point(p) for p in parts):
            stem = "-".join([p for p in parts if p not in _VARIANT_CODE_POINTS] or parts)
        keys.append(folder + stem)
    return keys


def _is_code_point(token: str) -> bool:
    return 4 <= len(token) <= 6 and all(c in "0123456789abcdef" for c in token)


def one_per_concept(names: Sequence[str]) -> np.ndarray:
    """Indices (int64, ascending) of one picture per emoji (:func:`concept_keys`): its plain variant (no skin tone or
    presentation code point in the file name) when there is one, else the first."""
    chosen: dict[str, tuple[bool, int]] = {}  # key -> (is a variant, index)
    for i, (name, key) in enumerate(zip(names, concept_keys(names))):
        stem = Path(str(name).replace("\\", "/").lower()).stem.removeprefix("emoji_u")
        variant = any(p in _VARIANT_CODE_POINTS for p in stem.replace("_", "-").split("-"))
        if key not in chosen or (chosen[key][0] and not variant):
            chosen[key] = (variant, i)
    return np.array(sorted(i for _, i in chosen.values()), dtype=np.int64)


def group_sizes(keys: Sequence[str]) -> np.ndarray:
    """For each picture, how many pictures share its key (e.g. of :func:`concept_keys`): int64 [N]."""
    _, inverse, counts = np.unique(np.asarray(list(keys), dtype=str), return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.int64).reshape(-1)


def balance_weights(keys: Sequence[str], *, power: float = 1.0) -> np.ndarray:
    """Sampling weights float64 [N] (summing to 1) that show a group of pictures sharing a key less often the more
    pictures it has: each picture weighs ``1 / (pictures with its key) ** power``. 0 = every picture alike,
    1 = every group alike (e.g. one emoji in six skin tones counts as much as an emoji drawn once)."""
    if not 0 <= power <= 1:
        raise ValueError(f"power must be within 0..1, got {power}")
    if not len(keys):
        raise ValueError("no pictures to weigh")
    w = group_sizes(keys).astype(np.float64) ** -power  # [N]
    return w / w.sum()


def load_labels(path: str | Path) -> np.ndarray | None:
    """Class labels int64 [N] of a dataset (.npz or folder), or None when it has none."""
    path = Path(path)
    try:
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                if "labels" not in z.files:
                    return None
                labels, count = z["labels"], len(z["images"])
        else:
            meta = json.loads((path / DATASET_JSON).read_text(encoding="utf-8"))
            if meta.get("labels") is None:
                return None
            labels, count = np.asarray(meta["labels"]), int(meta["count"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read the labels of dataset {path}: {e}") from e
    return _check_labels(labels, count, str(path))


def save_labels(path: str | Path, labels: np.ndarray) -> None:
    """Store class labels (int [N]) in a dataset, replacing any it had; the file is rewritten atomically."""
    path = Path(path)
    images = load_images(path)
    labels = _check_labels(labels, len(images), str(path))
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["labels"] = labels
        tmp = _temp_name(path)
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    meta_path = path / DATASET_JSON
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["labels"] = labels.tolist()
    tmp = _temp_name(meta_path)
    try:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, meta_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_weights(weights: np.ndarray, count: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DatasetError(f"ImageDataset: weights must be {count} finite numbers >= 0, not all 0")
    return w / w.sum()


class ImageDataset:
    """In-memory training images; batches are float32 [B, 3, R, R] in [-1, 1] (x / 127.5 - 1)."""

    def __init__(
        self,
        images: np.ndarray,
        *,
        labels: np.ndarray | None = None,
        xflip: bool = False,
        weights: np.ndarray | None = None,
    ) -> None:
        images = _check_images(images, "ImageDataset")
        if not images.flags.writeable or not images.flags.c_contiguous:
            images = np.array(images, copy=True, order="C")
        self._images = torch.from_numpy(images)  # [N, R, R, 3] uint8
        self._labels = (
            None if labels is None else torch.from_numpy(_check_labels(labels, len(images), "ImageDataset"))
        )  # [N] int64
        self.xflip = xflip
        self._weights = None if weights is None else torch.from_numpy(_check_weights(weights, len(images)))  # [N]

    @classmethod
    def from_path(cls, path: str | Path, *, xflip: bool = False) -> ImageDataset:
        """Load an ``.npz`` or dataset folder with its labels, if any (see :func:`load_images`)."""
        return cls(load_images(path), labels=load_labels(path), xflip=xflip)

    @property
    def images(self) -> np.ndarray:
        """The pictures, uint8 [N, R, R, 3] (a view, do not modify)."""
        return self._images.numpy()

    @property
    def labels(self) -> np.ndarray | None:
        """The class labels, int64 [N], or None."""
        return None if self._labels is None else self._labels.numpy()

    @property
    def num_classes(self) -> int:
        """1 + the largest label (0 without labels)."""
        return 0 if self._labels is None else int(self._labels.max()) + 1

    @property
    def weights(self) -> np.ndarray | None:
        """How often each picture is drawn, float64 [N] summing to 1, or None (all alike)."""
        return None if self._weights is None else self._weights.numpy()

    def class_frequencies(self) -> np.ndarray:
        """Fraction of the drawn pictures in each class (of the pictures, with no ``weights``): float64
        [num_classes]."""
        if self._labels is None:
            return np.zeros(0)
        w = None if self._weights is None else self._weights.numpy()
        counts = np.bincount(self._labels.numpy(), weights=w, minlength=self.num_classes)
        return counts / counts.sum()

    def __len__(self) -> int:
        return self._images.shape[0]

    @property
    def resolution(self) -> int:
        return self._images.shape[1]

    def batch(
        self, indices: np.ndarray | torch.Tensor | Sequence[int], *, flip: np.ndarray | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Images at `indices` as float32 [B, 3, R, R] in [-1, 1]; `flip` (bool [B]) mirrors those horizontally.

        Deterministic: no randomness here, whatever ``xflip`` is.
        """
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)  # [B]
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"indices out of range for a dataset of {n} images")
        x = self._images[idx]  # [B, R, R, 3] uint8 (a copy)
        if flip is not None:
            f = torch.as_tensor(np.asarray(flip), dtype=torch.bool).reshape(-1)  # [B]
            if f.shape != idx.shape:
                raise ValueError(f"flip has {f.numel()} entries for {idx.numel()} indices")
            x[f] = x[f].flip(2)
        return x.permute(0, 3, 1, 2).to(torch.float32).div_(127.5).sub_(1.0).contiguous()  # [B, 3, R, R]

    def sample(self, batch_size: int, *, generator: torch.Generator, weighted: bool = True) -> torch.Tensor:
        """A random batch [B, 3, R, R] float32 in [-1, 1], drawn with replacement using only `generator` (CPU).

        With ``xflip=True`` each image is also mirrored with probability 1/2. With ``weights`` the pictures are
        drawn as often as those say, unless ``weighted=False`` (every picture alike: the draws of a dataset
        without weights, e.g. for metrics against the data as it is).
        """
        return self.sample_labeled(batch_size, generator=generator, weighted=weighted)[0]

    def sample_labeled(
        self, batch_size: int, *, generator: torch.Generator, weighted: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Like :meth:`sample` (same draws from `generator`), plus the pictures' labels [B] int64 (None if none)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self._weights is None or not weighted:
            idx = torch.randint(len(self), (batch_size,), generator=generator)  # [B]
        else:
            idx = torch.multinomial(self._weights, batch_size, replacement=True, generator=generator)  # [B]
        flip = torch.rand(batch_size, generator=generator) < 0.5 if self.xflip else None  # [B]
        return self.batch(idx, flip=flip), (None if self._labels is None else self._labels[idx])
