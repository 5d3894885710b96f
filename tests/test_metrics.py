"""Tests of ganmodels.metrics (SWD, FID, KID, IS, feature extractors) and ganmodels.inception (FID Inception-v3)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganmodels import inception as inc
from ganmodels import metrics as M
from ganmodels.networks import DiscriminatorConfig

# --------------------------------------------------------------------------------------------------------------
# Helpers


def smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:  # [N, 3, size, size] in (-1, 1)
    """Low-frequency random images: a structured distribution whose statistics noise visibly changes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 4, 4, generator=g)
    return torch.tanh(F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False))


def scipy_pyr_down(x: np.ndarray) -> np.ndarray:  # ProGAN's reference (scipy.ndimage, mirror borders)
    ndimage = pytest.importorskip("scipy.ndimage")
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256
    return ndimage.convolve(x, k[None, None], mode="mirror")[:, :, ::2, ::2]


def scipy_pyr_up(x: np.ndarray) -> np.ndarray:
    ndimage = pytest.importorskip("scipy.ndimage")
    k = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256
    n, c, h, w = x.shape
    z = np.zeros((n, c, 2 * h, 2 * w), np.float32)
    z[:, :, ::2, ::2] = x
    return ndimage.convolve(z, 4 * k[None, None], mode="mirror")


# --------------------------------------------------------------------------------------------------------------
# Image conversion and Laplacian pyramid


def test_to_float_images_conventions() -> None:
    u8 = np.zeros((2, 5, 4, 3), np.uint8)
    u8[0, 1, 2] = (0, 255, 51)
    x = M.to_float_images(u8)
    assert x.shape == (2, 3, 5, 4) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 1, 2], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    assert torch.equal(M.to_float_images(x.double()), x)
    with pytest.raises(ValueError):
        M.to_float_images(np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(ValueError):
        M.to_float_images(np.zeros((2, 4, 4, 3), np.int32))


def test_pyramid_matches_progan_scipy_reference_and_cv2() -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    down = M.pyr_down(x)
    assert down.shape == (2, 3, 16, 16)
    np.testing.assert_allclose(down.numpy(), scipy_pyr_down(x.numpy()), atol=1e-6)
    np.testing.assert_allclose(M.pyr_up(down).numpy(), scipy_pyr_up(down.numpy()), atol=1e-6)
    torch_levels = M.laplacian_pyramid(x, 3)
    cv2_levels = M.laplacian_pyramid_cv2(x, 3)
    assert [tuple(t.shape[-2:]) for t in torch_levels] == [(32, 32), (16, 16), (8, 8)]
    for a, b in zip(torch_levels, cv2_levels):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # A Laplacian pyramid reconstructs its input exactly.
    rec = torch_levels[-1]
    for band in torch_levels[-2::-1]:
        rec = M.pyr_up(rec) + band
    torch.testing.assert_close(rec, x, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------
# SWD


def test_sliced_wasserstein_of_translated_set_matches_expected_projection() -> None:
    # Projections of a translated copy shift by u.t, so SW1 = E_u |u.t| = |t| Γ(D/2) / (√π Γ((D+1)/2)).
    g = torch.Generator().manual_seed(0)
    dim = 10
    a = torch.randn(2000, dim, generator=g)
    t = torch.randn(dim, generator=g)
    b = a[torch.randperm(2000, generator=g)] + t
    got = M.sliced_wasserstein(a, b, dirs_per_repeat=1000, repeats=4, generator=g)
    expected = float(t.norm()) * math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)
    assert got == pytest.approx(expected, rel=0.05)
    assert M.sliced_wasserstein(a, a.flip(0), generator=g) == pytest.approx(0.0, abs=1e-6)


def test_swd_self_small_and_monotonic_in_noise() -> None:
    images = smooth_images(128, seed=0)
    noise_gen = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=noise_gen)

    def run(other: torch.Tensor) -> dict[str, float]:
        return M.swd(images, other, descriptors_per_image=64, generator=torch.Generator().manual_seed(2))

    self_d = run(images)
    assert set(self_d) == {"SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"}
    noisy = [run((images + sigma * noise).clamp(-1, 1))["SWDx1e3_avg"] for sigma in (0.05, 0.1, 0.2)]
    # "Self" is not exactly 0: each call samples its own descriptor positions (as ProGAN), which leaves a sampling
    # floor (~18 here, shrinking as 1/sqrt(#descriptors)); noise of sigma 0.2 gives ~70.
    assert self_d["SWDx1e3_avg"] < 0.35 * noisy[2]
    assert noisy[0] < noisy[1] < noisy[2]


