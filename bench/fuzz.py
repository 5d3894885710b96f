"""Fuzz the input parsers with hypothesis: image loading, mask handling, checkpoint loading, .ora reading.
Every input must either load or raise the module's documented error type; anything else is a crash.

    python bench/fuzz.py [--cases 1000]
Prints cases run and crashes found per target.
"""

from __future__ import annotations

import argparse
import io
import pickle
import tempfile
import traceback
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ganmodels.imageio import ImageReadError, load_image_rgb, load_mask
from ganmodels.importers import load_any
from ganmodels.inpainting import InpaintError, check_inputs
from ganmodels.modelfile import ModelFileError
from ganmodels.ora import OraError, read_ora

TMP = Path(tempfile.mkdtemp(prefix="gan-fuzz-"))


def _valid_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buf, format="PNG")
    return buf.getvalue()


SEEDS = {
    "png": _valid_png(),
    "pickle": pickle.dumps({"G_ema": None, "x": [1, 2, 3]}, protocol=2),
}


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        if b:
            b[pos % len(b)] = val
    return bytes(b[: max(0, len(b) - cut)])


def blobs(seed: bytes, *, max_random: int, max_edits: int, max_cut: int) -> st.SearchStrategy[bytes]:
    """Random bytes, or ``seed`` with a few bytes overwritten and its tail cut."""
    edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=max_edits)
    return st.one_of(st.binary(max_size=max_random), st.builds(mutate, st.just(seed), edits, st.integers(0, max_cut)))


def run(name: str, test, cases: int) -> None:
    crashes: list[str] = []
    count = [0]

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def wrapped(data):
        count[0] += 1
        try:
            test(data)
        except Exception:  # anything not expected is a crash to report
            crashes.append(traceback.format_exc(limit=3))

    wrapped()
    print(f"{name:>12}: {count[0]} cases, {len(crashes)} crashes", flush=True)
    for c in crashes[:3]:
        print("    " + c.replace("\n", "\n    "))


def fuzz_image(data) -> None:
    blob = data.draw(blobs(SEEDS["png"], max_random=300, max_edits=8, max_cut=60))
    p = TMP / "f.png"
    p.write_bytes(blob)
    try:
        load_image_rgb(p)
    except ImageReadError:
        pass


def fuzz_mask(data) -> None:
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    mh, mw = data.draw(st.integers(0, 12)), data.draw(st.integers(0, 12))
    vals = data.draw(st.sampled_from([np.nan, -1.0, 0.0, 0.5, 1.0, 7.0, np.inf]))
    image = np.full((h, w, data.draw(st.sampled_from([1, 3, 4]))), 0.5, np.float32)
    mask = np.full((mh, mw), vals, np.float32)
    try:
        _, m = check_inputs(image, mask)
        assert m.shape == (h, w) and np.nanmin(m) >= 0 and np.nanmax(m) <= 1
    except InpaintError:
        pass
    p = TMP / "m.png"
    Image.fromarray(np.zeros((max(mh, 1), max(mw, 1)), np.uint8)).save(p)
    try:
        load_mask(p, size=(h, w))
    except ImageReadError:
        pass


def fuzz_checkpoint(data) -> None:
    kind = data.draw(st.sampled_from([".pkl", ".pt", ".safetensors"]))
    blob = data.draw(blobs(SEEDS["pickle"], max_random=400, max_edits=6, max_cut=20))
    p = TMP / f"c{kind}"
    p.write_bytes(blob)
    try:
        load_any(p)
    except ModelFileError:
        pass


def fuzz_ora(data) -> None:
    p = TMP / "d.ora"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("mimetype", b"image/openraster")
        z.writestr(
            "stack.xml",
            data.draw(
                st.one_of(
                    st.binary(max_size=200),
                    st.just(b'<image w="4" h="4"><stack><layer src="data/a.png" name="a"/></stack></image>'),
                    st.just(b'<image w="-1" h="99999999999"><stack/></image>'),
                )
            ),
        )
        if data.draw(st.booleans()):
            z.writestr("data/a.png", data.draw(st.one_of(st.binary(max_size=100), st.just(SEEDS["png"]))))
    try:
        read_ora(p)
    except OraError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args()
    for name, fn in (("image", fuzz_image), ("mask", fuzz_mask), ("checkpoint", fuzz_checkpoint), ("ora", fuzz_ora)):
        run(name, fn, args.cases)


if __name__ == "__main__":
    main()
