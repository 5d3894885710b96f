"""Class-conditional training: k-means labels, labelled datasets, conditional G/D, transfer from a run, sampling."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from ganmodels.clusters import (
    _split_counts,
    class_correspondence,
    cluster_images,
    image_features,
    kmeans,
    match_classes,
    refine_clusters,
)
from ganmodels.dataset import DatasetError, ImageDataset, load_labels, save_labels
from ganmodels.generate import seed_to_class, seeds_to_ws
from ganmodels.networks import class_probs, one_hot_c, random_c
from ganmodels.training import TrainConfig, _Augmenter, init_from, new_state, save_checkpoint, train, train_step
from tests.conftest import TINY_D, TINY_G, tiny_generator

PALETTE = np.array([[230, 25, 25], [25, 230, 25], [25, 25, 230], [230, 230, 25]], dtype=np.uint8)


def toy_images(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16 px pictures: a colour of PALETTE (the class) with a white square in the middle; uint8 [N, 16, 16, 3]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(PALETTE), n)
    x = np.repeat(np.repeat(PALETTE[labels][:, None, None], 16, 1), 16, 2).copy()
    x[:, 5:11, 5:11] = 255
    return x, labels


def cond_config(classes: int, **kw) -> TrainConfig:
    base = dict(
        G=dataclasses.replace(TINY_G, c_dim=classes),
        D=dataclasses.replace(TINY_D, c_dim=classes),
        batch_size=8,
        precision="fp32",
        channels_last=False,
        ema_kimg=0.05,
        r1_gamma=0.1,
        augment="none",
    )
    base.update(kw)
    return TrainConfig(**base)


# ---- clustering


def test_kmeans_finds_separated_groups_numbered_by_size():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float64)
    sizes = [50, 30, 20]
    truth = np.repeat(np.arange(3), sizes)
    x = centres[truth] + rng.normal(scale=0.5, size=(100, 2))
    result = kmeans(x, k=3, seed=1)
    assert result.labels.dtype == np.int64 and result.labels.shape == (100,)
    assert np.array_equal(result.labels, truth)  # largest group is class 0, and so on
    assert result.sizes.tolist() == sizes
    assert np.allclose(result.centres, centres, atol=0.3)
    again = kmeans(x, k=3, seed=1)
    assert np.array_equal(again.labels, result.labels)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(x, k=101)


def test_image_features_are_mirror_invariant_and_clusters_follow_colour():
    x, _ = toy_images(48)
    x[::3, :, :4] = 0  # a black stripe on the left of some pictures...
    flipped = x[:, :, ::-1].copy()  # ...is on the right in their mirror images
    f = image_features(np.concatenate([x, flipped]), dims=8)
    assert f.shape == (96, 8)
    assert np.allclose(f[:48], f[48:], atol=1e-4)
    result = cluster_images(toy_images(64)[0], k=4)
    truth = toy_images(64)[1]
    # each cluster is exactly one palette colour
    for j in range(4):
        assert len(set(truth[result.labels == j].tolist())) == 1


def test_class_consistency_is_one_for_the_data_and_low_for_wrong_labels():
    from ganmodels.clusters import FeatureSpace, class_consistency

    x, truth = toy_images(64)
    space = FeatureSpace.fit(x, dims=8)
    feats = space.project(x)
    centres = np.stack([feats[truth == k].mean(0) for k in range(4)])
    assert class_consistency(space, centres, x, truth) == 1.0
    assert class_consistency(space, centres, x, (truth + 1) % 4) == 0.0
    assert np.allclose(space.project(x[:5]), feats[:5])


def striped_images(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """toy_images where every other picture has a black band across its top: (pictures, colour, colour * 2 + band)."""
    x, colour = toy_images(n, seed)
    band = np.arange(n) % 2
    x[band == 1, :4] = 0
    return x, colour, colour * 2 + band


def test_split_counts_are_proportional_and_bounded():
    assert _split_counts(np.array([50, 30, 20]), 10).tolist() == [5, 3, 2]
    assert _split_counts(np.array([50, 30, 20]), 3).tolist() == [1, 1, 1]
    assert _split_counts(np.array([90, 2, 8]), 20).tolist() == [17, 1, 2]
    assert _split_counts(np.array([3, 1]), 4).tolist() == [3, 1]  # never more sub-classes than members
    with pytest.raises(ValueError, match=r"k must be in 2\.\.4"):
        _split_counts(np.array([3, 1]), 5)


def test_refine_clusters_splits_each_class_into_its_own_sub_classes():
    x, colour, truth = striped_images(64)
    result = refine_clusters(x, colour, k=8, seed=0)
    assert result.labels.dtype == np.int64 and result.labels.shape == (64,)
    assert result.parent.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # sizes are about equal: two sub-classes each
    for j in range(8):
        members = result.labels == j
        assert members.any()
        assert set(colour[members].tolist()) == {result.parent[j]}  # inside its parent
        assert len(set(truth[members].tolist())) == 1  # and split by the band
    again = refine_clusters(x, colour, k=8, seed=0)
    assert np.array_equal(again.labels, result.labels)
    assert np.array_equal(class_correspondence(colour, result.labels, num_new=8), result.parent)
    with pytest.raises(ValueError, match=r"k must be in 4\.\.64"):
        refine_clusters(x, colour, k=3)
    with pytest.raises(ValueError, match="class 1 has no pictures"):
        refine_clusters(x, np.where(colour == 1, 0, colour), k=8)


def test_class_correspondence_takes_the_majority():
    old = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    new = np.array([0, 0, 0, 1, 1, 1, 1, 3])
    # class 0: {0, 0, 1} -> 0; class 1: {1, 1, 2, 2} -> tie, the lower; class 2: no pictures; class 3: {2}
    assert class_correspondence(old, new, num_new=4).tolist() == [0, 1, -1, 2]
    with pytest.raises(ValueError, match="same pictures"):
        class_correspondence(old, new[:4], num_new=4)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        class_correspondence(old, new, num_new=3)


def test_match_classes_maps_only_a_relabelling_of_the_same_pictures():
    old = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    # a refinement: every picture keeps its old class through the map
    fine = match_classes(old, np.array([0, 1, 2, 2, 3, 4, 4, 5]), num_new=6)
    assert fine.class_map.tolist() == [0, 0, 1, 1, 2, 2] and fine.agreement == 1.0 and not fine.rejected
    # 5 of 8 keep their class: mapped; 4 of 8 with min_agreement 0.6: not
    new = np.array([0, 0, 0, 1, 1, 1, 1, 3])
    assert match_classes(old, new, num_new=4).agreement == pytest.approx(5 / 8)
    assert match_classes(old, new, num_new=4).class_map.tolist() == [0, 1, -1, 2]
    alternating = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # new 0 -> old 1, new 1 -> old 2: pictures 2, 4, 5, 7 keep
    assert match_classes(old, alternating, num_new=2).class_map.tolist() == [1, 2]
    worse = match_classes(old, alternating, num_new=2, min_agreement=0.6)
    assert worse.class_map is None and worse.agreement == pytest.approx(4 / 8) and worse.rejected
    # the same labels: nothing to map, and not a rejection
    same = match_classes(old, old, num_new=3)
    assert same.class_map is None and same.identical and same.agreement == 1.0 and not same.rejected


# ---- labelled datasets


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_labels_round_trip_and_sampling_matches_unlabelled(tmp_path, kind):
    from ganmodels.dataset import _write_folder, _write_npz

    x, labels = toy_images(20)
    names = [f"{i}.png" for i in range(20)]
    out = tmp_path / ("d.npz" if kind == "npz" else "d")
    if kind == "npz":
        _write_npz(out, list(x), names, [False] * 20, xflip=False)
    else:
        _write_folder(out, list(x), names, [False] * 20, resolution=16, xflip=False)
    assert load_labels(out) is None
    save_labels(out, labels)
    assert np.array_equal(load_labels(out), labels)
    ds = ImageDataset.from_path(out, xflip=True)
    assert ds.num_classes == 4
    assert np.isclose(ds.class_frequencies().sum(), 1.0)
    imgs, got = ds.sample_labeled(12, generator=torch.Generator().manual_seed(3))
    plain = ds.sample(12, generator=torch.Generator().manual_seed(3))
    assert torch.equal(imgs, plain)  # the same draws
    # each picture's colour is its label's colour
    corner = ((imgs[:, :, 0, 0].permute(1, 0).T + 1) * 127.5).round().numpy()  # [12, 3]
    assert np.allclose(corner, PALETTE[got.numpy()], atol=1)
    with pytest.raises(DatasetError, match="labels must be 20"):
        save_labels(out, labels[:5])


def test_dataset_cluster_cli_writes_labels_and_preview(tmp_path):
    from ganmodels.cli import main
    from ganmodels.dataset import _write_npz

    x, truth = toy_images(40)
    out = tmp_path / "d.npz"
    _write_npz(out, list(x), [str(i) for i in range(40)], [False] * 40, xflip=False)
    assert main(["dataset", "cluster", str(out), "--k", "4", "--preview", str(tmp_path / "p.png")]) == 0
    labels = load_labels(out)
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3]
    assert all(len(set(truth[labels == j].tolist())) == 1 for j in range(4))
    assert (tmp_path / "p.png").stat().st_size > 0
    assert main(["dataset", "cluster", str(out), "--k", "41"]) == 2


# ---- conditional networks and sampling


def test_one_hot_and_random_c():
    G = dataclasses.replace(TINY_G, c_dim=3).build()
    assert torch.equal(one_hot_c(G, [2, 0]), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match="class must be"):
        one_hot_c(G, [3])
    G.mapping.c_probs.copy_(torch.tensor([0.0, 1.0, 0.0]))
    c = random_c(G, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c.argmax(1), torch.ones(50, dtype=torch.long))
    U = TINY_G.build()
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    assert random_c(U, 4, generator=g).shape == (4, 0)
    assert torch.equal(g.get_state(), before)  # unconditional sampling draws nothing extra


def test_seed_classes_follow_class_frequencies_and_can_be_chosen():
    G = dataclasses.replace(TINY_G, c_dim=4).build().eval()
    G.mapping.c_probs.copy_(torch.tensor([0.7, 0.1, 0.1, 0.1]))
    classes = [seed_to_class(s, G) for s in range(400)]
    assert classes == [seed_to_class(s, G) for s in range(400)]
    assert 0.6 < classes.count(0) / 400 < 0.8
    a = seeds_to_ws(G, [7])
    b = seeds_to_ws(G, [7], classes=[seed_to_class(7, G)])
    c = seeds_to_ws(G, [7], classes=[(seed_to_class(7, G) + 1) % 4])
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert seed_to_class(7, TINY_G.build()) == -1
    G.mapping.c_probs.zero_()  # a broken prior falls back to uniform
    assert torch.allclose(class_probs(G), torch.full([4], 0.25))


def test_conditional_model_file_round_trip(tmp_path):
    from ganmodels.modelfile import load_model, save_model
    from ganmodels.stio import save_safetensors

    cfg = dataclasses.replace(TINY_G, c_dim=3)
    G = cfg.build().eval()
    G.mapping.c_probs.copy_(torch.tensor([0.5, 0.3, 0.2]))
    path = save_model(tmp_path / "m.safetensors", G, config=cfg)
    m = load_model(path)
    assert torch.equal(m.G.mapping.c_probs, G.mapping.c_probs)
    assert torch.equal(seeds_to_ws(m.G, [1, 2]), seeds_to_ws(G, [1, 2]))
    # a file without class frequencies (e.g. converted from NVIDIA's format) samples classes uniformly
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "generator.mapping.c_probs"}
        meta = f.metadata()
    save_safetensors(tmp_path / "n.safetensors", tensors, meta)
    assert torch.allclose(load_model(tmp_path / "n.safetensors").G.mapping.c_probs, torch.full([3], 1 / 3))


# ---- conditional training


def test_conditional_training_learns_the_class_colours():
    x, labels = toy_images(64)
    data = ImageDataset(x, labels=labels)
    state = new_state(cond_config(4, g_lr=0.01, d_lr=0.01, seed=1))
    for G in (state.G, state.G_ema):
        G.mapping.c_probs.copy_(torch.as_tensor(data.class_frequencies(), dtype=torch.float32))
    z = torch.randn(64, TINY_G.z_dim, generator=torch.Generator().manual_seed(1))
    classes = torch.arange(64) % 4
    palette = torch.from_numpy(PALETTE / 255.0).float()  # [4, 3]

    def class_error_and_accuracy() -> tuple[float, float]:
        """Distance of the samples' corner colour to their class's colour, and how often it is nearest to it."""
        G = state.G_ema
        with torch.no_grad():
            img = G.synthesis(G.mapping(z, one_hot_c(G, classes)), noise_mode="const")
        corner = (img[:, :, :4, :4].mean((2, 3)) + 1) / 2  # [64, 3]
        d = (corner[:, None] - palette[None]).abs().mean(2)  # [64, 4]
        return float(d[torch.arange(64), classes].mean()), float((d.argmin(1) == classes).float().mean())

    e0, _ = class_error_and_accuracy()
    for _ in train(state, data, total_kimg=2.4):
        pass
    e1, accuracy = class_error_and_accuracy()
    assert e1 < 0.5 * e0, (e0, e1)
    assert accuracy >= 0.85  # an unconditional G would draw the class's colour for about a quarter of them


def test_diversity_loss_pairs_generated_pictures_of_one_class():
    x, labels = toy_images(64)
    data = ImageDataset(x, labels=labels)
    state = new_state(cond_config(4, diversity_weight=1.0))
    seen: list[torch.Tensor] = []
    forward = state.D.forward

    def spy(img, c, **kw):
        seen.append(c.detach().clone())
        return forward(img, c, **kw)

    state.D.forward = spy
    losses = next(train(state, data, total_kimg=0.008)).losses
    g_step_c = seen[0]  # [8, 4]: the classes D judged in the G step
    assert torch.equal(g_step_c[:4], g_step_c[4:]) and len(set(g_step_c.argmax(1).tolist())) > 1
    assert losses["G_div"] > 0


def test_d_judges_the_rebuilt_pictures_with_their_own_classes():
    x, labels = toy_images(64)
    data = ImageDataset(x, labels=labels)
    state = new_state(cond_config(4, g_recon_weight=1.0, g_recon_batch=8, g_recon_adv_weight=0.5))
    D_before = copy.deepcopy(state.D)  # (the step's D pass changes D)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    forward = state.D.forward

    def spy(img, c, **kw):
        seen.append((img.detach().clone(), c.detach().clone()))
        return forward(img, c, **kw)

    state.D.forward = spy
    drawn: list[torch.Tensor] = []
    batch = data.batch
    data.batch = lambda idx, flip=None: (drawn.append(idx.clone()), batch(idx, flip=flip))[1]
    losses = next(train(state, data, total_kimg=0.008)).losses
    assert len(seen) == 4 and len(drawn) == 2  # G: fakes, the rebuilt pictures; D: reals, fakes
    rebuilt, c = seen[1]  # [8, 3, 16, 16], [8, 4]
    assert c.argmax(1).tolist() == labels[drawn[1].numpy()].tolist()  # each judged as its picture's class
    assert losses["G_recon_adv"] == pytest.approx(torch.nn.functional.softplus(-D_before(rebuilt, c)).mean().item())
    # Without the classes of the rebuilt pictures a conditional run cannot judge them
    aug = _Augmenter(state.config, 0.0)
    reals = data.batch(torch.arange(8))
    with pytest.raises(ValueError, match="needs the classes of the rebuilt pictures"):
        train_step(state, reals, aug, torch.from_numpy(labels[:8]), rebuild=(torch.arange(8), reals))
    with pytest.raises(ValueError, match="g_recon_adv_weight must be >= 0"):
        cond_config(4, g_recon_adv_weight=-1.0)


def test_conditional_training_needs_labels():
    state = new_state(cond_config(4))
    aug = _Augmenter(state.config, 0.0)
    with pytest.raises(ValueError, match="needs the labels"):
        train_step(state, torch.zeros(8, 3, 16, 16), aug)
    x, _ = toy_images(16)
    with pytest.raises(ValueError, match="conditional on 4 classes"):
        next(train(state, ImageDataset(x), total_kimg=1))


def test_init_from_an_unconditional_run_keeps_its_generator(tmp_path):
    src = new_state(TrainConfig(G=TINY_G, D=TINY_D, batch_size=8, precision="fp32", channels_last=False, augment="ada"))
    x, _ = toy_images(16)
    data = ImageDataset(x)
    for _ in train(src, data, total_kimg=0.04):
        pass
    src.augment_p = 0.25
    ckpt = save_checkpoint(src, tmp_path / "snap.safetensors")
    z = torch.randn(4, TINY_G.z_dim, generator=torch.Generator().manual_seed(0))

    # Same architecture: everything is copied, the generator is identical.
    same = new_state(TrainConfig(G=TINY_G, D=TINY_D, batch_size=8, precision="fp32", channels_last=False))
    report = init_from(same, ckpt)
    assert report.fresh == {"G": [], "G_ema": [], "D": []} and report.augment_p == 0.25
    assert same.augment_p == 0.0  # the new run does not use ADA
    for a, b in ((same.G, src.G), (same.G_ema, src.G_ema), (same.D, src.D)):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)

    # Conditional: the mapping is widened; with the new class columns at zero it maps z exactly as before.
    cond = new_state(cond_config(4, augment="ada"))
    report = init_from(cond, ckpt)
    assert report.adapted["G"] == ["mapping.fc0.weight"] and cond.augment_p == 0.25
    assert cond.prior_kimg == src.cur_nimg / 1000 and cond.prior_seconds == src.seconds > 0
    cond.cur_nimg, cond.seconds = 2000, 7.0
    assert cond.total_kimg == src.cur_nimg / 1000 + 2 and cond.total_seconds == src.seconds + 7
    from ganmodels.training import load_checkpoint

    again = load_checkpoint(save_checkpoint(cond, tmp_path / "cond.safetensors"))
    assert (again.prior_kimg, again.prior_seconds) == (cond.prior_kimg, cond.prior_seconds)
    assert "mapping.c_probs" in report.fresh["G"] and "b4.out.weight" in report.fresh["D"]
    assert torch.count_nonzero(cond.G_ema.mapping.fc0.weight[:, TINY_G.z_dim :]) == 0  # class columns start at 0
    with torch.no_grad():
        before = src.G_ema.mapping(z, None)
        after = cond.G_ema.mapping(z, one_hot_c(cond.G_ema, [0, 1, 2, 3]))
    assert torch.allclose(before, after, atol=1e-5)
    with pytest.raises(ValueError, match="neither a training checkpoint"):
        init_from(cond, _plain_safetensors(tmp_path))
    wide = new_state(
        TrainConfig(
            G=dataclasses.replace(TINY_G, img_resolution=32),
            D=dataclasses.replace(TINY_D, img_resolution=32),
            batch_size=8,
            precision="fp32",
            channels_last=False,
        )
    )
    report = init_from(wide, ckpt)  # other resolution: only the shared low-resolution layers are taken
    assert report.copied["G"] > 0 and report.fresh["G"]


def test_init_from_a_narrower_run_widens_without_changing_what_it_computes(tmp_path):
    src = new_state(TrainConfig(G=TINY_G, D=TINY_D, batch_size=8, precision="fp32", channels_last=False))
    x, _ = toy_images(16)
    for _ in train(src, ImageDataset(x), total_kimg=0.04):
        pass
    ckpt = save_checkpoint(src, tmp_path / "snap.safetensors")
    # channel base 256 -> 512 doubles the 16 px layers (16 -> 32 channels) of G and D; 4 and 8 px stay at the cap.
    wide_cfg = TrainConfig(
        G=dataclasses.replace(TINY_G, channel_base=512),
        D=dataclasses.replace(TINY_D, channel_base=512),
        batch_size=8,
        precision="fp32",
        channels_last=False,
    )
    wide = new_state(wide_cfg)
    report = init_from(wide, ckpt)
    assert report.fresh == {"G": [], "G_ema": [], "D": []}
    assert "synthesis.b16.conv1.weight" in report.adapted["G"] and "b16.fromrgb.weight" in report.adapted["D"]
    assert wide.G.synthesis.b16.conv1.weight.shape == (32, 32, 3, 3) != src.G.synthesis.b16.conv1.weight.shape
    n = len(report.adapted["G"])
    assert f"G: {report.copied['G']} tensors copied, {n} adapted (" in report.summary()
    assert f"... {n - 3} more)" in report.summary()
    z = torch.randn(4, TINY_G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for old, new in ((src.G_ema, wide.G_ema), (src.G, wide.G)):
            a, b = old(z, None, noise_mode="const"), new(z, None, noise_mode="const")  # [4, 3, 16, 16]
            assert a.shape == b.shape == (4, 3, 16, 16) and a.abs().mean() > 0.01
            assert torch.allclose(a, b, atol=1e-5)
        imgs = torch.from_numpy(x[:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert torch.allclose(src.D(imgs, None), wide.D(imgs, None), atol=1e-5)
    # The new channels' outgoing columns start at zero and training grows them.
    w = wide.G.synthesis.b16.conv1.weight
    assert torch.count_nonzero(w[:16, 16:]) == 0 and torch.count_nonzero(w[16:]) > 0
    for _ in train(wide, ImageDataset(x), total_kimg=0.016):
        pass
    assert torch.count_nonzero(wide.G.synthesis.b16.conv1.weight[:16, 16:]) > 0


def test_init_from_with_a_class_map_starts_every_class_as_its_old_one(tmp_path):
    x, colour, _ = striped_images(32)
    src = new_state(cond_config(4, d_recon_weight=1.0))
    for _ in train(src, ImageDataset(x, labels=colour), total_kimg=0.032):
        pass
    ckpt = save_checkpoint(src, tmp_path / "snap.safetensors")
    new = new_state(cond_config(8, d_recon_weight=1.0))
    class_map = np.array([0, 0, 1, 1, 2, 2, 3, -1])  # the last class has no old one
    for bad in (class_map[:7], np.array([0, 0, 1, 1, 2, 2, 4, -1]), np.array([0, 0, 1, 1, 2, 2, 3, -2])):
        with pytest.raises(ValueError, match="class_map must give each of the 8 classes one of the source's 4"):
            init_from(new_state(cond_config(8)), ckpt, class_map=bad)
    report = init_from(new, ckpt, class_map=class_map)
    assert report.classes_mapped
    assert report.adapted["G"] == ["mapping.embed.weight"] and report.adapted["D"] == ["mapping.embed.weight"]
    assert report.fresh["G"] == ["mapping.c_probs"] and report.fresh["D"] == [] and report.fresh["R"] == []
    for a, b in zip(new.R.state_dict().values(), src.R.state_dict().values()):  # D's reconstruction head too
        assert torch.equal(a, b)
    z = torch.randn(8, TINY_G.z_dim, generator=torch.Generator().manual_seed(0))
    imgs = torch.from_numpy(x[:8]).permute(0, 3, 1, 2).float() / 127.5 - 1  # [8, 3, 16, 16]
    fine_c = [0, 1, 2, 3, 4, 5, 6, 1]  # classes with an old one
    with torch.no_grad():
        for old_net, new_net in ((src.G_ema, new.G_ema), (src.G, new.G)):
            a = old_net(z, one_hot_c(old_net, class_map[fine_c]), noise_mode="const")  # [8, 3, 16, 16]
            b = new_net(z, one_hot_c(new_net, fine_c), noise_mode="const")
            assert a.abs().mean() > 0.01 and torch.allclose(a, b, atol=1e-5)
        a = src.D(imgs, one_hot_c(src.G, class_map[fine_c]))  # [8, 1]
        b = new.D(imgs, one_hot_c(new.G, fine_c))
        assert torch.allclose(a, b, atol=1e-5)
        # class 7 maps to no old class: its embedding column is zero
        assert torch.count_nonzero(new.G.mapping.embed.weight[:, 7]) == 0
        # without a map the new classes only keep the first four columns (widening)
        plain = new_state(cond_config(8))
        widened = init_from(plain, ckpt)
        assert widened.adapted["G"] == ["mapping.embed.weight"] and not widened.classes_mapped
        c = plain.G_ema(z[:2], one_hot_c(plain.G_ema, [0, 1]), noise_mode="const")
        assert not torch.allclose(c[1], new.G_ema(z[1:2], one_hot_c(new.G_ema, [1]), noise_mode="const")[0], atol=1e-3)


def test_cli_refined_classes_continue_a_run(tmp_path, capsys):
    from ganmodels.cli import main
    from ganmodels.dataset import _write_npz
    from ganmodels.modelfile import load_model
    from ganmodels.training import checkpoint_labels, latest_checkpoint

    x, colour, _ = striped_images(32)
    data = tmp_path / "d.npz"
    _write_npz(data, list(x), [str(i) for i in range(32)], [False] * 32, xflip=False)
    assert main(["dataset", "cluster", str(data), "--k", "8", "--refine"]) == 2
    assert "has none" in capsys.readouterr().err
    save_labels(data, colour)
    common = ["--batch", "8", "--cbase", "256", "--cmax", "32", "--z-dim", "32", "--w-dim", "32", "--kimg", "0.016"]
    common += ["--precision", "fp32", "--threads", "1"]
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(data), "--out", str(run), "--cond", *common]) == 0
    snap = latest_checkpoint(run)
    assert np.array_equal(checkpoint_labels(snap), colour)

    fine_data = tmp_path / "fine.npz"
    fine_data.write_bytes(data.read_bytes())
    assert main(["dataset", "cluster", str(fine_data), "--k", "3", "--refine"]) == 2
    assert "--k in 4..32" in capsys.readouterr().err
    assert main(["dataset", "cluster", str(fine_data), "--k", "8", "--refine"]) == 0
    assert "split from its 4 classes" in capsys.readouterr().out
    labels = load_labels(fine_data)
    assert sorted(set(labels.tolist())) == list(range(8))
    assert all(len(set(colour[labels == j].tolist())) == 1 for j in range(8))  # each inside one old class
    out = tmp_path / "fine_run"
    assert (
        main(["--quiet", "train", str(fine_data), "--out", str(out), "--cond", "--init-from", str(snap), *common]) == 0
    )
    printed = capsys.readouterr()
    assert "each class starts as the class of" in printed.out and "(100 % of the pictures keep their old class)" in (
        printed.out
    )
    assert "warning" not in printed.err
    trained = load_model(out / "model-latest.safetensors")
    assert trained.G.c_dim == 8
    assert np.allclose(trained.G.mapping.c_probs.numpy(), np.bincount(labels, minlength=8) / 32)

    # The same classes numbered otherwise: mapped too, and classes are drawn as often as the new data has them.
    turned = tmp_path / "turned.npz"
    turned.write_bytes(data.read_bytes())
    save_labels(turned, (colour + 1) % 4)
    out = tmp_path / "turned_run"
    assert main(["--quiet", "train", str(turned), "--out", str(out), "--cond", "--init-from", str(snap), *common]) == 0
    assert "(100 % of the pictures keep their old class)" in capsys.readouterr().out
    freqs = np.bincount((colour + 1) % 4, minlength=4) / 32
    assert not np.allclose(freqs, np.bincount(colour, minlength=4) / 32)
    assert np.allclose(load_model(out / "model-latest.safetensors").G.mapping.c_probs.numpy(), freqs)

    # Other pictures: the classes cannot be matched, and the user is told.
    x2, colour2, _ = striped_images(24, seed=1)
    other = tmp_path / "other.npz"
    _write_npz(other, list(x2), [str(i) for i in range(24)], [False] * 24, xflip=False)
    save_labels(other, colour2 * 2 + np.arange(24) % 2)
    out = tmp_path / "other_run"
    assert main(["--quiet", "train", str(other), "--out", str(out), "--cond", "--init-from", str(snap), *common]) == 0
    printed = capsys.readouterr()
    assert "each class starts" not in printed.out
    assert "warning: the classes could not be matched" in printed.err and "no labels of these 24 pictures" in (
        printed.err
    )


def _plain_safetensors(tmp_path):
    from ganmodels.stio import save_safetensors

    return save_safetensors(tmp_path / "plain.safetensors", {"x": torch.zeros(2)}, {"format": "other"})


def test_cli_conditional_run_from_a_model_file(tmp_path, capsys):
    from ganmodels.cli import main
    from ganmodels.components import discriminator_component
    from ganmodels.dataset import _write_npz
    from ganmodels.modelfile import load_model, save_model

    x, _ = toy_images(32)
    data = tmp_path / "d.npz"
    _write_npz(data, list(x), [str(i) for i in range(32)], [False] * 32, xflip=False)
    common = ["--batch", "8", "--cbase", "256", "--cmax", "32", "--z-dim", "32", "--w-dim", "32", "--kimg", "0.016"]
    common += ["--precision", "fp32", "--threads", "1"]
    assert main(["--quiet", "train", str(data), "--out", str(tmp_path / "r0"), "--cond", *common]) == 2
    assert "dataset cluster" in capsys.readouterr().err
    assert main(["dataset", "cluster", str(data), "--k", "4"]) == 0
    G = TINY_G.build().eval()
    model = save_model(
        tmp_path / "m.safetensors",
        G,
        config=TINY_G,
        card={"kimg": 100.0, "hours": 2.0},
        components={"discriminator": discriminator_component(TINY_D.build(), TINY_D)},
    )
    out = tmp_path / "r1"
    assert main(["--quiet", "train", str(data), "--out", str(out), "--cond", "--init-from", str(model), *common]) == 0
    assert "adapted (mapping.fc0.weight)" in capsys.readouterr().out
    trained = load_model(out / "model-latest.safetensors")
    assert trained.G.c_dim == 4
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= metrics["class_consistency"] <= 1.0
    assert trained.card["kimg"] == 100.016 and trained.card["hours"] >= 2.0  # the model's training included
    freqs = np.bincount(load_labels(data), minlength=4) / 32
    assert np.allclose(trained.G.mapping.c_probs.numpy(), freqs)
    assert (
        main(
            ["--quiet", "train", str(data), "--out", str(out), "--resume", str(out), "--init-from", str(model), *common]
        )
        == 2
    )


def test_cli_augment_p_starts_ada_where_the_source_run_left_it(tmp_path, capsys):
    from safetensors import safe_open

    from ganmodels.cli import main
    from ganmodels.training import latest_checkpoint

    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))
    common = ["--batch", "4", "--cbase", "64", "--cmax", "16", "--z-dim", "8", "--w-dim", "8", "--kimg", "0.008"]
    common += ["--precision", "fp32", "--threads", "1", "--snap-kimg", "0.008"]
    out = tmp_path / "r"
    assert (
        main(["--quiet", "train", str(data), "--out", str(out), *common, "--augment", "ada", "--augment-p", "0.4"]) == 0
    )
    with safe_open(str(latest_checkpoint(out)), framework="pt") as f:
        p = json.loads(f.metadata()["counters"])["augment_p"]
    assert p != 0.0 and abs(p - 0.4) < 0.01  # started at 0.4, then adapted by at most a small step
    # only for a new ADA run, in 0..1
    assert main(["--quiet", "train", str(data), "--out", str(tmp_path / "x"), *common, "--augment-p", "0.4"]) == 2
    bad = ["--augment", "ada", "--augment-p", "1.5"]
    assert main(["--quiet", "train", str(data), "--out", str(tmp_path / "y"), *common, *bad]) == 2
    assert "--augment-p" in capsys.readouterr().err


def test_conditional_truncation_pulls_towards_the_class_mean():
    from ganmodels.generate import truncation_centre, truncation_centres

    G, _ = tiny_generator(c_dim=3)
    mapping = G.mapping
    centres = mapping.class_w_avg()  # [3, w_dim]
    assert centres.shape == (3, TINY_G.w_dim) and mapping.class_w_avg() is centres  # cached
    g = torch.Generator().manual_seed(0)  # the estimate: 256 fixed z per class
    for i in range(3):
        z = torch.randn([256, TINY_G.z_dim], generator=g)
        w = mapping(z, one_hot_c(G, [i] * 256))[:, 0]  # [256, w_dim]
        assert torch.allclose(centres[i], w.mean(0), atol=1e-6)
    assert not torch.allclose(centres[0], centres[1], atol=1e-3)
    z = torch.randn([4, TINY_G.z_dim], generator=torch.Generator().manual_seed(1))
    c = one_hot_c(G, [0, 1, 2, 2])
    full = mapping(z, c)  # [4, num_ws, w_dim]
    assert torch.equal(mapping(z, c, truncation_psi=0), centres[[0, 1, 2, 2]][:, None].expand_as(full))
    half = mapping(z, c, truncation_psi=0.5)
    assert torch.allclose(half, (full + centres[[0, 1, 2, 2]][:, None]) / 2, atol=1e-6)
    cut = mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.equal(cut[:, :2], half[:, :2]) and torch.equal(cut[:, 2:], full[:, 2:])
    assert torch.equal(mapping(z, torch.zeros(4, 3), truncation_psi=0)[:, 0], mapping.w_avg.expand(4, -1))
    # The helper the editor uses gives the same centre, so its own lerp matches seeds_to_ws bit for bit.
    assert torch.equal(truncation_centre(G, 2), centres[2]) and torch.equal(truncation_centre(G), mapping.w_avg)
    assert torch.equal(truncation_centres(G, c), centres[[0, 1, 2, 2]][:, None])  # [4, 1, w_dim], as the encoder uses
    base = seeds_to_ws(G, [7], classes=[1])
    assert torch.equal(truncation_centre(G, 1).lerp(base, 0.7), seeds_to_ws(G, [7], classes=[1], truncation_psi=0.7))
    # New weights, new centres.
    with torch.no_grad():
        mapping.fc0.bias.add_(0.5)
    assert not torch.allclose(mapping.class_w_avg(), centres, atol=1e-4)
    with pytest.raises(ValueError, match="unconditional"):
        tiny_generator()[0].mapping.class_w_avg()
    with torch.inference_mode():  # weights without version counters: computed every time, the same
        frozen = tiny_generator(c_dim=3)[0]
    assert torch.equal(frozen.mapping.class_w_avg(), frozen.mapping.class_w_avg())


def test_cli_sample_draws_the_given_class(tmp_path):
    from PIL import Image

    from ganmodels.cli import main
    from ganmodels.generate import synthesize, to_uint8
    from ganmodels.modelfile import save_model

    cfg = dataclasses.replace(TINY_G, c_dim=3)
    torch.manual_seed(0)
    G = cfg.build().eval()
    path = save_model(tmp_path / "m.safetensors", G, config=cfg)
    out = tmp_path / "g.png"
    assert main(["--quiet", "sample", str(path), "--seeds", "4", "--class", "2", "--out", str(out)]) == 0
    expected = to_uint8(synthesize(G, seeds_to_ws(G, [4], truncation_psi=0.7, classes=[2])))[0]
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert main(["--quiet", "sample", str(path), "--seeds", "4", "--class", "3", "--out", str(out)]) == 2


def test_resuming_from_a_snapshot_uses_the_class_labels_stored_in_it(tmp_path, capsys):
    from ganmodels.cli import main
    from ganmodels.dataset import _write_npz
    from ganmodels.training import checkpoint_labels, latest_checkpoint, load_checkpoint

    x, truth = toy_images(32)
    data = tmp_path / "d.npz"
    _write_npz(data, list(x), [str(i) for i in range(32)], [False] * 32, xflip=False)
    save_labels(data, truth)
    common = ["--batch", "8", "--cbase", "256", "--cmax", "32", "--z-dim", "32", "--w-dim", "32"]
    common += ["--precision", "fp32", "--threads", "1"]
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(data), "--out", str(run), "--cond", "--kimg", "0.016", *common]) == 0
    state = load_checkpoint(latest_checkpoint(run))
    snap = save_checkpoint(state, tmp_path / "small.safetensors", compact=True, data_labels=truth)
    assert np.array_equal(checkpoint_labels(snap), truth)
    assert np.array_equal(checkpoint_labels(latest_checkpoint(run)), truth)  # a run's snapshots keep them too

    # Elsewhere the data got other labels (or none): the snapshot's own are used.
    save_labels(data, (truth + 1) % 4)
    capsys.readouterr()
    out = tmp_path / "resumed"
    assert (
        main(["--quiet", "train", str(data), "--out", str(out), "--resume", str(snap), "--kimg", "0.032", *common]) == 0
    )
    assert "using the class labels stored in small.safetensors" in capsys.readouterr().out
    x2, _ = toy_images(20)
    other = tmp_path / "other.npz"
    _write_npz(other, list(x2), [str(i) for i in range(20)], [False] * 20, xflip=False)
    out2 = tmp_path / "resumed2"
    assert main(["--quiet", "train", str(other), "--out", str(out2), "--resume", str(snap), *common]) == 2
    assert "for 32 pictures" in capsys.readouterr().err


def test_balance_draws_variants_of_one_emoji_less_often_and_a_resumed_run_keeps_or_changes_it(tmp_path, capsys):
    import json

    from ganmodels.cli import main
    from ganmodels.dataset import _write_npz
    from ganmodels.training import latest_checkpoint, load_checkpoint

    x, truth = toy_images(32)
    labels = np.where(np.arange(32) < 24, 0, truth % 2 + 1)  # class 0: 4 emoji in 6 skin tones each
    tones = ["1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff", "fe0f"]
    names = [f"1f46{i // 6}-{tones[i % 6]}.webp" for i in range(24)] + [f"1f3{i:02x}.webp" for i in range(8)]
    data = tmp_path / "d.npz"
    _write_npz(data, list(x), names, [False] * 32, xflip=False)
    save_labels(data, labels)
    common = ["--batch", "8", "--cbase", "256", "--cmax", "32", "--z-dim", "32", "--w-dim", "32"]
    common += ["--precision", "fp32", "--threads", "1", "--cond"]
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(data), "--out", str(run), "--kimg", "0.008", "--balance", "1", *common]) == 0
    said = capsys.readouterr().out
    assert "32 pictures in 12 groups" in said and "a group of 6 is drawn 1x as often" in said
    assert json.loads((run / "training_options.json").read_text())["balance"] == 1.0
    probs = load_checkpoint(latest_checkpoint(run)).G.mapping.c_probs  # 4 of 12 emoji are class 0
    assert torch.allclose(probs[:3], torch.tensor([4 / 12, 4 / 12, 4 / 12]), atol=1e-6)

    # resumed without --balance: the run's own is kept; with another, the fakes' classes follow it
    assert (
        main(["--quiet", "train", str(data), "--out", str(run), "--resume", str(run), "--kimg", "0.016", *common]) == 0
    )
    assert "changed balance" not in capsys.readouterr().out
    assert json.loads((run / "training_options.json").read_text())["balance"] == 1.0
    args = ["--quiet", "train", str(data), "--out", str(run), "--resume", str(run), "--kimg", "0.024", "--balance", "0"]
    assert main([*args, *common]) == 0
    assert "changed balance to 0" in capsys.readouterr().out
    state = load_checkpoint(latest_checkpoint(run))
    for G in (state.G, state.G_ema):
        assert torch.allclose(G.mapping.c_probs[:3], torch.tensor([24 / 32, 4 / 32, 4 / 32]), atol=1e-6)
    assert json.loads((run / "training_options.json").read_text())["balance"] == 0.0

    # names that say nothing or wrong values: a clear error before any training
    bare = tmp_path / "bare.npz"
    np.savez(bare, images=x)
    assert (
        main(["--quiet", "train", str(bare), "--out", str(tmp_path / "b"), "--balance", "0.5", "--kimg", "0.008"]) == 2
    )
    assert "keeps none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--quiet", "train", str(data), "--out", str(tmp_path / "c"), "--balance", "2"])
    assert "within 0..1" in capsys.readouterr().err


def test_snapshot_metrics_compare_with_the_data_as_it_is_in_a_balanced_run(tmp_path):
    from ganmodels.trainreport import SnapshotReporter

    x, truth = toy_images(32)
    state = new_state(cond_config(4))
    plain = ImageDataset(x, labels=truth)
    weights = np.where(np.arange(32) < 8, 10.0, 0.1)  # far from uniform
    balanced = ImageDataset(x, labels=truth, weights=weights)
    rows = []
    for name, data in (("a", plain), ("b", balanced)):
        reporter = SnapshotReporter(tmp_path / name, dataset=data, data_name="toy", metric_images=64)
        rows.append(reporter.write_metrics(state))
    for key in ("SWDx1e3_avg", "pair_l1_real", "pair_l1_fake", "diversity_ratio"):
        assert rows[0][key] == rows[1][key]
    weighted_reals = balanced.sample(64, generator=torch.Generator().manual_seed(2024))
    assert not torch.equal(weighted_reals, plain.sample(64, generator=torch.Generator().manual_seed(2024)))
