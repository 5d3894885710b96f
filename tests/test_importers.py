"""Importers: NVIDIA pickles (restricted unpickling), rosinality / e4e / DCGAN .pt, conversion, refusal of code.

Fixtures are written by our own code in the foreign layouts (ganmodels.importers.fixtures); nothing from NVIDIA,
rosinality or pytorch/examples is imported here. Equality against the original implementations is checked by a
separate script outside the repository (figures on the issue).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ganmodels.cli import main
from ganmodels.importers import UnsafeCheckpointError, convert, detect_format, load_any
from ganmodels.importers.dcgan import DCGANConfig
from ganmodels.importers.fixtures import rosinality_checkpoint, write_nvidia_pickle
from ganmodels.importers.safe_pickle import RestrictedUnpickler
from ganmodels.modelfile import ModelFileError, load_model, read_metadata, save_model
from ganmodels.networks import DiscriminatorConfig
from ganmodels.stylegan3 import StyleGAN3Config
from tests.conftest import tiny_generator

TINY_SG3 = StyleGAN3Config(
    img_resolution=16, z_dim=16, w_dim=16, channel_base=512, channel_max=32, num_layers=4, margin_size=2
)


def _images(G, ws):
    with torch.no_grad():
        return G.synthesis(ws, noise_mode="const")


def _ws(G, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=g)
    c = torch.nn.functional.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float() if G.c_dim else torch.zeros(n, 0)
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=0.7)
    return ws + torch.randn(ws.shape, generator=g) * 0.2  # distinct per layer


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _tiny_sg3(seed: int = 0, **overrides):
    cfg = dataclasses.replace(TINY_SG3, **overrides)
    torch.manual_seed(seed)
    G = cfg.build().eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.copy_(torch.rand([], generator=g) + 0.5)
        G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=g) * 0.5)
    return G, cfg


# --------------------------------------------------------------------------------------------------------------
# NVIDIA pickles: StyleGAN2


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"architecture": "resnet", "conv_clamp": 256.0},
        {"architecture": "orig", "c_dim": 3, "mapping_layers": 3},
    ],
    ids=["skip", "resnet-clamp", "orig-conditional"],
)
def test_nvidia_stylegan2_pickle_loads_exactly(tmp_path, overrides):
    G, cfg = tiny_generator(**overrides)
    D = DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32, c_dim=cfg.c_dim).build().eval()
    path = write_nvidia_pickle(tmp_path / "net.pkl", G, D=D, training_set_kwargs={"path": "/data/faces.zip"})
    model = load_any(path)
    assert model.kind == "stylegan2"
    assert model.config == cfg
    assert model.card["source_format"] == "nvidia-stylegan2-pickle"
    assert model.card["training_data"] == "faces.zip"
    _assert_same_weights(model.G, G)
    ws = _ws(G)
    assert torch.equal(_images(model.G, ws), _images(G, ws))
    assert not model.G.training and not any(p.requires_grad for p in model.G.parameters())

    # conversion keeps the generator bit-exactly and the discriminator as a component
    out, notes = convert(path, tmp_path / "net.safetensors")
    assert notes == []
    native = load_model(out)
    assert native.config == cfg and native.components["discriminator"]["kind"] == "stylegan2-discriminator"
    assert (_images(native.G, ws) - _images(G, ws)).abs().max() <= 1e-5
    from ganmodels.components import load_discriminator

    D2 = load_discriminator(native)
    img = _images(G, ws)
    c = torch.eye(3)[:2] if cfg.c_dim else None
    assert torch.equal(D2(img, c), D(img, c))


def test_attributes_win_over_stored_kwargs(tmp_path):
    """conv_clamp, w_avg_beta and channel counts come from layers and shapes, not from (contradicting) kwargs."""
    G, cfg = tiny_generator(conv_clamp=256.0, w_avg_beta=0.998)
    lying = {
        "z_dim": 32,
        "mapping_kwargs": {"num_layers": 8, "w_avg_beta": 0.5},
        "synthesis_kwargs": {"channel_base": 99999, "channel_max": 7, "conv_clamp": None, "architecture": "resnet"},
    }
    model = load_any(write_nvidia_pickle(tmp_path / "a.pkl", G, init_kwargs=lying))
    assert model.config == cfg


def test_kwargs_fill_in_missing_attributes(tmp_path):
    """Without per-layer attributes the stored kwargs decide (the two repositories' defaults differ)."""
    G, cfg = tiny_generator(conv_clamp=256.0, w_avg_beta=0.998)

    def drop(module, state):
        for k in ("conv_clamp", "w_avg_beta", "architecture"):
            state.pop(k, None)

    kwargs = {"mapping_kwargs": {"w_avg_beta": 0.998}, "synthesis_kwargs": {"conv_clamp": 256, "architecture": "skip"}}
    model = load_any(write_nvidia_pickle(tmp_path / "a.pkl", G, init_kwargs=kwargs, state_hook=drop))
    assert model.config == cfg
    # and with neither, stylegan2-ada-pytorch's defaults apply
    bare = load_any(write_nvidia_pickle(tmp_path / "b.pkl", G, state_hook=drop))
    assert bare.config.conv_clamp is None and bare.config.w_avg_beta == 0.995


def test_protocol_2_pickle(tmp_path):
    """Protocol 2 stores bytes through _codecs.encode and sets through builtins.set."""
    G, _ = tiny_generator()
    model = load_any(write_nvidia_pickle(tmp_path / "p2.pkl", G, protocol=2))
    _assert_same_weights(model.G, G)


def test_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    G, _ = tiny_generator()
    src = f"open({str(marker)!r}, 'w').close()\nimport os\nos.system('touch {marker}')\n"
    model = load_any(write_nvidia_pickle(tmp_path / "net.pkl", G, module_src=src))
    assert model.G.num_ws == G.num_ws
    assert not marker.exists()
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


class _Reduce:
    """Pickles as a call of ``fn(*args)``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": b"cos\nsystem\n(V" + cmd.encode() + b"\ntR.",
        "posix.system": pickle.dumps(_Reduce(os.system, cmd)),
        "builtins.exec": pickle.dumps(_Reduce(exec, code)),
        "builtins.eval": pickle.dumps(_Reduce(eval, code)),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)])),
    }


@pytest.mark.parametrize("target", ["os.system", "posix.system", "builtins.exec", "builtins.eval", "subprocess.Popen"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, target):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_payloads(marker)[target])
    with pytest.raises(UnsafeCheckpointError, match=rf"refused to load: the pickle asks for {target}\b"):
        load_any(path)
    assert not marker.exists()


def test_payload_hidden_inside_a_network_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    G, _ = tiny_generator()

    def inject(module, state):
        if module is G.mapping:
            state["innocent_looking"] = _Reduce(os.system, f"touch {marker}")

    path = write_nvidia_pickle(tmp_path / "net.pkl", G, state_hook=inject)
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        load_any(path)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):  # the conversion path refuses as well
        convert(path, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_plain_torch_modules_and_tf_pickles_are_refused(tmp_path):
    p = tmp_path / "linear.pkl"
    p.write_bytes(pickle.dumps({"G_ema": nn.Linear(2, 2)}))
    with pytest.raises(UnsafeCheckpointError, match=r"torch\.nn\.modules\.linear\.Linear"):
        load_any(p)
    tf = tmp_path / "tf.pkl"
    tf.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81.")
    with pytest.raises(UnsafeCheckpointError, match="TensorFlow"):
        load_any(tf)


def test_numpy_globals_under_both_module_names():
    data = {"a": np.arange(3, dtype=np.int64), "s": np.float64(2.5), "shape": np.broadcast_to(np.asarray(36), [2])}
    raw = pickle.dumps(data, protocol=2)  # GLOBAL opcodes hold the module name as plain text
    current = b"numpy._core.multiarray" if b"numpy._core.multiarray" in raw else b"numpy.core.multiarray"
    for name in (b"numpy._core.multiarray", b"numpy.core.multiarray"):  # numpy 2 and numpy 1 pickles
        variant = raw.replace(current, name)
        assert name in variant
        out = RestrictedUnpickler(io.BytesIO(variant)).load()
        assert out["a"].tolist() == [0, 1, 2] and out["s"] == 2.5 and out["shape"].tolist() == [36, 36]


def test_pickles_without_generator_get_clear_errors(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps({"something": 1}))
    with pytest.raises(ModelFileError, match="no G_ema or G"):
        load_any(p)
    p.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelFileError, match="not an NVIDIA network pickle"):
        load_any(p)
    p.write_bytes(pickle.dumps({"G_ema": 1})[:-5])
    with pytest.raises(ModelFileError, match="not a readable network pickle"):
        load_any(p)


def test_inconsistent_stylegan2_shapes_are_reported(tmp_path):
    G, _ = tiny_generator()

    def corrupt(module, state):
        if module is G.synthesis.b16.torgb:
            state["_parameters"] = dict(state["_parameters"], bias=torch.zeros(5))

    with pytest.raises(ModelFileError, match=r"wrong shapes.*synthesis\.b16\.torgb\.bias"):
        load_any(write_nvidia_pickle(tmp_path / "bad.pkl", G, state_hook=corrupt))


# --------------------------------------------------------------------------------------------------------------
# NVIDIA pickles: StyleGAN3


@pytest.mark.parametrize(
    "overrides",
    [{}, {"conv_kernel": 1, "use_radial_filters": True}, {"c_dim": 2}],
    ids=["T", "R", "T-conditional"],
)
def test_nvidia_stylegan3_pickle_loads_exactly(tmp_path, overrides):
    G, cfg = _tiny_sg3(**overrides)
    path = write_nvidia_pickle(tmp_path / "sg3.pkl", G)
    model = load_any(path)
    assert model.kind == "stylegan3" and model.card["source_format"] == "nvidia-stylegan3-pickle"
    assert model.config == cfg
    _assert_same_weights(model.G, G)
    ws = _ws(G)
    assert torch.equal(_images(model.G, ws), _images(G, ws))
    out, _ = convert(path, tmp_path / "sg3.safetensors")
    assert read_metadata(out)["generator_kind"] == "stylegan3"
    native = load_model(out)
    assert native.config == cfg
    assert (_images(native.G, ws) - _images(G, ws)).abs().max() <= 1e-5


def test_stylegan3_attributes_win_over_kwargs(tmp_path):
    G, cfg = _tiny_sg3(conv_kernel=1, use_radial_filters=True, conv_clamp=None, magnitude_ema_beta=0.99)
    lying = {"conv_kernel": 3, "use_radial_filters": False, "conv_clamp": 256, "channel_base": 4, "output_scale": 1}
    model = load_any(write_nvidia_pickle(tmp_path / "r.pkl", G, init_kwargs=lying))
    assert model.config == cfg


def test_stylegan3_geometry_mismatch_is_reported(tmp_path):
    G, _ = _tiny_sg3()
    name = G.synthesis.layer_names[1]

    def corrupt(module, state):
        if module is getattr(G.synthesis, name):
            state["padding"] = [0, 0, 0, 0]

    with pytest.raises(ModelFileError, match=rf"{name}\.padding"):
        load_any(write_nvidia_pickle(tmp_path / "bad.pkl", G, state_hook=corrupt))


# --------------------------------------------------------------------------------------------------------------
# rosinality / e4e / pSp


def test_rosinality_layout_names_and_shapes():
    G, cfg = tiny_generator()
    sd = rosinality_checkpoint(G, cfg)["g_ema"]
    # channels min(256 // r, 32): 32 at 4 and 8 px, 16 at 16 px
    assert sd["input.input"].shape == (1, 32, 4, 4)
    assert sd["style.1.weight"].shape == (32, 32) and "style.3.weight" not in sd
    assert sd["conv1.conv.weight"].shape == (1, 32, 32, 3, 3)
    assert sd["convs.2.conv.weight"].shape == (1, 16, 32, 3, 3)  # b16.conv0
    assert sd["convs.3.noise.weight"].shape == (1,)
    assert sd["to_rgbs.1.bias"].shape == (1, 3, 1, 1)
    assert sd["noises.noise_4"].shape == (1, 1, 16, 16)
    assert torch.equal(sd["convs.3.conv.modulation.weight"], G.synthesis.b16.conv1.affine.weight)
    assert torch.equal(sd["noises.noise_0"][0, 0], G.synthesis.b4.conv1.noise_const)


@pytest.mark.parametrize("flavour", ["rosinality", "e4e"])
def test_rosinality_and_e4e_checkpoints_load_exactly(tmp_path, flavour):
    G, cfg = tiny_generator()
    path = tmp_path / "ckpt.pt"
    torch.save(rosinality_checkpoint(G, cfg, e4e=flavour == "e4e"), path)
    model = load_any(path)
    assert model.config == cfg
    _assert_same_weights(model.G, G)
    ws = _ws(G)
    assert torch.equal(_images(model.G, ws), _images(G, ws))
    out, notes = convert(path, tmp_path / "out.safetensors")
    assert load_model(out).card["source_format"] == ("e4e-psp-decoder" if flavour == "e4e" else "rosinality-stylegan2")
    assert bool(notes) == (flavour == "e4e")


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G, cfg = tiny_generator()
    ckpt = rosinality_checkpoint(G, cfg, latent_avg=False)
    path = tmp_path / "train.pt"
    torch.save(ckpt, path)
    model = load_any(path)
    z = torch.randn([10000, 32], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = G.mapping(z, None)[:, 0].mean(0)
    assert torch.allclose(model.G.mapping.w_avg, expected, atol=1e-5)
    assert "estimated" in model.card["w_avg"]


def test_malicious_torch_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "x": _Reduce(os.system, f"touch {marker}")}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"asks for posix\.system"):
        load_any(path)
    assert not marker.exists()


def test_torch_checkpoint_with_other_classes_is_refused(tmp_path):
    path = tmp_path / "ns.pt"
    torch.save({"args": argparse.Namespace(size=16), "opt": io.StringIO("x")}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"_io\.StringIO"):
        load_any(path)


def test_unknown_torch_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not a checkpoint this app can read"):
        load_any(path)


# --------------------------------------------------------------------------------------------------------------
# DCGAN


def _dcgan_example(nz=8, ngf=4, nc=3, seed=0, prefix=""):
    """A generator with the layout of the PyTorch DCGAN example (written here, not imported), 32 px."""
    torch.manual_seed(seed)
    main_ = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
        nn.Tanh(),
    )
    with torch.no_grad():
        for m in main_.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    main_.eval()
    sd = {f"{prefix}main.{k}": v for k, v in main_.state_dict().items()}
    return main_, sd


@pytest.mark.parametrize(("nc", "prefix"), [(3, ""), (1, "module.")], ids=["rgb", "gray-dataparallel"])
def test_dcgan_generator_loads_exactly(tmp_path, nc, prefix):
    net, sd = _dcgan_example(nc=nc, prefix=prefix)
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(sd, path)
    model = load_any(path)
    assert model.kind == "dcgan"
    assert model.config == DCGANConfig(z_dim=8, channels=(16, 8, 4, nc))
    G = model.G
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.img_resolution, G.img_channels) == (8, 8, 0, 1, 32, 3)
    assert torch.equal(G.mapping.w_avg, torch.zeros(8))
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    ws = G.mapping(z, torch.zeros(3, 0))
    assert ws.shape == (3, 1, 8) and torch.equal(ws[:, 0], z)
    assert torch.equal(G.mapping(z, None, truncation_psi=0.5)[:, 0], z * 0.5)
    with torch.no_grad():
        expected = net(z[:, :, None, None]).expand(-1, 3, -1, -1)
    assert (_images(G, ws) - expected).abs().max() <= 1e-6
    out, _ = convert(path, tmp_path / "dcgan.safetensors")
    meta = read_metadata(out)
    assert meta["generator_kind"] == "dcgan" and meta["generator_config"]["channels"] == [16, 8, 4, nc]
    native = load_model(out)
    assert native.config == model.config and torch.equal(_images(native.G, ws), _images(G, ws))


def test_dcgan_and_stylegan3_work_with_inversion_and_directions(tmp_path):
    from ganmodels.directions import ganspace
    from ganmodels.inversion import invert

    _, sd = _dcgan_example()
    torch.save(sd, tmp_path / "g.pth")
    sg3, _ = _tiny_sg3()
    for G in (load_any(tmp_path / "g.pth").G, sg3):
        target = torch.zeros(1, 3, G.img_resolution, G.img_resolution)
        steps = list(invert(G, target, num_steps=3, generator=torch.Generator().manual_seed(0)))
        assert steps[-1].ws.shape == (1, G.num_ws, G.w_dim)
        dirs = ganspace(G, k=2, num_samples=200, generator=torch.Generator().manual_seed(0))
        assert dirs[0].vector.shape == (G.w_dim,)


def test_dcgan_layout_errors(tmp_path):
    _, sd = _dcgan_example()
    sd["main.3.weight"] = torch.zeros(16, 8, 3, 3)  # not a 4x4 transposed conv
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ModelFileError, match=r"main\.3"):
        load_any(tmp_path / "bad.pth")


# --------------------------------------------------------------------------------------------------------------
# One set of weights in every format; native files; CLI


def test_same_weights_give_the_same_images_in_every_format(tmp_path):
    G, cfg = tiny_generator(seed=3)
    paths = [
        save_model(tmp_path / "native.safetensors", G, config=cfg),
        write_nvidia_pickle(tmp_path / "nvidia.pkl", G),
        tmp_path / "rosinality.pt",
        tmp_path / "e4e.pt",
    ]
    torch.save(rosinality_checkpoint(G, cfg), paths[2])
    torch.save(rosinality_checkpoint(G, cfg, e4e=True), paths[3])
    ws = _ws(G, seed=4)
    reference = _images(G, ws)
    for p in paths:
        m = load_any(p)
        assert m.config == cfg, p.name
        assert torch.equal(_images(m.G, ws), reference), p.name
        z = torch.randn(2, 32, generator=torch.Generator().manual_seed(5))
        assert torch.equal(m.G.mapping(z, None, truncation_psi=0.5), G.mapping(z, None, truncation_psi=0.5))


def test_native_stylegan2_files_stay_as_before(tmp_path, tiny_model_file):
    assert detect_format(tiny_model_file) == "safetensors"
    from safetensors import safe_open

    with safe_open(str(tiny_model_file), framework="pt") as f:
        assert "generator_kind" not in f.metadata()
    assert read_metadata(tiny_model_file)["generator_kind"] == "stylegan2"
    assert load_any(tiny_model_file).kind == "stylegan2"
    out, _ = convert(tiny_model_file, tmp_path / "copy.safetensors")  # native -> native keeps everything
    assert out.read_bytes() == tiny_model_file.read_bytes()


def test_legacy_torch_save_format(tmp_path):
    G, cfg = tiny_generator()
    path = tmp_path / "old.pt"
    torch.save(rosinality_checkpoint(G, cfg), path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "torch"
    _assert_same_weights(load_any(path).G, G)


def test_unknown_generator_kind_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    G, cfg = _tiny_sg3()
    p = save_model(tmp_path / "m.safetensors", G, config=cfg)
    with safe_open(str(p), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    save_file(tensors, str(p), metadata={**meta, "generator_kind": "stylegan9"})
    with pytest.raises(ModelFileError, match="unknown generator kind 'stylegan9'"):
        load_model(p)


def test_unknown_file_type(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"GIF89a not a model")
    with pytest.raises(ModelFileError, match="unknown file type"):
        load_any(p)
    # A file named like a model whose bytes fit no format: damaged, said in those words
    for name, data in [("model.pkl", b"GIF89a not a model"), ("junk.safetensors", bytes(range(7, 71))), ("e.pt", b"")]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelFileError, match=rf"{name} is not a readable \.\w+ model file: it is (damaged|empty)"):
            load_any(tmp_path / name)
    with pytest.raises(ModelFileError, match="no such file"):
        load_any(tmp_path / "missing.pkl")


def test_cli_convert_and_info(tmp_path, capsys):
    G, _ = _tiny_sg3()
    pkl = write_nvidia_pickle(tmp_path / "sg3.pkl", G)
    assert main(["info", str(pkl), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["generator_kind"] == "stylegan3" and info["num_ws"] == 6 and info["config"]["num_layers"] == 4
    out = tmp_path / "sg3.safetensors"
    assert main(["--quiet", "convert", str(pkl), str(out), "--fp16"]) == 0
    assert "wrote" in capsys.readouterr().out
    native = load_model(out)
    assert native.kind == "stylegan3"
    assert native.G.synthesis.input.weight.dtype == torch.float32  # fp16 storage, fp32 in memory
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(_payloads(tmp_path / "pwned")["posix.system"])
    assert main(["--quiet", "convert", str(evil), str(tmp_path / "x.safetensors")]) == 2
    assert "refused to load" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


def test_pickle_claiming_a_huge_object_gives_a_clear_error(tmp_path):
    from ganmodels.importers import load_any
    from ganmodels.modelfile import ModelFileError

    p = tmp_path / "huge.pkl"
    # protocol-4 BINBYTES8 with a length of 2**60 bytes
    p.write_bytes(b"\x80\x04\x8e" + (2**60).to_bytes(8, "little") + b"xx.")
    with pytest.raises(ModelFileError):
        load_any(p)


def test_pickle_with_an_impossible_length_gives_a_clear_error(tmp_path):
    from ganmodels.importers import load_any
    from ganmodels.modelfile import ModelFileError

    p = tmp_path / "overflow.pkl"
    p.write_bytes(b"\x80\x04\x8d" + (2**64 - 1).to_bytes(8, "little") + b".")  # BINUNICODE8, length 2**64-1
    with pytest.raises(ModelFileError):
        load_any(p)


@pytest.mark.parametrize("low_byte", [0x80, 0x28])  # a pickle's first opcode: b"\x80" (protocol 2+) and b"("
def test_safetensors_whose_header_length_looks_like_a_pickle_opcode(tmp_path, low_byte):
    from safetensors.torch import save_file

    path = tmp_path / "x.safetensors"
    for pad in range(400):  # metadata of some length gives a header length with that low byte
        save_file({"t": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == low_byte:
            break
    else:
        pytest.fail("no padding gave the wanted header length")
    assert detect_format(path) == "safetensors"


def test_other_zip_files_are_named_for_what_they_are(tmp_path):
    np.savez(tmp_path / "data.npz", images=np.zeros([1, 4, 4, 3], np.uint8))
    with pytest.raises(ModelFileError, match=r"data\.npz is a NumPy \.npz .* not a model"):
        load_any(tmp_path / "data.npz")