def test_swd_normalises_each_set_per_channel() -> None:
    # ProGAN normalises each set's descriptors by their own per-channel mean / std, so an affine change of one set's
    # pixels leaves every level unchanged (same generator seed -> same descriptor positions).
    images, other = smooth_images(32, seed=0, size=16), smooth_images(32, seed=1, size=16)
    kwargs = dict(descriptors_per_image=16, dirs_per_repeat=32, repeats=2)
    plain = M.swd(images, other, **kwargs, generator=torch.Generator().manual_seed(0))
    affine = M.swd(images, 0.5 * other + 0.2, **kwargs, generator=torch.Generator().manual_seed(0))
    assert affine == pytest.approx(plain, rel=1e-4)


def test_swd_accepts_uint8_nhwc_and_is_reproducible() -> None:
    images = smooth_images(48, seed=3, size=16)
    u8 = ((images.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    kwargs = dict(descriptors_per_image=16, dirs_per_repeat=32, repeats=2)
    r1 = M.swd(u8, u8[:40], **kwargs, generator=torch.Generator().manual_seed(0))
    r2 = M.swd(M.to_float_images(u8), u8[:40], **kwargs, generator=torch.Generator().manual_seed(0))
    assert list(r1) == ["SWDx1e3_16", "SWDx1e3_avg"]
    assert r1 == r2  # same pixels, same generator: bit-identical
    with pytest.raises(ValueError):
        M.swd(u8, u8[:, :8, :8], generator=torch.Generator())


# --------------------------------------------------------------------------------------------------------------
# FID


def test_fid_matches_scipy_sqrtm() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    d = 24
    f1 = rng.standard_normal((400, d)) @ rng.standard_normal((d, d)) + 0.5
    f2 = rng.standard_normal((300, d)) @ rng.standard_normal((d, d)) * 0.7
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert M.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert M.fid_from_features(torch.from_numpy(f1), torch.from_numpy(f2)) == pytest.approx(expected, rel=1e-6)


def test_fid_with_singular_covariance_matches_eigenvalue_reference() -> None:
    # Fewer samples than dims: S1 is singular, the Cholesky path cannot be used. Reference: the eigenvalues of
    # S1 S2 (real, >= 0 up to round-off) straight from numpy's general eigensolver.
    rng = np.random.default_rng(2)
    f1, f2 = rng.standard_normal((20, 30)), rng.standard_normal((50, 30)) * 1.5 + 0.1
    (mu1, s1), (mu2, s2) = M.feature_stats(f1), M.feature_stats(f2)
    np.testing.assert_allclose(s1, np.cov(f1, rowvar=False), rtol=1e-12, atol=1e-12)
    eig = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())
    assert M.fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert M.fid_from_features(f2, f1) == pytest.approx(expected, rel=1e-6)  # S2 non-singular: Cholesky path


def test_fid_closed_forms() -> None:
    # 1-d Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    assert M.fid_from_stats(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) == (
        pytest.approx(9.0 + 1.0)
    )
    f = np.random.default_rng(1).standard_normal((200, 16)) * 3
    assert abs(M.fid_from_features(f, f)) < 1e-9
    assert M.fid_from_features(f, f + 1.0) == pytest.approx(16.0, rel=1e-9)  # pure mean shift


# --------------------------------------------------------------------------------------------------------------
# KID


