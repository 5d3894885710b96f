"""Native model files: exact round trips, fp16 storage, directions, components, clear errors."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from ganmodels.directions import Direction
from ganmodels.modelfile import ModelFileError, load_component, load_model, read_metadata, save_model
from tests.conftest import tiny_generator


def test_round_trip_is_bit_exact(tmp_path, tiny_model_file):
    G, cfg = tiny_generator()
    model = load_model(tiny_model_file)
    assert model.config == cfg
    for k, v in G.state_dict().items():
        assert torch.equal(model.G.state_dict()[k], v), k
    ws = G.mapping(torch.randn(1, cfg.z_dim), None)
    assert torch.equal(G.synthesis(ws, noise_mode="const"), model.G.synthesis(ws, noise_mode="const"))
    # saving the loaded model again gives the same bytes
    again = save_model(
        tmp_path / "again.safetensors", model.G, config=model.config, card=model.card, directions=model.directions
    )
    assert again.read_bytes() == tiny_model_file.read_bytes()


def test_card_and_directions_survive(tiny_model_file):
    model = load_model(tiny_model_file)
    assert model.card["licence"] == "MIT"
    assert model.name == "tiny"
    d = model.directions["first"]
    assert d.layers == (0, 3)
    assert d.description == "axis 0"
    assert torch.equal(d.vector, torch.eye(32)[0])


def test_fp16_storage_halves_size_and_stays_close(tmp_path):
    G, cfg = tiny_generator()
    p32 = save_model(tmp_path / "a.safetensors", G, config=cfg)
    p16 = save_model(tmp_path / "b.safetensors", G, config=cfg, dtype=torch.float16)
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    m = load_model(p16)
    for k, v in G.state_dict().items():
        assert torch.equal(m.G.state_dict()[k], v.half().float()), k
    assert m.G.mapping.w_avg.dtype == torch.float32


def test_resaving_keeps_the_files_precision(tmp_path):
    from ganmodels.components import resave_with
    from ganmodels.modelfile import generator_storage_dtype

    G, cfg = tiny_generator()
    p32 = save_model(tmp_path / "a.safetensors", G, config=cfg)
    p16 = save_model(tmp_path / "b.safetensors", G, config=cfg, dtype=torch.float16)
    extra = {"extra": ("x", {}, {"w": torch.full([3], 1 / 3)})}
    r16 = resave_with(load_model(p16), tmp_path / "r16.safetensors", add=extra)
    r32 = resave_with(load_model(p32), tmp_path / "r32.safetensors", add=extra)
    assert generator_storage_dtype(r16) == torch.float16 and load_component(r16, "extra")[2]["w"].dtype == torch.float16
    assert generator_storage_dtype(r32) == torch.float32 and torch.equal(
        load_component(r32, "extra")[2]["w"], extra["extra"][2]["w"]
    )
    for k, v in load_model(r16).G.state_dict().items():
        assert torch.equal(v, load_model(p16).G.state_dict()[k]), k


def test_components_round_trip(tmp_path):
    G, cfg = tiny_generator()
    sd = {"layer.weight": torch.arange(6.0).reshape(2, 3)}
    path = save_model(tmp_path / "m.safetensors", G, config=cfg, components={"encoder": ("e4e", {"depth": 2}, sd)})
    kind, conf, loaded = load_component(path, "encoder")
    assert kind == "e4e" and conf == {"depth": 2}
    assert torch.equal(loaded["layer.weight"], sd["layer.weight"])
    assert load_model(path).components["encoder"]["kind"] == "e4e"


def test_int8_components_are_smaller_close_and_stay_int8_when_resaved(tmp_path):
    from safetensors import safe_open

    from ganmodels.components import resave_with
    from ganmodels.modelfile import dequantize_rows, quantize_rows

    G, cfg = tiny_generator()
    g = torch.Generator().manual_seed(0)
    sd = {
        "conv.weight": torch.randn([32, 16, 3, 3], generator=g) * torch.linspace(0.01, 2, 32)[:, None, None, None],
        "fc.weight": torch.randn([64, 128], generator=g),
        "fc.bias": torch.randn([64], generator=g),
    }
    plain = save_model(tmp_path / "p.safetensors", G, config=cfg, components={"enc": ("e", {}, sd)})
    q8 = save_model(tmp_path / "q.safetensors", G, config=cfg, components={"enc": ("e", {}, sd)}, quantize=["enc"])
    assert q8.stat().st_size < plain.stat().st_size - 0.7 * 4 * (32 * 16 * 9 + 64 * 128)  # int8 instead of fp32
    with safe_open(str(q8), framework="pt") as f:
        assert f.get_tensor("enc.fc.weight").dtype == torch.int8 and f.get_tensor("enc.fc.bias").dtype == torch.float32
    assert read_metadata(q8)["components"]["enc"]["storage"] == "int8-rows"
    _, _, loaded = load_component(q8, "enc")
    for k, v in sd.items():
        assert loaded[k].dtype == torch.float32 and loaded[k].shape == v.shape
        if v.ndim < 2:
            continue
        rows = v.flatten(1).abs().amax(1)  # the error is at most half a step of each row's own scale
        assert ((loaded[k] - v).abs().flatten(1).amax(1) <= rows / 254 + 1e-7).all(), k
    assert torch.equal(loaded["fc.bias"], sd["fc.bias"])
    q, scale = quantize_rows(sd["fc.weight"])
    assert torch.equal(dequantize_rows(q, scale), loaded["fc.weight"])
    # kept components stay int8 when the model is written again; a replaced one follows ``quantize``
    again = resave_with(load_model(q8), tmp_path / "again.safetensors", add={"x": ("x", {}, {"w": torch.ones(2, 2)})})
    assert read_metadata(again)["components"]["enc"]["storage"] == "int8-rows"
    assert all(torch.equal(load_component(again, "enc")[2][k], v) for k, v in loaded.items())
    assert "storage" not in read_metadata(again)["components"]["x"]
    # a damaged file: an int8 tensor without its scale is an error, not garbage weights
    with safe_open(str(q8), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "q8scale.enc.fc.weight"}
        meta = f.metadata()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelFileError, match="no scale"):
        load_component(tmp_path / "bad.safetensors", "enc")


def test_direction_apply():
    v = torch.zeros(4)
    v[1] = 1
    d = Direction("x", v, (1, 3))
    ws = torch.zeros(2, 5, 4)
    assert torch.equal(d.apply(ws, 0.0), ws)
    out = d.apply(ws, 2.0)
    assert out[:, 1:3, 1].eq(2).all() and out[:, 0].eq(0).all() and out[:, 3:].eq(0).all()


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(p)


def test_truncated_file(tmp_path, tiny_model_file):
    data = tiny_model_file.read_bytes()
    p = tmp_path / "cut.safetensors"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_model(p)


def test_foreign_safetensors_is_refused(tmp_path):
    p = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(p))
    with pytest.raises(ModelFileError, match="not a gan-editor model"):
        read_metadata(p)


def test_wrong_shapes_are_reported(tmp_path):
    G, cfg = tiny_generator()
    p = save_model(tmp_path / "m.safetensors", G, config=cfg)
    # rewrite the config so the weights no longer fit
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    meta["generator_config"] = json.dumps({**cfg.to_dict(), "channel_max": 16})
    save_file(tensors, str(p), metadata=meta)
    with pytest.raises(ModelFileError, match="wrong shapes"):
        load_model(p)


def test_missing_file():
    with pytest.raises(ModelFileError, match="no such file"):
        load_model("/nonexistent/model.safetensors")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(scale=0.0), "slider scale of 0.0"),
        (dict(scale=float("nan")), "slider scale of nan"),
        (dict(vector=torch.full([32], float("nan"))), "not finite"),
        (dict(vector=torch.ones(31)), "shape (31,)"),
        (dict(vector=torch.zeros(32)), "all-zero"),
        (dict(layers=(5, 99)), "layers 5..98"),
    ],
)
def test_directions_that_cannot_work_are_left_out_with_a_note(tmp_path, change, message):
    G, cfg = tiny_generator()
    assert G.w_dim == 32
    good = Direction("good", torch.ones(32), (0, G.num_ws), scale=2.0)
    bad = Direction(**{**vars(good), "name": "bad", **change})
    path = tmp_path / "m.safetensors"
    save_model(path, G, config=cfg, directions={"good": good, "bad": bad})
    model = load_model(path)  # the model itself is fine
    assert list(model.directions) == ["good"] and len(model.notes) == 1
    assert re.search(rf"direction 'bad' left out: it .*{re.escape(message)}", model.notes[0])
    save_model(path, G, config=cfg, directions={"good": good})
    assert load_model(path).notes == []
