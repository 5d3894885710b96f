"""Anchors: fitting the latents of training pictures, sampling around them, carrying them in a model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganmodels.anchors import (
    AnchorBank,
    anchored_ws,
    as_stored,
    fit_anchors,
    read_anchors,
    row_index,
    seed_to_anchor,
)
from ganmodels.cli import main
from ganmodels.components import resave_with
from ganmodels.generate import seed_to_z, seeds_to_ws, synthesize
from ganmodels.losses import psnr
from ganmodels.modelfile import ModelFileError, load_model, save_model
from tests.conftest import tiny_generator


def _pictures(G, n: int, seed: int = 3) -> torch.Tensor:
    """Pictures G can draw (from W+ latents near its mean): [n, 3, R, R] in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    ws = G.mapping.w_avg + 0.8 * torch.randn([n, G.num_ws, G.w_dim], generator=g)
    return synthesize(G, ws).clamp(-1, 1)


def test_row_index_shares_neighbouring_ws():
    assert row_index(10, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert row_index(6, 1).tolist() == [0] * 6
    assert row_index(6, 6).tolist() == list(range(6))
    assert row_index(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError):
        row_index(6, 7)


def test_fit_brings_anchors_close_to_their_pictures_and_resumes_identically():
    G, _ = tiny_generator()
    targets = _pictures(G, 6)  # [6, 3, 16, 16]
    bank = AnchorBank.start(G, [0] * 6, rows=3)
    assert bank.ws.shape == (6, 3, G.w_dim) and not bank.fitted.any()
    start = psnr(synthesize(G, bank.full_ws(range(6), G.num_ws)), targets)  # [6]
    whole = AnchorBank.start(G, [0] * 6, rows=3)
    records = list(fit_anchors(G, targets, whole, steps=60, lr=0.05, batch=4, autocast=False))
    assert [(r.done, r.total) for r in records] == [(4, 6), (6, 6)]
    assert whole.fitted.all()
    drawn = synthesize(G, whole.full_ws(range(6), G.num_ws))
    after = psnr(drawn, targets)
    assert torch.allclose(after, whole.psnr, atol=1e-3)
    assert bool((after > start + 3).all()), (start, after)
    # stopped after its first batch, a fit resumes with the same bank and ends where the whole fit did
    bank = AnchorBank.start(G, [0] * 6, rows=3)
    next(fit_anchors(G, targets, bank, steps=60, lr=0.05, batch=4, autocast=False))
    assert bank.fitted.tolist() == [True] * 4 + [False] * 2
    first = bank.ws[:4].clone()
    list(fit_anchors(G, targets, bank, steps=60, lr=0.05, batch=4, autocast=False))
    assert torch.equal(bank.ws[:4], first)  # fitted anchors are left alone
    assert torch.allclose(bank.ws, whole.ws, atol=1e-6)


def test_anchored_latents_lerp_from_the_anchor_to_a_sample_of_its_class():
    G, _ = tiny_generator(c_dim=3)
    bank = AnchorBank.start(G, [2, 0, 1, 1], rows=2)
    bank.ws += torch.randn(bank.ws.shape, generator=torch.Generator().manual_seed(0))
    bank.fitted[:] = True
    seeds = [5, 6, 7, 8, 9]
    at_anchor, picks = anchored_ws(G, bank, seeds, truncation_psi=0.0)
    assert picks == [seed_to_anchor(s, G, 4) for s in seeds]
    assert torch.equal(at_anchor, bank.full_ws(picks, G.num_ws))
    plain, picks_again = anchored_ws(G, bank, seeds, truncation_psi=1.0)
    assert picks_again == picks
    classes = [int(bank.labels[a]) for a in picks]
    assert torch.allclose(plain, seeds_to_ws(G, seeds, classes=classes), atol=1e-6)  # the seed's NVIDIA z
    half, _ = anchored_ws(G, bank, seeds, truncation_psi=0.5)
    assert torch.allclose(half, (at_anchor + plain) / 2, atol=1e-5)
    given, chosen = anchored_ws(G, bank, [5, 6], truncation_psi=0.0, anchors=[3, 3])
    assert chosen == [3, 3] and torch.equal(given[0], given[1])
    with pytest.raises(ValueError, match="one anchor"):
        anchored_ws(G, bank, [5], anchors=[4])
    # the seed's z is untouched by the anchor draw
    assert torch.equal(seed_to_z(5, G.z_dim), torch.from_numpy(np.random.RandomState(5).randn(1, G.z_dim)).float())


def test_bank_travels_in_the_model_file_as_int8_and_bad_banks_are_refused(tmp_path):
    G, cfg = tiny_generator()
    path = save_model(tmp_path / "m.safetensors", G, config=cfg)
    model = load_model(path)
    assert model.anchors is None
    bank = AnchorBank.start(G, [0] * 5, rows=3)
    bank.ws += torch.randn(bank.ws.shape, generator=torch.Generator().manual_seed(1))
    bank.fitted[:4] = True  # the unfitted one stays behind
    bank.psnr[:4] = torch.tensor([20.0, 21.0, 22.0, 23.0])
    out = resave_with(model, tmp_path / "a.safetensors", add={"anchors": bank.to_component()}, quantize=["anchors"])
    again = load_model(out).anchors
    assert again is not None and len(again) == 4 and again.rows == 3
    assert torch.equal(again.labels, torch.full([4], -1))
    scale = bank.ws[:4].abs().amax([1, 2], keepdim=True) / 127  # int8 per anchor
    assert bool(((again.ws - bank.ws[:4]).abs() <= scale / 2 + 1e-6).all())
    assert torch.allclose(again.psnr, bank.psnr[:4])
    # a bank of another model's width, or non-finite latents: a clear error, not a crash later
    wide, _ = tiny_generator(w_dim=48)
    other = AnchorBank.start(wide, [0, 0], rows=2)
    other.fitted[:] = True
    bad = resave_with(model, tmp_path / "bad.safetensors", add={"anchors": other.to_component()})
    loaded = load_model(bad)  # the model itself is fine: it loads, without them, and says why
    assert loaded.anchors is None and any("anchors left out" in n and "do not fit" in n for n in loaded.notes)
    with pytest.raises(ModelFileError, match="do not fit"):
        read_anchors(bad, model.G)
    nan = AnchorBank.start(G, [0, 0], rows=2)
    nan.fitted[:] = True
    nan.ws[0, 0, 0] = float("nan")
    broken = resave_with(model, tmp_path / "nan.safetensors", add={"anchors": nan.to_component()})
    assert load_model(broken).anchors is None
    with pytest.raises(ModelFileError, match="damaged"):
        read_anchors(broken, model.G)


def test_cli_fits_stops_resumes_and_samples_around_anchors(tmp_path, tiny_model_file, capsys, monkeypatch):
    from ganmodels.dataset import save_labels

    G = load_model(tiny_model_file).G
    pictures = ((_pictures(G, 5) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # [5, 16, 16, 3]
    data = tmp_path / "d.npz"
    np.savez(data, images=pictures)
    out = tmp_path / "anchored.safetensors"
    args = ["anchors", str(tiny_model_file), "--data", str(data), "--out", str(out), "--steps", "40", "--quiet"]
    args += ["--batch", "2", "--rows", "2", "--lr", "0.05"]
    partial = out.with_name(out.name + ".partial")
    # a stop after the first batch (as after Ctrl+C) keeps the work in OUT.partial
    import ganmodels.cli as cli

    real = cli._StopBetweenSteps

    class StopAtOnce(real):
        def __enter__(self):
            super().__enter__()
            self.requested = True
            return self

    cli._StopBetweenSteps = StopAtOnce
    try:
        assert main(args) == 0
    finally:
        cli._StopBetweenSteps = real
    assert partial.exists() and not out.exists()
    bank, _ = AnchorBank.load(partial)
    assert int(bank.fitted.sum()) == 2
    assert main(args) == 0
    assert out.exists() and not partial.exists()
    model = load_model(out)
    anchors = model.anchors
    assert anchors is not None and len(anchors) == 5 and model.card["anchors"]["count"] == 5
    drawn = synthesize(model.G, anchors.full_ws(range(5), model.G.num_ws))
    target = torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1
    start = AnchorBank.start(model.G, [0] * 5, rows=2).full_ws(range(5), model.G.num_ws)
    before = float(psnr(synthesize(model.G, start), target).mean())
    assert float(psnr(drawn, target).mean()) > before + 3
    assert abs(float(psnr(drawn, target).mean()) - model.card["anchors"]["mean_psnr_db"]) < 0.006  # what ships
    # stored again from the model's own anchors (no fitting): compact, one per emoji (by the data's file names)
    named = tmp_path / "named.npz"
    names = ["1f44b.webp", "1f44b-1f3fd.webp", "2764-fe0f.webp", "1f600.webp", "1f44d-1f3fb.webp"]
    np.savez(named, images=pictures, names=np.array(names))
    again = tmp_path / "again.safetensors"
    import ganmodels.anchors as anchors_module

    fitted = []
    monkeypatch.setattr(
        anchors_module, "fit_anchors", lambda G, images, bank, **k: fitted.append(int((~bank.fitted).sum())) or iter(())
    )
    args = ["anchors", str(out), "--data", str(named), "--out", str(again), "--compact", "--one-per-concept"]
    assert main([*args, "--quiet"]) == 0
    assert fitted == [0]  # nothing left to fit: the model's own anchors of these pictures (same content)
    kept = load_model(again)
    assert len(kept.anchors) == 4 and kept.card["anchors"]["pictures"] == 5  # 1f44b once, its plain variant
    assert torch.equal(kept.anchors.psnr.float(), anchors.psnr[[0, 2, 3, 4]].float())
    assert float((kept.anchors.ws - anchors.ws[[0, 2, 3, 4]]).abs().max()) < 0.2  # (4-bit offsets)
    # samples: around the anchors by default, plain with --no-anchors
    grid_a, grid_p = tmp_path / "a.png", tmp_path / "p.png"
    assert main(["sample", str(out), "--seeds", "0-3", "--out", str(grid_a), "--cols", "4", "--quiet"]) == 0
    assert main(["sample", str(out), "--seeds", "0-3", "--out", str(grid_p), "--cols", "4", "--no-anchors"]) == 0
    from PIL import Image

    a, p = np.asarray(Image.open(grid_a)), np.asarray(Image.open(grid_p))
    assert a.shape == p.shape == (16, 64, 3)
    ws, _ = anchored_ws(model.G, anchors, [0, 1, 2, 3])
    expected = synthesize(model.G, ws)
    got = torch.from_numpy(a.copy()).reshape(16, 4, 16, 3).permute(1, 3, 0, 2).float() / 127.5 - 1
    assert float((got - expected.clamp(-1, 1)).abs().max()) <= 1.5 / 127.5
    assert not np.array_equal(a, p)
    # a conditional model needs the data's labels; another model's partial bank is refused
    cond, cond_cfg = tiny_generator(c_dim=2)
    cond_file = save_model(tmp_path / "cond.safetensors", cond, config=cond_cfg)
    out2 = tmp_path / "c.safetensors"
    assert main(["anchors", str(cond_file), "--data", str(data), "--out", str(out2), "--quiet"]) == 2
    assert "labels" in capsys.readouterr().err
    save_labels(data, np.array([0, 1, 0, 1, 1]))
    bank.save(out2.with_name(out2.name + ".partial"), about={"generator": "x", "data": "y"})
    assert main(["anchors", str(cond_file), "--data", str(data), "--out", str(out2), "--quiet"]) == 2
    assert "another model" in capsys.readouterr().err
    # a conditional model's own anchors are stored again with their labels from data that has none
    out2.with_name(out2.name + ".partial").unlink()
    monkeypatch.undo()  # fit for real
    args = ["anchors", str(cond_file), "--data", str(data), "--out", str(out2), "--steps", "2", "--rows", "2"]
    assert main([*args, "--quiet"]) == 0
    monkeypatch.setattr(
        anchors_module, "fit_anchors", lambda G, images, bank, **k: fitted.append(int((~bank.fitted).sum())) or iter(())
    )
    again2 = tmp_path / "c2.safetensors"
    assert main(["anchors", str(out2), "--data", str(named), "--out", str(again2), "--compact", "--quiet"]) == 0
    assert fitted == [0, 0]
    assert load_model(again2).anchors.labels.tolist() == [0, 1, 0, 1, 1]


def test_start_uses_class_means_and_checks_rows():
    G, _ = tiny_generator(c_dim=2)
    bank = AnchorBank.start(G, [1, 0], rows=4)
    from ganmodels.generate import truncation_centre

    assert torch.allclose(bank.ws[0, 2], truncation_centre(G, 1))
    assert torch.allclose(bank.ws[1, 0], truncation_centre(G, 0))
    with pytest.raises(ValueError):
        AnchorBank.start(G, [0], rows=G.num_ws + 1)


def test_sample_in_a_class_draws_around_that_class_anchors(tmp_path):
    from PIL import Image

    G, cfg = tiny_generator(c_dim=2)
    model = load_model(save_model(tmp_path / "c.safetensors", G, config=cfg))
    bank = AnchorBank.start(G, [0, 1, 0, 1, 1], rows=2)
    bank.ws += 2 * torch.randn(bank.ws.shape, generator=torch.Generator().manual_seed(2))
    bank.fitted[:] = True
    path = resave_with(model, tmp_path / "ca.safetensors", add={"anchors": bank.to_component()})
    model = load_model(path)
    grid = tmp_path / "g.png"
    assert main(["sample", str(path), "--seeds", "3-5", "--class", "1", "--out", str(grid), "--cols", "3"]) == 0
    members = [1, 3, 4]
    picks = [members[seed_to_anchor(s, model.G, 3)] for s in (3, 4, 5)]
    ws, _ = anchored_ws(model.G, model.anchors, [3, 4, 5], anchors=picks)
    expected = synthesize(model.G, ws).clamp(-1, 1)
    got = torch.from_numpy(np.asarray(Image.open(grid)).copy()).reshape(16, 3, 16, 3).permute(1, 3, 0, 2)
    assert float((got.float() / 127.5 - 1 - expected).abs().max()) <= 1.5 / 127.5


def test_compact_storage_rebuilds_the_anchors_and_is_smaller(tmp_path):
    G, cfg = tiny_generator()
    model = load_model(save_model(tmp_path / "m.safetensors", G, config=cfg))
    bank = AnchorBank.start(G, [0] * 40, rows=4)
    g = torch.Generator().manual_seed(5)
    bank.ws += torch.randn([40, 1, G.w_dim], generator=g) + 0.3 * torch.randn([40, 4, G.w_dim], generator=g)
    bank.fitted[:] = True
    bank.psnr[:] = 20.0
    _, config, tensors = bank.to_component(compact=True)
    assert "ws" not in tensors and tensors["offsets4"].shape == (40, 4 * G.w_dim // 2)
    again = AnchorBank.from_component(config, tensors)
    offsets = bank.ws - bank.ws.mean(1, keepdim=True)
    step = offsets.abs().amax(2, keepdim=True) / 7  # [40, 4, 1]: one 4-bit step per row
    assert bool(((again.ws - bank.ws).abs() <= step / 2 + 1e-5).all())  # every number within half a step
    full = resave_with(model, tmp_path / "full.safetensors", add={"anchors": bank.to_component()}, quantize=["anchors"])
    small = resave_with(
        model, tmp_path / "small.safetensors", add={"anchors": bank.to_component(compact=True)}, quantize=["anchors"]
    )
    assert small.stat().st_size < full.stat().st_size
    loaded = load_model(small).anchors
    stored = as_stored(bank.to_component(compact=True))  # what the file gives back, measured before writing
    assert loaded is not None and torch.allclose(loaded.ws, stored.ws, atol=1e-6)
    assert float((loaded.ws - bank.ws).abs().max()) < float(step.max()) / 2 + 0.03  # (+ the int8 mean)
    with pytest.raises(ValueError, match="offsets"):
        AnchorBank.from_component({**config, "rows": 5}, tensors)


def test_more_fits_the_kept_anchors_further_and_counts_the_steps(tmp_path, tiny_model_file, capsys):
    G = load_model(tiny_model_file).G
    pictures = ((_pictures(G, 5, seed=8) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # [5, 16, 16, 3]
    data = tmp_path / "d.npz"
    names = ["1f44b.webp", "1f44b-1f3fd.webp", "2764-fe0f.webp", "1f600.webp", "1f44d-1f3fb.webp"]
    np.savez(data, images=pictures, names=np.array(names))
    first, more = tmp_path / "first.safetensors", tmp_path / "more.safetensors"
    common = ["--data", str(data), "--rows", "2", "--batch", "5", "--lr", "0.05", "--quiet"]
    assert main(["anchors", str(tiny_model_file), "--out", str(first), "--steps", "10", *common]) == 0
    assert main(["anchors", str(tiny_model_file), "--out", str(more), "--more", "--steps", "5", *common]) == 2
    assert "--more needs a model that carries anchors" in capsys.readouterr().err
    further = ["--more", "--one-per-concept", "--steps", "30"]
    assert main(["anchors", str(first), "--out", str(more), *further, *common]) == 0
    a, b = load_model(first), load_model(more)
    kept = [0, 2, 3, 4]  # (1f44b-1f3fd is a skin tone of 1f44b)
    assert a.card["anchors"]["steps"] == 10 and b.card["anchors"]["steps"] == 40 and len(b.anchors) == 4
    target = torch.from_numpy(pictures[kept]).permute(0, 3, 1, 2).float() / 127.5 - 1

    def drawn_psnr(model, index):
        return float(psnr(synthesize(model.G, model.anchors.full_ws(index, model.G.num_ws)), target).mean())

    assert drawn_psnr(b, range(4)) > drawn_psnr(a, kept) + 0.5  # fitted further from where they were
    again = tmp_path / "again.safetensors"  # stored again without fitting: the steps they had
    assert main(["anchors", str(first), "--out", str(again), "--compact", *common]) == 0
    assert load_model(again).card["anchors"]["steps"] == 10