def naive_kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out pair by pair."""
    d, m, n = x.shape[1], len(x), len(y)

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_equals_naive_mmd_on_full_sets() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.3
    # One subset of the full size is a permutation of each set; the unbiased MMD^2 does not depend on the order.
    got = M.kid_from_features(x, y, num_subsets=1, max_subset_size=1000, generator=np.random.default_rng(1))
    assert got == pytest.approx(naive_kid(x, y), rel=1e-5)  # float32 Gram matrices, as the reference


def test_kid_zero_for_same_distribution_larger_for_shift() -> None:
    rng = np.random.default_rng(0)
    f1, f2 = rng.standard_normal((300, 32)), rng.standard_normal((300, 32))
    kw = dict(num_subsets=10, max_subset_size=300)
    same = M.kid_from_features(f1, f2, **kw, generator=np.random.default_rng(1))
    shifted = M.kid_from_features(f1, f2 + 0.3, **kw, generator=np.random.default_rng(1))
    assert abs(same) < 0.015  # unbiased: scatters around 0 (|same| ~ 0.005 here)
    assert shifted > 0.2  # ~0.3
    assert shifted > 20 * abs(same)


def test_precision_recall_on_points_whose_neighbourhoods_are_known() -> None:
    # Data: 10 points 1 apart on a line, so with k = 1 each real ball has radius 1.
    real = np.stack([np.arange(10.0), np.zeros(10)], axis=1)  # [10, 2]
    # Generated: 5 points between reals 0..5 (inside the data's manifold) and 5 far away (outside).
    near = np.stack([np.arange(5) + 0.5, np.zeros(5)], axis=1)
    far = np.stack([100 + 10 * np.arange(5.0), np.zeros(5)], axis=1)
    fake = np.concatenate([near, far])
    precision, recall = M.precision_recall(real, fake, k=1)
    assert precision == 0.5
    # Generated balls: radius 1 around the near points (covers reals 0..5), 10 around the far ones (none): 6 / 10.
    assert recall == 0.6
    assert M.precision_recall(real, real, k=1) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((200, 8)), rng.standard_normal((200, 8))
    p_same, r_same = M.precision_recall(a, b)
    p_shift, r_shift = M.precision_recall(a, b + 3)
    assert p_same > 0.6 and r_same > 0.6 and p_shift < 0.1 and r_shift < 0.1
    # Sets larger than one block of rows give the numbers of a direct computation.
    big_r, big_f = rng.standard_normal((1500, 4)), rng.standard_normal((1300, 4)) + 0.5
    r_t, f_t = torch.from_numpy(big_r), torch.from_numpy(big_f)
    radii_r = torch.cdist(r_t, r_t).kthvalue(4, dim=1).values
    radii_f = torch.cdist(f_t, f_t).kthvalue(4, dim=1).values
    direct_p = (torch.cdist(f_t, r_t) <= radii_r[None]).any(1).double().mean().item()
    direct_r = (torch.cdist(r_t, f_t) <= radii_f[None]).any(1).double().mean().item()
    assert M.precision_recall(big_r, big_f) == (direct_p, direct_r)
    with pytest.raises(ValueError):
        M.precision_recall(real, fake[:, :1])
    with pytest.raises(ValueError):
        M.precision_recall(real[:3], fake, k=3)


def test_manifold_coverage_says_which_probes_are_covered() -> None:
    real = np.stack([np.arange(10.0), np.zeros(10)], axis=1)  # [10, 2]; with k = 1 every ball has radius 1
    probes = np.array([[0.5, 0.0], [9.0, 1.0], [9.0, 1.01], [-2.0, 0.0]])
    covered = M.manifold_coverage(real, probes, k=1)
    assert covered.dtype == bool and covered.tolist() == [True, True, False, False]
    assert M.manifold_coverage(real, probes, k=3).tolist() == [True, True, True, True]  # radius 3
    with pytest.raises(ValueError, match="more than 3"):
        M.manifold_coverage(real[:3], probes, k=3)


# --------------------------------------------------------------------------------------------------------------
# Inception Score


def test_inception_score_extremes() -> None:
    uniform = np.full((100, 7), 1 / 7)
    assert M.inception_score(uniform, splits=10) == pytest.approx((1.0, 0.0))
    k = 5
    one_hot = np.tile(np.eye(k), (40, 1))  # 200 rows; every split of 20 holds each class 4 times
    mean, std = M.inception_score(one_hot, splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-12)
    same_class = np.zeros((50, k))
    same_class[:, 0] = 1
    assert M.inception_score(same_class, splits=5)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        M.inception_score(np.full((10, 3), 0.5), splits=2)  # rows do not sum to 1


# --------------------------------------------------------------------------------------------------------------
# Feature extractors


def test_random_conv_features_deterministic_from_seed() -> None:
    images = smooth_images(6, seed=0)
    a = M.RandomConvFeatures(0)
    f1, f2 = a(images), M.RandomConvFeatures(0)(images)
    assert isinstance(a, M.FeatureExtractor)
    assert f1.shape == (6, 2 * (32 + 64 + 128 + 256))
    assert torch.equal(f1, f2)
    assert not torch.allclose(f1, M.RandomConvFeatures(1)(images))
    assert torch.isfinite(f1).all() and f1.std() > 0
    # compute_features converts uint8 NHWC and batches without changing results.
    u8 = ((images.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    feats = M.compute_features(a, u8, batch_size=4)
    assert feats.dtype == np.float64 and feats.shape == (6, 960)
    np.testing.assert_allclose(feats, a(M.to_float_images(u8)).double().numpy(), rtol=1e-5, atol=1e-6)


def test_discriminator_features_deterministic_and_side_effect_free() -> None:
    torch.manual_seed(0)  # only for the random-weight D itself
    D = DiscriminatorConfig(img_resolution=32, channel_base=512, channel_max=64, spectral_norm=True).build().train()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    ext = M.DiscriminatorFeatures(D)
    images = smooth_images(4, seed=1, size=64)  # resized to 32 internally
    f1, f2 = ext(images), ext(images)
    assert f1.shape == (4, 32 + 64 + 64)  # pooled outputs of b32, b16, b8
    assert torch.equal(f1, f2)
    assert D.training  # mode restored
    after = D.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # spectral-norm vectors untouched


def test_fid_from_random_conv_features_separates_distributions() -> None:
    ext = M.RandomConvFeatures(0, channels=(8, 16, 32))  # 112-d (< N: non-singular covariances), small eigenproblems
    a, b = smooth_images(128, seed=0), smooth_images(128, seed=1)  # two draws of one distribution
    fa, fb, fc = (M.compute_features(ext, x) for x in (a, b, 0.5 * b))  # fc: contrast halved
    same, other = M.fid_from_features(fa, fb), M.fid_from_features(fa, fc)
    assert same < 0.2 * other


# --------------------------------------------------------------------------------------------------------------
# FID Inception-v3 architecture


def _conv(name: str, o: int, i: int, kh: int, kw: int | None = None) -> dict[str, tuple[int, ...]]:
    return {
        f"{name}.conv.weight": (o, i, kh, kh if kw is None else kw),
        f"{name}.bn.weight": (o,),
        f"{name}.bn.bias": (o,),
        f"{name}.bn.running_mean": (o,),
        f"{name}.bn.running_var": (o,),
        f"{name}.bn.num_batches_tracked": (),
    }


def _block_a(p: str, i: int, pool: int) -> dict[str, tuple[int, ...]]:
    convs = [("branch1x1", 64, i, 1), ("branch5x5_1", 48, i, 1), ("branch5x5_2", 64, 48, 5)]
    convs += [("branch3x3dbl_1", 64, i, 1), ("branch3x3dbl_2", 96, 64, 3), ("branch3x3dbl_3", 96, 96, 3)]
    convs += [("branch_pool", pool, i, 1)]
    return {k: v for n, o, ii, kk in convs for k, v in _conv(f"{p}.{n}", o, ii, kk).items()}


def _block_c(p: str, c7: int) -> dict[str, tuple[int, ...]]:
    convs = [("branch1x1", 192, 768, 1, 1), ("branch7x7_1", c7, 768, 1, 1), ("branch7x7_2", c7, c7, 1, 7)]
    convs += [("branch7x7_3", 192, c7, 7, 1), ("branch7x7dbl_1", c7, 768, 1, 1), ("branch7x7dbl_2", c7, c7, 7, 1)]
    convs += [("branch7x7dbl_3", c7, c7, 1, 7), ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", 192, c7, 1, 7)]
    convs += [("branch_pool", 192, 768, 1, 1)]
    return {k: v for n, o, i, kh, kw in convs for k, v in _conv(f"{p}.{n}", o, i, kh, kw).items()}


def _block_e(p: str, i: int) -> dict[str, tuple[int, ...]]:
    convs = [("branch1x1", 320, i, 1, 1), ("branch3x3_1", 384, i, 1, 1), ("branch3x3_2a", 384, 384, 1, 3)]
    convs += [("branch3x3_2b", 384, 384, 3, 1), ("branch3x3dbl_1", 448, i, 1, 1), ("branch3x3dbl_2", 384, 448, 3, 3)]
    convs += [("branch3x3dbl_3a", 384, 384, 1, 3), ("branch3x3dbl_3b", 384, 384, 3, 1), ("branch_pool", 192, i, 1, 1)]
    return {k: v for n, o, ii, kh, kw in convs for k, v in _conv(f"{p}.{n}", o, ii, kh, kw).items()}


def expected_inception_shapes() -> dict[str, tuple[int, ...]]:
    """pytorch-fid's FID Inception-v3 (torchvision Inception3, 1008 classes, no aux head), written out by hand."""
    s: dict[str, tuple[int, ...]] = {}
    for name, o, i, k in [
        ("Conv2d_1a_3x3", 32, 3, 3),
        ("Conv2d_2a_3x3", 32, 32, 3),
        ("Conv2d_2b_3x3", 64, 32, 3),
        ("Conv2d_3b_1x1", 80, 64, 1),
        ("Conv2d_4a_3x3", 192, 80, 3),
    ]:
        s |= _conv(name, o, i, k)
    s |= _block_a("Mixed_5b", 192, 32) | _block_a("Mixed_5c", 256, 64) | _block_a("Mixed_5d", 288, 64)
    s |= _conv("Mixed_6a.branch3x3", 384, 288, 3) | _conv("Mixed_6a.branch3x3dbl_1", 64, 288, 1)
    s |= _conv("Mixed_6a.branch3x3dbl_2", 96, 64, 3) | _conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    s |= _block_c("Mixed_6b", 128) | _block_c("Mixed_6c", 160) | _block_c("Mixed_6d", 160) | _block_c("Mixed_6e", 192)
    s |= _conv("Mixed_7a.branch3x3_1", 192, 768, 1) | _conv("Mixed_7a.branch3x3_2", 320, 192, 3)
    s |= _conv("Mixed_7a.branch7x7x3_1", 192, 768, 1) | _conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7)
    s |= _conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1) | _conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    s |= _block_e("Mixed_7b", 1280) | _block_e("Mixed_7c", 2048)
    s |= {"fc.weight": (1008, 2048), "fc.bias": (1008,)}
    return s


