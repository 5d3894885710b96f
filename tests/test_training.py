"""Training: losses move the right way on a toy set, exact resume, DDP over gloo, augmentation."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors import safe_open

from ganmodels.augment import AdaptiveAugment, aug_cutout, aug_rotate, aug_scale, aug_translation, diff_augment
from ganmodels.training import (
    TrainConfig,
    TrainState,
    _Augmenter,
    attach_codes,
    data_fingerprint,
    diversity_targets,
    latest_checkpoint,
    load_checkpoint,
    new_state,
    pyramid_l1,
    save_checkpoint,
    train,
    train_step,
)
from tests.conftest import TINY_D, TINY_G


class ToyData:
    """16 px images: a solid colour from a small palette with a bright square in the middle."""

    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        palette = torch.tensor([[0.9, -0.8, -0.8], [-0.8, 0.9, -0.8], [-0.8, -0.8, 0.9], [0.9, 0.9, -0.8]])
        idx = torch.randint(0, 4, [n], generator=g)
        x = palette[idx].reshape(n, 3, 1, 1).repeat(1, 1, 16, 16)
        x[:, :, 5:11, 5:11] = 1.0
        self.x = x

    def sample(self, batch_size: int, *, generator: torch.Generator) -> torch.Tensor:
        return self.x[torch.randint(0, len(self.x), [batch_size], generator=generator)]

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.x[indices]


def tiny_config(**kw) -> TrainConfig:
    base = dict(G=TINY_G, D=TINY_D, batch_size=8, precision="fp32", channels_last=False, ema_kimg=0.05, r1_gamma=0.1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_d_loss_and_moves_g_towards_data():
    torch.manual_seed(0)
    data = ToyData()
    state = new_state(tiny_config(augment="none", g_lr=0.005, d_lr=0.005))
    z = torch.randn(64, TINY_G.z_dim, generator=torch.Generator().manual_seed(1))

    def distance() -> float:
        with torch.no_grad():
            img = state.G_ema.synthesis(state.G_ema.mapping(z, None), noise_mode="const")
        return (img.mean(0) - data.x.mean(0)).abs().mean().item()

    d0 = distance()
    d_losses = [p.losses["D"] for p in train(state, data, total_kimg=0.8)]
    d1 = distance()
    assert d1 < 0.6 * d0, (d0, d1)
    first, last = sum(d_losses[:5]) / 5, sum(d_losses[-10:]) / 10
    assert last < first, (first, last)


def trained(cfg: TrainConfig, steps: int, path):
    """(state, augmenter, data) after ``steps`` steps, with a checkpoint saved at ``path``."""
    data = ToyData()
    state = new_state(cfg)
    aug = _Augmenter(cfg, 0.0)
    for _ in range(steps):
        train_step(state, data.sample(8, generator=state.rng), aug)
    save_checkpoint(state, path)
    return state, aug, data


def test_resume_reproduces_the_next_step_exactly(tmp_path):
    path = tmp_path / "snapshot-000000k-00000003.safetensors"
    state, aug, data = trained(tiny_config(augment="diffaugment", r1_interval=2), 3, path)
    train_step(state, data.sample(8, generator=state.rng), aug)  # step index 3
    train_step(state, data.sample(8, generator=state.rng), aug)  # step index 4: an R1 step
    resumed = load_checkpoint(path)
    assert resumed.step == 3 and resumed.cur_nimg == 24
    aug2 = _Augmenter(resumed.config, resumed.augment_p)
    train_step(resumed, data.sample(8, generator=resumed.rng), aug2)
    train_step(resumed, data.sample(8, generator=resumed.rng), aug2)
    for name in ("G", "G_ema", "D"):
        a, b = getattr(state, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k}"
    assert torch.equal(state.rng.get_state(), resumed.rng.get_state())
    assert latest_checkpoint(tmp_path) == path


def test_resume_can_switch_to_channels_last(tmp_path):
    path = tmp_path / "snapshot-000000k-00000002.safetensors"
    state, aug, data = trained(tiny_config(augment="none", r1_interval=2), 2, path)
    resumed = load_checkpoint(path, channels_last=True)
    assert resumed.config.channels_last
    conv = resumed.D.b16.conv0.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    moment = resumed.opt_D.state[conv]["exp_avg"]
    assert moment.stride() == conv.stride()
    assert torch.equal(moment, state.opt_D.state[state.D.b16.conv0.weight]["exp_avg"])
    for _ in range(2):
        train_step(state, data.sample(8, generator=state.rng), aug)
        train_step(resumed, data.sample(8, generator=resumed.rng), _Augmenter(resumed.config, 0.0))
    for k, v in state.G.state_dict().items():
        assert torch.allclose(v, resumed.G.state_dict()[k], atol=1e-4), k
    assert not load_checkpoint(path, channels_last=False).config.channels_last


def test_train_writes_snapshots_and_keeps_the_newest(tmp_path):
    state = new_state(tiny_config(augment="ada"))
    written = [p.checkpoint for p in train(state, ToyData(), total_kimg=0.064, run_dir=tmp_path, snapshot_kimg=0.016)]
    snaps = sorted(tmp_path.glob("snapshot-*.safetensors"))
    assert len([w for w in written if w]) == 4
    assert len(snaps) == 3  # keep_snapshots
    assert load_checkpoint(snaps[-1]).cur_nimg == 64


def test_a_paused_run_does_not_count_the_pause_as_training_time(monkeypatch):
    import time as real_time

    from ganmodels import training

    assert training.trained_seconds(1.5, 2.9) == 1.5  # a busy step (2 threads): wall time
    assert training.trained_seconds(600.0, 300.0) == 600.0  # slow, but working (a shared CPU)
    assert training.trained_seconds(3600.0, 1.2) == 1.2  # stopped for an hour: only the CPU time

    class Clock:  # the real clocks, with the wall clock jumping an hour after the first step (SIGSTOP)
        calls = 0

        @staticmethod
        def monotonic() -> float:
            Clock.calls += 1
            return real_time.monotonic() + (3600.0 if Clock.calls > 3 else 0.0)

        process_time = staticmethod(real_time.process_time)

    monkeypatch.setattr(training, "time", Clock)
    state = new_state(tiny_config(augment="none"))
    list(train(state, ToyData(), total_kimg=0.016))
    assert Clock.calls > 3 and 0 < state.seconds < 60


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp"])
def test_other_losses_run(loss):
    state = new_state(tiny_config(loss=loss, augment="none"))
    losses = [p.losses for p in train(state, ToyData(), total_kimg=0.016)]
    assert all(torch.isfinite(torch.tensor(list(x.values()))).all() for x in losses)
    if loss == "wgan-gp":
        assert "D_gp" in losses[0]


def test_path_length_regularisation_runs():
    state = new_state(tiny_config(pl_weight=2.0, augment="none"))
    losses = [p.losses for p in train(state, ToyData(), total_kimg=0.016)]
    assert "G_pl" in losses[0] and state.pl_mean > 0


def _ddp_worker(rank: int, world: int, init_file: str, out: dict, g_recon: float = 0.0) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        state = new_state(tiny_config(augment="diffaugment", batch_size=8, g_recon_weight=g_recon, g_recon_batch=4))
        state.rng.manual_seed(100 + rank)  # ranks draw different data (and pictures to rebuild)
        for _ in train(state, ToyData(), total_kimg=0.032):
            pass
        codes = [state.codes.detach().flatten()] if g_recon else []
        flat = torch.cat(
            [p.detach().flatten() for p in state.G.parameters()]
            + [p.detach().flatten() for p in state.D.parameters()]
            + codes
        )
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        torch.distributed.all_gather(gathered, flat)
        out[rank] = (state.cur_nimg, [bool(torch.equal(gathered[0], g)) for g in gathered], float(flat.abs().sum()))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("g_recon", [0.0, 1.0])
def test_ddp_gloo_two_processes_stay_in_sync(tmp_path, g_recon):
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out, g_recon), nprocs=2, join=True)
    assert set(out.keys()) == {0, 1}
    for rank in (0, 1):
        cur_nimg, equal, total = out[rank]
        assert cur_nimg == 32  # global batch 8 = 2 ranks x 4, 4 steps
        assert all(equal)  # parameters (and the codes of G's rebuilding) identical on both ranks
        assert torch.isfinite(torch.tensor(total))


def test_diff_augment_is_deterministic_shape_preserving_and_differentiable():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, generator=torch.Generator().manual_seed(3))
    b = diff_augment(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_and_cutout_geometry():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1) + 1
    y = aug_translation(x, ratio=0.25, generator=torch.Generator().manual_seed(0))
    # every output is the input shifted by at most 1 pixel with zero fill
    for i in range(64):
        found = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = torch.zeros(4, 4)
                src = x[i, 0]
                ys, xs = slice(max(0, -dy), 4 - max(0, dy)), slice(max(0, -dx), 4 - max(0, dx))
                yd, xd = slice(max(0, dy), 4 - max(0, -dy)), slice(max(0, dx), 4 - max(0, -dx))
                ref[ys, xs] = src[yd, xd]
                found |= torch.equal(y[i, 0], ref)
        assert found
    c = aug_cutout(torch.ones(32, 1, 8, 8), ratio=0.5, generator=torch.Generator().manual_seed(0))
    zeros = (c == 0).flatten(1).sum(1)
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the borders


def _dot(n: int) -> torch.Tensor:
    """[n, 1, 33, 33]: black with one white pixel 8 px right of the centre."""
    x = torch.zeros(n, 1, 33, 33)
    x[:, :, 16, 24] = 1.0
    return x


def _mass_centre(x: torch.Tensor) -> torch.Tensor:  # [N, 1, H, W] -> [N, 2] (row, col) offsets from the centre
    h, w = x.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
    m = x[:, 0].sum((1, 2))
    return torch.stack([(x[:, 0] * ys).sum((1, 2)) / m, (x[:, 0] * xs).sum((1, 2)) / m], 1)


def test_rotate_turns_about_the_centre_and_scale_keeps_flat_colour():
    x = _dot(64)
    y = aug_rotate(x, generator=torch.Generator().manual_seed(0))
    radius = _mass_centre(y).norm(dim=1)  # the dot stays 8 px from the centre, at all sorts of angles
    assert torch.allclose(radius, torch.full_like(radius, 8.0), atol=0.6)
    angles = torch.atan2(*_mass_centre(y).T)
    assert angles.min() < -2 and angles.max() > 2  # covers the whole circle
    flat = torch.full([8, 3, 16, 16], 0.3)
    g = torch.Generator().manual_seed(1)
    assert torch.allclose(aug_scale(flat, generator=g), flat) and torch.allclose(aug_rotate(flat, generator=g), flat)
    big = _dot(64)  # scaling moves the dot along its row: 8 px times 2^N(0, 0.2 +- 0.2)
    cols = _mass_centre(aug_scale(big, generator=torch.Generator().manual_seed(2)))[:, 1]
    assert cols.std() > 0.5 and 4 < cols.min() and cols.max() < 16
    apply = torch.tensor([True, False] * 32)
    mixed = aug_rotate(x, generator=torch.Generator().manual_seed(0), apply=apply)
    assert torch.equal(mixed[1::2], x[1::2]) and torch.equal(mixed[::2], y[::2])
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    AdaptiveAugment(policy=("scale", "rotate"), p=1.0)(x, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown augmentation 'spin'"):
        tiny_config(augment_policy=("color", "spin"))


def test_diversity_targets_and_errors():
    x = torch.zeros(6, 16, 16, 3, dtype=torch.uint8)
    x[1] = 255
    x[3:] = 51  # 0.2 apart from class 2's black picture, which is alone
    data = SimpleNamespace(images=x.numpy(), labels=np.array([0, 0, 2, 1, 1, 1]))
    t = diversity_targets(data, 3)
    assert torch.allclose(t, torch.tensor([1.0, 1e-3, 0.5]))  # class 1 all equal: clamped; class 2: the mean
    # Unconditional: one class of all six (15 pairs: black-white 1 twice, black-grey 0.2 six times, white-grey 0.8
    # three times).
    assert torch.allclose(diversity_targets(data, 0), torch.tensor([(2 * 1 + 6 * 0.2 + 3 * 0.8) / 15]))
    state = new_state(tiny_config(augment="none", diversity_weight=1.0))
    with pytest.raises(ValueError, match="diversity_targets"):
        train_step(state, ToyData().x[:8], _Augmenter(state.config, 0.0))
    with pytest.raises(ValueError, match="diversity_weight"):
        tiny_config(diversity_weight=-1.0)
    with pytest.raises(ValueError, match="needs the dataset's pictures"):
        next(train(state, ToyData(), total_kimg=1))


def test_diversity_loss_spreads_a_collapsed_generator_and_is_inert_once_varied_enough():
    data = ToyData()
    x = data.x

    def pair_distance(G: torch.nn.Module) -> float:
        z = torch.randn(64, TINY_G.z_dim, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            img = G.synthesis(G.mapping(z, None), noise_mode="const")
        return float((img[:32] - img[32:]).abs().mean() / 2)

    def run(weight: float, target: float, steps: int = 12) -> tuple[TrainState, list[dict[str, float]]]:
        torch.manual_seed(0)
        state = new_state(tiny_config(augment="none", diversity_weight=weight, style_mixing_prob=0.0))
        with torch.no_grad():  # a nearly collapsed G: z moves w a tenth as much
            state.G.mapping.fc0.weight.mul_(0.1)
        aug = _Augmenter(state.config, 0.0)
        g = torch.Generator().manual_seed(3)
        targets = torch.tensor([target])
        losses = [
            train_step(state, x[torch.randint(0, 64, [8], generator=g)], aug, diversity_targets=targets)
            for _ in range(steps)
        ]
        return state, losses

    plain, _ = run(0.0, 0.3)
    pushed, losses = run(20.0, 0.3)
    assert pair_distance(pushed.G) > 3 * pair_distance(plain.G), (pair_distance(pushed.G), pair_distance(plain.G))
    ratios = [step["G_div"] for step in losses]  # the pairs' distance / the target, as logged
    assert sum(ratios[-3:]) > 2 * sum(ratios[:3]), ratios
    # With a target the pairs already exceed, the hinge is flat: the very same steps as without the loss.
    inert, losses = run(20.0, 1e-9, steps=3)
    plain, _ = run(0.0, 1e-9, steps=3)
    assert losses[0]["G_div"] > 1
    for a, b in zip(inert.G.parameters(), plain.G.parameters()):
        assert torch.equal(a, b)


def test_d_reconstruction_head_learns_to_rebuild_the_reals_from_d_features():
    torch.manual_seed(0)
    data = ToyData()
    state = new_state(tiny_config(augment="none", d_recon_weight=1.0))
    R = state.R
    assert R is not None and (R.in_res, R.out_res) == (8, 16)  # 16 px pictures: rebuilt whole from 8 px features
    x = data.x[:8]
    with torch.no_grad():
        logits, feat = state.D.forward_with_features(x, None, feature_res=8)
        assert feat.shape == (8, 32, 8, 8) and R(feat).shape == (8, 3, 16, 16)
        assert torch.equal(logits, state.D(x, None))  # the same pass as D's plain forward
    with pytest.raises(ValueError):
        state.D.forward_with_features(x, None, feature_res=2)
    aug = _Augmenter(state.config, 0.0)
    g = torch.Generator().manual_seed(3)
    errors = [train_step(state, data.sample(8, generator=g), aug)["D_recon"] for _ in range(40)]
    assert sum(errors[-5:]) < 0.5 * sum(errors[:5]), errors
    # Plain runs have no head.
    assert new_state(tiny_config(augment="none")).R is None
    with pytest.raises(ValueError):
        tiny_config(d_recon_weight=-1.0)
    with pytest.raises(ValueError, match="at least 16 px"):
        tiny_config(
            G=dataclasses.replace(TINY_G, img_resolution=8),
            D=dataclasses.replace(TINY_D, img_resolution=8),
            d_recon_weight=1.0,
        )


def test_resume_with_the_reconstruction_head_is_exact_and_it_can_be_switched_on(tmp_path):
    path = tmp_path / "snapshot-000000k-00000003.safetensors"
    state, _, data = trained(tiny_config(augment="diffaugment", r1_interval=2, d_recon_weight=0.5), 3, path)
    with safe_open(str(path), framework="pt") as f:
        assert any(k.startswith("R.") for k in f.keys()) and any(k.startswith("opt_R.") for k in f.keys())
    resumed = load_checkpoint(path)
    for run in (state, resumed):
        for _ in range(2):
            train_step(run, data.sample(8, generator=run.rng), _Augmenter(run.config, 0.0))
    for name in ("G", "D", "R"):
        for (k, a), b in zip(getattr(state, name).state_dict().items(), getattr(resumed, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    # A run without the head gets a fresh one at its next step once the config asks for it.
    plain = tmp_path / "plain.safetensors"
    trained(tiny_config(augment="none"), 1, plain)
    run = load_checkpoint(plain)
    assert run.R is None
    run.config = dataclasses.replace(run.config, d_recon_weight=1.0)
    losses = train_step(run, data.sample(8, generator=run.rng), _Augmenter(run.config, 0.0))
    assert run.R is not None and losses["D_recon"] > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in run.R.parameters())


def _rebuild_error(state: TrainState, data: ToyData) -> float:
    """Mean absolute error of G rebuilding every picture from its code."""
    with torch.no_grad():
        ws = state.codes[:, None].expand(-1, state.G.num_ws, -1)
        return (state.G.synthesis(ws, noise_mode="const") - data.x).abs().mean().item()


def test_g_reconstruction_learns_codes_that_rebuild_every_picture():
    torch.manual_seed(0)
    data = ToyData(16)
    state = new_state(tiny_config(augment="none", g_recon_weight=4.0, g_recon_batch=8))
    progress = train(state, data, total_kimg=0.008)  # the first step gives the run its codes
    losses = [next(progress).losses["G_recon"]]
    assert state.codes is not None and state.codes.shape == (16, TINY_G.w_dim)
    assert state.codes.std(0).min() > 0  # each picture its own (the mapping of a random z)
    before = _rebuild_error(state, data)
    losses += [p.losses["G_recon"] for p in train(state, data, total_kimg=0.4)]
    after = _rebuild_error(state, data)
    assert after < 0.5 * before, (before, after)  # (about 1.13 -> 0.41)
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10]), losses
    # A step moves only the codes of its pictures, each by about the learning rate (Adam per row: a code's second
    # moment and step count advance only when it is used).
    codes, steps = state.codes.detach().clone(), state.codes_t.clone()
    train_step(state, data.x[:8], _Augmenter(state.config, 0.0), rebuild=(torch.tensor([0, 3, 3]), data.x[[0, 3, 3]]))
    moved = (state.codes.detach() != codes).any(1)
    assert moved.tolist() == [i in (0, 3) for i in range(16)]
    assert (state.codes_t - steps).tolist() == [int(i in (0, 3)) for i in range(16)]  # row 3 twice: one step
    step = (state.codes.detach() - codes)[[0, 3]].abs()  # Adam's bound lr * sqrt((1 - b2^t) / (1 - b2)) per row
    t = state.codes_t[[0, 3]].max().item()  # (a whole-table Adam could step lr / sqrt(1 - b2) = 10 lr)
    assert step.max() <= state.config.g_recon_code_lr * ((1 - 0.99**t) / 0.01) ** 0.5 * 1.001
    # Pyramid L1: zero for equal pictures, and an edge costs more than its share of plain L1.
    a = data.x[:2]
    assert pyramid_l1(a, a).item() == 0
    shifted = torch.roll(a, 1, dims=3)
    assert pyramid_l1(a, shifted).item() > (a - shifted).abs().mean().item()
    with pytest.raises(ValueError, match="g_recon_weight"):
        tiny_config(g_recon_weight=-1.0)
    with pytest.raises(ValueError, match=r"starting codes of shape \(4, 32\); the run needs \(16, 32\)"):
        attach_codes(state, 16, init=torch.zeros(4, TINY_G.w_dim))
    w_avg = state.G.mapping.w_avg.clone()
    attach_codes(state, 16)  # random codes per class: G's tracked mean w stays as it was
    assert torch.equal(state.G.mapping.w_avg, w_avg) and state.codes_t.sum() == 0
    attach_codes(state, 16, init=codes)  # given codes are taken as they are
    assert torch.equal(state.codes.detach(), codes) and state.codes.requires_grad


def test_resume_with_g_reconstruction_is_exact_and_it_can_be_switched_on(tmp_path):
    data = ToyData(16)
    state = new_state(tiny_config(augment="diffaugment", r1_interval=2, g_recon_weight=0.5, g_recon_batch=4))
    run = tmp_path / "run"
    for _ in train(state, data, total_kimg=0.024, run_dir=run):
        pass
    path = latest_checkpoint(run)
    with safe_open(str(path), framework="pt") as f:
        assert f.get_tensor("codes").shape == (16, TINY_G.w_dim)
        assert f.get_tensor("codes.v").shape == (16, TINY_G.w_dim) and f.get_tensor("codes.t").shape == (16,)
    resumed = load_checkpoint(path)
    assert torch.equal(resumed.codes, state.codes)
    for r in (state, resumed):
        for _ in train(r, data, total_kimg=0.04):
            pass
    for name in ("G", "D"):
        for (k, a), b in zip(getattr(state, name).state_dict().items(), getattr(resumed, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k}"
    assert torch.equal(state.codes, resumed.codes)
    # Codes are kept for the pictures they were learnt on: another dataset is refused.
    with pytest.raises(ValueError, match="codes are for 16 pictures; the dataset has 8"):
        next(train(resumed, ToyData(8), total_kimg=1))
    # A run without them gets fresh codes when the config asks for them.
    plain = tmp_path / "plain.safetensors"
    trained(tiny_config(augment="none"), 1, plain)
    run2 = load_checkpoint(plain)
    assert run2.codes is None
    run2.config = dataclasses.replace(run2.config, g_recon_weight=1.0)
    step = next(train(run2, data, total_kimg=1))
    assert run2.codes is not None and step.losses["G_recon"] > 0
    with pytest.raises(ValueError, match="needs the run's codes"):
        train_step(run2, data.sample(8, generator=run2.rng), _Augmenter(run2.config, 0.0))


def test_a_resumed_run_can_change_its_learning_rate_and_r1_weight(tmp_path):
    path = tmp_path / "snapshot-000000k-00000003.safetensors"
    _, _, data = trained(tiny_config(augment="none", r1_interval=2), 3, path)
    runs = {}
    for scale in (1.0, 0.1):
        run = load_checkpoint(path)
        run.config = dataclasses.replace(run.config, g_lr=0.0025 * scale, d_lr=0.0025 * scale)
        before = [p.detach().clone() for p in run.G.parameters()]
        train_step(run, data.sample(8, generator=run.rng), _Augmenter(run.config, 0.0))
        runs[scale] = (run, [p.detach() - b for p, b in zip(run.G.parameters(), before)])
    run, small = runs[0.1]
    assert run.opt_G.param_groups[0]["lr"] == pytest.approx(0.00025)
    assert run.opt_D.param_groups[0]["lr"] == pytest.approx(0.00025 * 2 / 3)  # lazy R1 every 2 steps
    # Same gradients and Adam moments in the first step: a tenth of the lr moves G by a tenth as much.
    moved = [d for d in runs[1.0][1] if d.abs().max() > 0]
    assert moved
    for p, d_full, d_small in zip(run.G.parameters(), runs[1.0][1], small):
        ulp = 2 * torch.finfo(torch.float32).eps * p.detach().abs().max().item()  # rounding of p + step
        torch.testing.assert_close(d_small, 0.1 * d_full, rtol=1e-3, atol=ulp)
    # The lowered rate is saved with the run and kept when it resumes again.
    save_checkpoint(run, tmp_path / "lowered.safetensors")
    again = load_checkpoint(tmp_path / "lowered.safetensors")
    assert again.config.g_lr == pytest.approx(0.00025)
    assert again.opt_G.param_groups[0]["lr"] == pytest.approx(0.00025)
    # Without R1, D is no longer regularised lazily: its lr and betas lose the correction.
    again.config = dataclasses.replace(again.config, r1_gamma=0.0)
    train_step(again, data.sample(8, generator=again.rng), _Augmenter(again.config, 0.0))
    assert again.opt_D.param_groups[0]["lr"] == pytest.approx(0.00025)
    assert again.opt_D.param_groups[0]["betas"] == (0.0, 0.99)
    with pytest.raises(ValueError, match="learning rates"):
        dataclasses.replace(run.config, g_lr=0.0)
    with pytest.raises(ValueError, match="r1_gamma"):
        dataclasses.replace(run.config, r1_gamma=-1.0)
    with pytest.raises(ValueError, match="ema_kimg"):
        dataclasses.replace(run.config, ema_kimg=-1.0)


def test_adaptive_augment_raises_p_when_d_overfits():
    ada = AdaptiveAugment(p=0.0, target=0.6, adjust_kimg=1.0, interval=2)
    for _ in range(4):
        ada.observe(torch.ones(16, 1), batch_size=16)
    assert ada.p > 0
    p = ada.p
    for _ in range(4):
        ada.observe(-torch.ones(16, 1), batch_size=16)
    assert ada.p < p


def test_config_json_round_trip():
    cfg = tiny_config(augment_policy=("color",))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        dataclasses.replace(cfg, loss="nope")


def test_compact_checkpoint_is_smaller_and_resumes_closely(tmp_path):
    data = ToyData()
    state = new_state(tiny_config(augment="none"))
    aug = _Augmenter(state.config, 0.0)
    for _ in range(3):
        train_step(state, data.sample(8, generator=state.rng), aug)
    full = save_checkpoint(state, tmp_path / "full.safetensors")
    small = save_checkpoint(state, tmp_path / "small.safetensors", compact=True)
    assert small.stat().st_size < 0.6 * full.stat().st_size
    resumed = load_checkpoint(small)
    assert resumed.step == state.step and resumed.G.mapping.fc0.weight.dtype == torch.float32
    for k, v in state.G.state_dict().items():
        assert torch.allclose(resumed.G.state_dict()[k], v, rtol=1e-3, atol=1e-3), k
    # beta1 = 0: Adam's first moment is only the last gradient, so the compact file leaves it out, exactly.
    assert state.config.betas[0] == 0
    with safe_open(str(small), framework="pt") as f:
        keys = list(f.keys())
    assert any(k.endswith(".exp_avg_sq") for k in keys) and not any(k.endswith(".exp_avg") for k in keys)
    for opt in (resumed.opt_G, resumed.opt_D):
        assert all(torch.count_nonzero(st["exp_avg"]) == 0 for st in opt.state.values())
    # ... and a step from zeros is the step from the stored moment.
    exact, zeroed = load_checkpoint(full), load_checkpoint(full)
    for opt in (zeroed.opt_G, zeroed.opt_D):
        for st in opt.state.values():
            assert torch.count_nonzero(st["exp_avg"]) > 0
            st["exp_avg"].zero_()
    batch = data.sample(8, generator=torch.Generator().manual_seed(5))
    train_step(exact, batch, aug)
    train_step(zeroed, batch, aug)
    for net in ("G", "D"):
        for pa, pb in zip(getattr(exact, net).parameters(), getattr(zeroed, net).parameters()):
            assert torch.equal(pa, pb)


def test_training_precision_auto_picks_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    import ganmodels.device as device_mod

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (
        device_mod.training_precision("fp32", cpu) == "fp32" and device_mod.training_precision("bf16", cuda) == "bf16"
    )
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: True)
    assert device_mod.training_precision("auto", cpu) == "bf16"
    assert device_mod.training_precision("auto", cuda) == "fp32"
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    assert device_mod.training_precision("auto", cpu) == "fp32"


def test_codes_belong_to_the_pictures_they_were_learnt_on(tmp_path):
    from ganmodels.dataset import ImageDataset

    images = (ToyData(8).x.permute(0, 2, 3, 1).add(1).mul(127.5).round().clamp(0, 255)).to(torch.uint8).numpy()
    data = ImageDataset(images)
    state = new_state(tiny_config(augment="none", g_recon_weight=1.0, g_recon_batch=4))
    for _ in train(state, data, total_kimg=0.008, run_dir=tmp_path):
        pass
    assert state.codes_data == data_fingerprint(data) != ""
    resumed = load_checkpoint(latest_checkpoint(tmp_path))
    assert resumed.codes_data == state.codes_data
    next(train(resumed, ImageDataset(images.copy()), total_kimg=1))  # the same pictures: fine
    shuffled = ImageDataset(images[[1, 0, *range(2, 8)]])  # same size, another order: each code would be wrong
    with pytest.raises(ValueError, match="codes were learnt on other pictures"):
        next(train(load_checkpoint(latest_checkpoint(tmp_path)), shuffled, total_kimg=1))
