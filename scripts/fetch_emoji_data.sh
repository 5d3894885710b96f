#!/usr/bin/env bash
# Download the default training data and build a dataset from it.
#
# Data: Microsoft Fluent Emoji 3D as packaged by LobeHub on npm (@lobehub/fluent-emoji-3d, MIT licence,
# 3,391 RGBA WebP pictures of 256 px). It is fetched with the ordinary npm client into a folder outside git:
#   ${GAN_DATA_DIR:-$HOME/.cache/gan-editor/data}/
#     lobehub-fluent-emoji-3d-<version>.tgz   the npm package (not downloaded again when present)
#     fluent-emoji-3d-<version>/assets/*.webp  the extracted pictures
#     fluent-emoji-3d-<res>.npz               the built dataset (python -m ganmodels.cli dataset build ...)
#
# Environment: GAN_DATA_DIR (see above), RES (dataset resolution, default 64), EMOJI_VERSION (npm version,
# default 1.1.0), PYTHON (interpreter with this project importable, default python or python3).
# Extra arguments are passed on to the build, e.g.  scripts/fetch_emoji_data.sh --xflip
set -euo pipefail

DATA_DIR="${GAN_DATA_DIR:-$HOME/.cache/gan-editor/data}"
RES="${RES:-64}"
VERSION="${EMOJI_VERSION:-1.1.0}"
PACKAGE="@lobehub/fluent-emoji-3d"
# sha1 of the 1.1.0 tarball as published on the npm registry (npm pack also checks the registry's sha512).
SHA1_1_1_0="ff0679b2bbbf6100dd9709d8952498f08f364ac6"

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python || command -v python3 || true)"
    [[ -n "$PYTHON" ]] || { echo "error: no python found; set PYTHON=/path/to/python" >&2; exit 1; }
fi
command -v npm >/dev/null || { echo "error: npm is needed to download $PACKAGE" >&2; exit 1; }

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TGZ="$DATA_DIR/lobehub-fluent-emoji-3d-$VERSION.tgz"
EXTRACTED="$DATA_DIR/fluent-emoji-3d-$VERSION"
OUT="$DATA_DIR/fluent-emoji-3d-$RES.npz"

mkdir -p "$DATA_DIR"

if [[ -s "$TGZ" ]]; then
    echo "using $TGZ (already downloaded)"
else
    echo "downloading $PACKAGE@$VERSION with npm pack into $DATA_DIR"
    # npm pack writes <scope>-<name>-<version>.tgz into the current folder and prints its name.
    (cd "$DATA_DIR" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
    [[ -s "$TGZ" ]] || { echo "error: npm pack did not produce $TGZ" >&2; exit 1; }
fi

if [[ "$VERSION" == "1.1.0" ]] && command -v sha1sum >/dev/null; then
    actual="$(sha1sum "$TGZ" | cut -d' ' -f1)"
    if [[ "$actual" != "$SHA1_1_1_0" ]]; then
        echo "error: $TGZ has sha1 $actual, expected $SHA1_1_1_0; delete it and run again" >&2
        exit 1
    fi
fi

if [[ -d "$EXTRACTED/assets" ]]; then
    echo "using $EXTRACTED (already extracted)"
else
    echo "extracting $TGZ"
    tmp="$DATA_DIR/.extract.$$"  # mkdir (not mktemp -d) so the folder gets the usual permissions
    rm -rf "$tmp"
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp"
    # The package holds package/{package.json,README.md,assets/*.webp}; keep it without the 'package/' prefix.
    tar -xzf "$TGZ" -C "$tmp" --strip-components=1 --no-same-owner
    [[ -d "$tmp/assets" ]] || { echo "error: $TGZ has no package/assets folder" >&2; exit 1; }
    rm -rf "$EXTRACTED"
    mv "$tmp" "$EXTRACTED"
    trap - EXIT
fi

echo "building $OUT at ${RES}px"
cd "$REPO_DIR"
"$PYTHON" -m ganmodels.cli dataset build "$EXTRACTED/assets" --res "$RES" --out "$OUT" "$@"
echo "done: $OUT"
