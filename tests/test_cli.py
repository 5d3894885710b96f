"""The ganmodels CLI: info and sample on a model file; the default model resolves."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from ganmodels.cli import main
from ganmodels.generate import parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-3,7, 10-11") == [0, 1, 2, 3, 7, 10, 11]


def test_sample_writes_valid_png(tmp_path, tiny_model_file):
    out = tmp_path / "grid.png"
    rc = main(
        [
            "--quiet",
            "sample",
            str(tiny_model_file),
            "--seeds",
            "0-5",
            "--truncation",
            "0.7",
            "--cols",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    img = Image.open(out)
    img.load()
    assert img.size == (3 * 16, 2 * 16)
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert arr.std() > 1  # not a blank image
    # same seeds -> same pixels
    out2 = tmp_path / "grid2.png"
    main(["--quiet", "sample", str(tiny_model_file), "--seeds", "0-5", "--cols", "3", "--out", str(out2)])
    assert np.array_equal(arr, np.asarray(Image.open(out2)))


def test_info_json(tiny_model_file, capsys):
    assert main(["info", str(tiny_model_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 16
    assert info["num_ws"] == 6
    assert info["directions"]["first"]["layers"] == [0, 3]


def test_bad_model_file_gives_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a model")
    assert main(["info", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
