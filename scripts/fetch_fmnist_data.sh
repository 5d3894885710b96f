#!/usr/bin/env bash
# Download Fashion-MNIST (Debian package dataset-fashion-mnist, MIT) and build a 32 px RGB dataset from its 60,000
# training pictures: a quick sanity set for the training code (an unconditional GAN should learn separate
# garments on it), not a domain for the editor.
#   ${GAN_DATA_DIR:-$HOME/.cache/gan-editor/data}/fmnist32.npz
# Environment: GAN_DATA_DIR, PYTHON (interpreter with numpy, default python or python3).
set -euo pipefail

DATA_DIR="${GAN_DATA_DIR:-$HOME/.cache/gan-editor/data}"
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python || command -v python3 || true)"
    [[ -n "$PYTHON" ]] || { echo "error: no python found; set PYTHON=/path/to/python" >&2; exit 1; }
fi
command -v apt-get >/dev/null || { echo "error: apt-get is needed to download dataset-fashion-mnist" >&2; exit 1; }
mkdir -p "$DATA_DIR/fashion-mnist"
cd "$DATA_DIR/fashion-mnist"
if ! ls dataset-fashion-mnist_*.deb >/dev/null 2>&1; then
    apt-get download dataset-fashion-mnist
fi
dpkg -x dataset-fashion-mnist_*.deb extracted
"$PYTHON" - "$DATA_DIR/fashion-mnist/extracted/usr/share/datasets/fashion-mnist" "$DATA_DIR/fmnist32.npz" <<'PY'
import gzip
import sys

import numpy as np

src, out = sys.argv[1], sys.argv[2]
with gzip.open(f"{src}/train-images-idx3-ubyte.gz") as f:
    raw = f.read()
n = int.from_bytes(raw[4:8], "big")
images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 28, 28)  # [N, 28, 28]
images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # [N, 32, 32], black border as in the originals
np.savez(out, images=np.repeat(images[..., None], 3, axis=3))  # [N, 32, 32, 3] uint8
print(f"wrote {out}: {n} images at 32px")
PY