@pytest.fixture(scope="module")
def inception_model() -> inc.FIDInceptionV3:
    torch.manual_seed(0)  # random weights; only shapes and plumbing are tested
    return inc.FIDInceptionV3().eval()


def test_inception_state_dict_keys_and_shapes(inception_model: inc.FIDInceptionV3) -> None:
    got = {k: tuple(v.shape) for k, v in inception_model.state_dict().items()}
    expected = expected_inception_shapes()
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert got == expected
    assert len(got) == 94 * 6 + 2  # 94 BasicConv2d (conv + 5 bn entries) + fc
    assert got["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert got["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
    # torchvision's inception_v3 has 27,161,264 parameters with the aux head (3,326,696) and 1000 classes.
    assert sum(p.numel() for p in inception_model.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049


def test_inception_tf_quirks(inception_model: inc.FIDInceptionV3) -> None:
    ones = torch.ones(1, 2, 5, 5)
    assert torch.equal(inc._avg_pool_3x3(ones), ones)  # padded zeros not counted (count_include_pad=False)
    assert inception_model.Mixed_7b.pool == "avg" and inception_model.Mixed_7c.pool == "max"


def test_inception_forward_shapes(inception_model: inc.FIDInceptionV3) -> None:
    images = smooth_images(2, seed=0)  # 32 px, resized to 299 inside
    out = inception_model(images)
    assert out.features.shape == (2, 2048) and out.logits.shape == (2, 1008)
    torch.testing.assert_close(out.logits, inception_model.fc(out.features))
    ext = inc.InceptionFeatures(inception_model)
    assert isinstance(ext, M.FeatureExtractor)


def test_load_fid_inception_round_trip(inception_model: inc.FIDInceptionV3, tmp_path: Path) -> None:
    state = {k: v for k, v in inception_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: v + 0.5 if k.endswith("running_mean") else v for k, v in state.items()}  # distinguishable values
    path = tmp_path / inc.FID_WEIGHTS_FILENAME
    torch.save(state, path)
    model = inc.load_fid_inception(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


class _Marker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.path,))


@pytest.mark.filterwarnings("ignore:.*jit.script.*:DeprecationWarning", "ignore:Detected pickle protocol:UserWarning")
def test_load_fid_inception_rejects_wrong_files(inception_model: inc.FIDInceptionV3, tmp_path: Path) -> None:
    linear = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), linear)
    with pytest.raises(ValueError, match="missing keys"):
        inc.load_fid_inception(linear)

    wrong_fc = dict(inception_model.state_dict())
    wrong_fc["fc.weight"], wrong_fc["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)  # torchvision's classes
    wrong = tmp_path / "wrong_fc.pth"
    torch.save(wrong_fc, wrong)
    with pytest.raises(ValueError, match=r"wrong shapes .*fc\.(weight|bias)"):
        inc.load_fid_inception(wrong)

    scripted = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(ValueError, match="TorchScript"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that it looks like a TorchScript archive
        inc.load_fid_inception(scripted)

    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": _Marker(marker)}, evil, pickle_protocol=4)
    with pytest.raises(ValueError, match="weights-only"):
        inc.load_fid_inception(evil)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # control: an unrestricted unpickler would have run the code
    assert marker.exists()

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError):
        inc.load_fid_inception(garbage)


def test_intra_class_distance_and_diversity_ratio():
    from ganmodels.metrics import diversity_ratio, intra_class_distance

    x = np.zeros((6, 4, 4, 3), np.uint8)
    x[2] = 255  # class 0: black, black, white -> pairs 0, 1, 1
    x[4] = 51  # class 1: black, grey 0.2 -> 0.2
    labels = np.array([0, 0, 0, 1, 1, 3])  # class 2 empty, class 3 one picture
    d = intra_class_distance(x, labels, 4)
    assert torch.allclose(d[:2], torch.tensor([2 / 3, 0.2], dtype=torch.float64)) and d[2:].isnan().all()
    assert intra_class_distance(x, labels, 4, per_class=2)[0] == 0  # only the two black ones
    floats = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.allclose(intra_class_distance(floats, labels, 4)[:2], d[:2])
    fake = torch.tensor([1 / 3, 0.2, float("nan"), 0.5], dtype=torch.float64)
    assert diversity_ratio(fake, d) == pytest.approx(0.75)  # (0.5 + 1) / 2 over the classes both know
    with pytest.raises(ValueError, match="no class"):
        diversity_ratio(torch.full([4], float("nan")), d)
    with pytest.raises(ValueError, match="6 pictures but 5 labels"):
        intra_class_distance(x, labels[:5], 4)
