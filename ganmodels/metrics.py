"""Image-set metrics: sliced Wasserstein distance, FID, KID and Inception Score.

Image conventions accepted by every function that takes images (see :func:`to_float_images`):

* ``uint8`` arrays / tensors, channels last ``[N, H, W, C]`` in ``[0, 255]`` (dataset layout), or
* floating-point arrays / tensors, channels first ``[N, C, H, W]`` in ``[-1, 1]`` (generator output layout).

SWD follows Karras et al., "Progressive Growing of GANs" (``metrics/sliced_wasserstein.py`` of
progressive_growing_of_gans): it works on raw pixels and needs no network. FID / KID / IS need a feature network,
passed in as a :class:`FeatureExtractor`. This module ships two that need no downloads:

* :class:`DiscriminatorFeatures`: pooled block activations of a trained StyleGAN2 discriminator, and
* :class:`RandomConvFeatures`: a fixed random-weight conv net (a sanity metric only, see its docstring).

The standard Inception-v3 (for numbers comparable with papers) lives in :mod:`ganmodels.inception` and needs the
user's own weights file. Randomness always comes from an explicit ``torch.Generator`` / ``np.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ganmodels.networks import Discriminator

ImageBatch = np.ndarray | torch.Tensor

# --------------------------------------------------------------------------------------------------------------
# Image conversion


def to_float_images(images: ImageBatch) -> torch.Tensor:
    """Convert a batch to float32 ``[N, C, H, W]`` in ``[-1, 1]`` on the CPU.

    ``uint8`` input must be channels last ``[N, H, W, C]`` (mapped by ``x / 127.5 - 1``); floating-point input must
    already be channels first ``[N, C, H, W]`` in ``[-1, 1]`` and is only cast. Anything else raises ValueError.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a numpy array or torch tensor, got {type(images).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected a 4-d image batch, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.detach().to("cpu").permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # [N, H, W, C] -> [N, C, H, W]
    if x.is_floating_point():
        return x.detach().to("cpu", torch.float32)  # [N, C, H, W]
    raise ValueError(f"expected uint8 [N, H, W, C] or float [N, C, H, W] images, got dtype {x.dtype}")


def _num_images(images: ImageBatch) -> int:
    return int(images.shape[0])


# --------------------------------------------------------------------------------------------------------------
# Laplacian pyramid (5-tap binomial filter [1, 4, 6, 4, 1] / 16, mirror borders: the same as cv2.pyrDown /
# cv2.pyrUp and ProGAN's scipy.ndimage.convolve(mode="mirror") version). The torch functions are the reference path
# (separable, written as sums of shifted slices); swd() uses the cv2 fast path, which tests check against both.

_BINOMIAL_5 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


def _slice(dim: int, start: int, stop: int, step: int = 1) -> tuple[slice, ...]:
    index = [slice(None)] * 4
    index[dim] = slice(start, stop, step)
    return tuple(index)


def _down_axis(x: torch.Tensor, dim: int) -> torch.Tensor:  # blur along dim (2 or 3), keep even samples
    n = x.shape[dim]
    if n < 3:
        raise ValueError(f"cannot blur a dimension of size {n} with mirror borders")
    xp = F.pad(x, (2, 2, 0, 0) if dim == 3 else (0, 0, 2, 2), mode="reflect")  # 'reflect' == scipy 'mirror'
    out = xp[_slice(dim, 0, n, 2)] * _BINOMIAL_5[0]
    for i in range(1, 5):
        out = out + xp[_slice(dim, i, i + n, 2)] * _BINOMIAL_5[i]
    return out


def _up_axis(x: torch.Tensor, dim: int) -> torch.Tensor:  # zero-insert along dim (2 or 3), blur x2: n -> 2n
    # Polyphase form of "insert zeros, mirror-pad, convolve with [1, 4, 6, 4, 1] / 8". Mirroring the zero-inserted
    # signal reflects x at the start (x[-1] = x[1]) but replicates it at the end (x[n] = x[n-1]).
    n = x.shape[dim]
    if n < 2:
        raise ValueError(f"cannot upsample a dimension of size {n}")
    xp = torch.cat([x[_slice(dim, 1, 2)], x, x[_slice(dim, n - 1, n)]], dim=dim)  # [.., n + 2, ..]
    left, mid, right = xp[_slice(dim, 0, n)], xp[_slice(dim, 1, n + 1)], xp[_slice(dim, 2, n + 2)]
    even = (left + right) * 0.125 + mid * 0.75
    odd = (mid + right) * 0.5
    out = torch.stack([even, odd], dim=dim + 1)  # [.., n, 2, ..]
    return out.flatten(dim, dim + 1)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5x5 binomial kernel, keep even rows / columns: ``[N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]``."""
    return _down_axis(_down_axis(x, 3), 2)


def pyr_up(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Zero-insert and blur with 4x the binomial kernel: ``[N, C, H, W] -> [N, C, 2H, 2W]`` (cropped to ``size``)."""
    y = _up_axis(_up_axis(x, 3), 2)
    if size is not None:
        y = y[:, :, : size[0], : size[1]]
    return y


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of float images ``[N, C, H, W]``: band-pass levels, finest first, low-pass residual last.

    Pure-torch reference path (any device, differentiable). :func:`swd` uses the equivalent OpenCV fast path.
    """
    pyramid = [images.float()]
    for _ in range(1, num_levels):
        low = pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyr_up(low, size=(pyramid[-1].shape[2], pyramid[-1].shape[3]))
        pyramid.append(low)
    return pyramid


def laplacian_pyramid_cv2(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Same as :func:`laplacian_pyramid` (to float32 round-off), with cv2.pyrDown / cv2.pyrUp per plane, on CPU.

    About 30x faster than the torch path on CPU for small images.
    """
    import cv2  # runtime dependency (opencv-contrib-python-headless); imported lazily, only SWD needs it

    n, c, h, w = images.shape
    planes = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy()).reshape(n * c, h, w)
    pyramid = []
    for _ in range(1, num_levels):
        ph, pw = planes.shape[1:]
        low = np.stack([cv2.pyrDown(p) for p in planes])  # [N * C, ceil(h/2), ceil(w/2)]
        band = np.empty_like(planes)
        for i, (p, q) in enumerate(zip(planes, low)):
            np.subtract(p, cv2.pyrUp(q)[:ph, :pw], out=band[i])
        pyramid.append(torch.from_numpy(band).view(n, c, ph, pw))
        planes = low
    pyramid.append(torch.from_numpy(planes).view(n, c, *planes.shape[1:]))
    return pyramid


# --------------------------------------------------------------------------------------------------------------
# Sliced Wasserstein distance (ProGAN)

_NHOOD = 7  # descriptor size: 7x7 neighbourhoods


def _sample_descriptors(
    level: torch.Tensor, count: int, *, generator: torch.Generator, out: torch.Tensor | None = None
) -> torch.Tensor:  # [N, C, H, W] -> [N * count, C * 49], written into ``out`` if given
    n, c, h, w = level.shape
    r = _NHOOD // 2
    if h < _NHOOD or w < _NHOOD:
        raise ValueError(f"pyramid level {h}x{w} is smaller than the {_NHOOD}x{_NHOOD} descriptor")
    # Centres uniform in [r, size - r), as ProGAN's np.random.randint(H, S - H); corners are centres - r.
    ys = torch.randint(0, h - 2 * r, (n, count), generator=generator)  # [N, K]
    xs = torch.randint(0, w - 2 * r, (n, count), generator=generator)  # [N, K]
    corner = (torch.arange(n).view(n, 1) * (c * h) + ys) * w + xs  # [N, K] flat index of channel 0's corner
    off = torch.arange(_NHOOD)
    pattern = (torch.arange(c).view(c, 1, 1) * h + off.view(1, -1, 1)) * w + off.view(1, 1, -1)  # [C, 7, 7]
    idx = (corner.view(-1, 1) + pattern.view(1, -1)).view(-1)  # [N * K * C * 49]
    if out is None:
        out = torch.empty(n * count, c * _NHOOD * _NHOOD, dtype=level.dtype)
    torch.index_select(level.reshape(-1), 0, idx, out=out.view(-1))
    return out


def _channel_moments(desc: torch.Tensor, channels: int) -> torch.Tensor:  # [M, C * 49] -> [2, C] float64 sums
    ones = desc.new_ones(1, desc.shape[0])  # column sums as a matmul: several times faster than .sum(0) on CPU
    sums = torch.cat([ones @ desc, ones @ desc.square()]).double()  # [2, C * 49]
    return sums.view(2, channels, -1).sum(dim=2)


class _DescriptorSet:
    """All descriptors of one image set at one pyramid level ``[M, C * 49]`` and their per-channel mean / std."""

    def __init__(self, total: int, channels: int) -> None:
        self.desc = torch.empty(total, channels * _NHOOD * _NHOOD)  # [M, C * 49]
        self.channels = channels
        self.moments = torch.zeros(2, channels, dtype=torch.float64)
        self.filled = 0

    def add(self, level: torch.Tensor, count: int, generator: torch.Generator) -> None:
        rows = level.shape[0] * count
        block = self.desc[self.filled : self.filled + rows]
        _sample_descriptors(level, count, generator=generator, out=block)
        self.moments += _channel_moments(block, self.channels)
        self.filled += rows

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:  # [C * 49] each, float32
        count = self.filled * _NHOOD * _NHOOD
        mean = self.moments[0] / count
        std = (self.moments[1] / count - mean * mean).clamp_min(0).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))
        expand = _NHOOD * _NHOOD
        return mean.float().repeat_interleave(expand), std.float().repeat_interleave(expand)


def _sorted_projections(
    desc: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dirs: torch.Tensor, out: torch.Tensor
) -> np.ndarray:  # [M, D] -> [P, M] projections of the normalised descriptors, each row sorted
    # (desc - mean) / std @ dirs.T, with the normalisation folded into the directions (no normalised copy).
    scaled = dirs / std  # [P, D]
    torch.matmul(scaled, desc.T, out=out)  # [P, M]
    proj = out.numpy()
    proj.sort(axis=1)  # numpy's SIMD sort is ~10x faster than torch.sort on CPU
    proj -= (scaled @ mean).numpy()[:, None]  # a constant shift per direction commutes with sorting
    return proj


def sliced_wasserstein(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    dirs_per_repeat: int = 128,
    repeats: int = 4,
    generator: torch.Generator,
    stats_a: tuple[torch.Tensor, torch.Tensor] | None = None,
    stats_b: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    """Sliced Wasserstein-1 distance between two point sets ``[M, D]`` (equal M) over random unit directions.

    Each set is first normalised as ``(x - mean) / std`` with its ``stats_*`` (per-component ``[D]`` tensors;
    default: no normalisation). Then, per repeat, ``dirs_per_repeat`` random unit directions are drawn, both sets
    are projected and sorted, and the mean absolute difference of the sorted projections (the 1-d W1 distance) is
    averaged over directions and repeats.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two [M, D] sets of equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.float(), b.float()
    dim = a.shape[1]
    identity = (torch.zeros(dim), torch.ones(dim))
    mean_a, std_a = stats_a or identity
    mean_b, std_b = stats_b or identity
    buf_a = torch.empty(dirs_per_repeat, a.shape[0])  # [P, M], reused: first-touch page faults are costly
    buf_b = torch.empty(dirs_per_repeat, a.shape[0])
    results = []
    for _ in range(repeats):
        dirs = torch.randn(dirs_per_repeat, dim, generator=generator)  # [P, D]
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        proj_a = _sorted_projections(a, mean_a, std_a, dirs, buf_a)
        proj_b = _sorted_projections(b, mean_b, std_b, dirs, buf_b)
        np.subtract(proj_a, proj_b, out=proj_a)
        np.abs(proj_a, out=proj_a)
        results.append(float(proj_a.mean(dtype=np.float64)))  # mean over neighbourhoods and directions
    return float(np.mean(results))


def _level_name(h: int, w: int) -> str:
    return f"{h}" if h == w else f"{h}x{w}"


def swd(
    images_a: ImageBatch,
    images_b: ImageBatch,
    *,
    descriptors_per_image: int = 128,
    dirs_per_repeat: int = 128,
    repeats: int = 4,
    min_resolution: int = 16,
    batch_size: int = 128,
    generator: torch.Generator,
) -> dict[str, float]:
    """Sliced Wasserstein distance between two image sets, per Laplacian pyramid level, in units of 1e-3.

    Images are uint8 ``[N, H, W, C]`` or float ``[N, C, H, W]`` in ``[-1, 1]`` (any affine pixel scaling gives the
    same result, since descriptors are normalised). The pyramid has levels from full resolution down to
    ``min_resolution`` (64 px images: 64, 32, 16). From every level, ``descriptors_per_image`` random 7x7
    neighbourhoods are taken per image; each set's descriptors are normalised per channel by their own mean / std
    (as in ProGAN), then compared with :func:`sliced_wasserstein`. If the two sets hold different numbers of images,
    the larger descriptor set is randomly subsampled to the size of the smaller.

    Returns ``{"SWDx1e3_64": ..., "SWDx1e3_32": ..., "SWDx1e3_16": ..., "SWDx1e3_avg": ...}`` (ProGAN's names).
    A set compared with itself does not give exactly 0: each set gets its own random descriptor positions, which
    leaves a sampling floor (about 3 for 2000 images with the defaults) that shrinks with more descriptors.
    Memory: about ``N * descriptors_per_image * C * 49 * 4`` bytes per level and set; 2000 64 px images take ~15 s
    on 2 CPU cores (sorting the projections dominates).
    """
    na, nb = _num_images(images_a), _num_images(images_b)
    if na == 0 or nb == 0:
        raise ValueError("swd needs non-empty image sets")
    c, h, w = to_float_images(images_a[:1]).shape[1:]
    shape_b = tuple(to_float_images(images_b[:1]).shape[1:])
    if (c, h, w) != shape_b:
        raise ValueError(f"image sets differ in [C, H, W]: {(c, h, w)} vs {shape_b}")
    if min(h, w) < min_resolution:
        raise ValueError(f"images of {h}x{w} are smaller than min_resolution={min_resolution}")
    sizes = [(h, w)]  # level sizes, as ProGAN's "while res >= 16: res //= 2"
    while min(sizes[-1]) // 2 >= min_resolution:
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))

    def descriptors(images: ImageBatch) -> list[_DescriptorSet]:
        n = _num_images(images)
        sets = [_DescriptorSet(n * descriptors_per_image, c) for _ in sizes]
        for i in range(0, n, batch_size):
            pyramid = laplacian_pyramid_cv2(to_float_images(images[i : i + batch_size]), len(sizes))
            for desc_set, level in zip(sets, pyramid):
                desc_set.add(level, descriptors_per_image, generator)
        return sets

    sets_a, sets_b = descriptors(images_a), descriptors(images_b)
    m = min(na, nb) * descriptors_per_image
    result = {}
    for (lh, lw), set_a, set_b in zip(sizes, sets_a, sets_b):
        da, db = set_a.desc, set_b.desc
        if da.shape[0] > m:
            da = da[torch.randperm(da.shape[0], generator=generator)[:m]]
        if db.shape[0] > m:
            db = db[torch.randperm(db.shape[0], generator=generator)[:m]]
        dist = sliced_wasserstein(
            da,
            db,
            dirs_per_repeat=dirs_per_repeat,
            repeats=repeats,
            generator=generator,
            stats_a=set_a.mean_std(),
            stats_b=set_b.mean_std(),
        )
        result[f"SWDx1e3_{_level_name(lh, lw)}"] = dist * 1e3
        del set_a.desc, set_b.desc  # free each level's descriptors as soon as it is done
    result["SWDx1e3_avg"] = float(np.mean(list(result.values())))
    return result


# --------------------------------------------------------------------------------------------------------------
# Diversity within classes (a conditional G that ignores z draws one picture per class however good its SWD)


def intra_class_distance(
    images: ImageBatch, labels: np.ndarray | torch.Tensor, num_classes: int, *, per_class: int = 64
) -> torch.Tensor:
    """Mean L1 distance in [0, 1] units between two pictures of the same class: [num_classes] float64.

    Over all pairs of each class's first ``per_class`` members (no randomness); NaN for a class with fewer than
    two. Unlabelled pictures: labels of zeros and ``num_classes=1``.
    """
    x = to_float_images(images)  # [N, C, H, W] in [-1, 1]
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)  # [N]
    if len(labels) != len(x):
        raise ValueError(f"{len(x)} pictures but {len(labels)} labels")
    out = torch.full([num_classes], float("nan"), dtype=torch.float64)
    for k in range(num_classes):
        members = x[labels == k][:per_class].flatten(1).double()  # [M, C*H*W]
        m = len(members)
        if m >= 2:
            d = torch.cdist(members, members, p=1) / (2 * members.shape[1])  # [M, M] mean |a - b| / 2
            out[k] = d.sum() / (m * (m - 1))
    return out


def diversity_ratio(fake_distance: torch.Tensor, real_distance: torch.Tensor) -> float:
    """Mean over classes (where both are known) of generated / real :func:`intra_class_distance`: about 1 for a
    G as varied within each class as the data, towards 0 for one that draws one picture per class."""
    ratio = fake_distance / real_distance
    ok = torch.isfinite(ratio)
    if not bool(ok.any()):
        raise ValueError("no class has two generated and two real pictures")
    return float(ratio[ok].mean())


# --------------------------------------------------------------------------------------------------------------
# Feature extractors


@runtime_checkable
class FeatureExtractor(Protocol):
    """A feature network: float images ``[N, 3, H, W]`` in ``[-1, 1]`` -> features ``[N, D]``.

    Implementations resize internally if they need a fixed input size and must be deterministic (eval mode).
    ``name`` identifies the embedding, e.g. for caching dataset statistics.
    """

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:  # [N, C, H, W] -> [N, C, size, size]
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class DiscriminatorFeatures:
    """Global-average-pooled activations of every block of a StyleGAN2 discriminator, concatenated: ``[N, sum C_r]``.

    Images of another size are resized (bilinear, antialiased) to ``D.img_resolution``. The discriminator runs in
    eval mode under ``no_grad`` (its training flags are restored afterwards), so spectral-norm power iterations do
    not change it. The embedding is only as meaningful as the discriminator's training; numbers from different
    discriminators are not comparable.
    """

    def __init__(self, D: Discriminator, *, name: str = "discriminator") -> None:
        self.D = D
        self.name = name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # [N, 3, H, W] -> [N, F]
        param = next(self.D.parameters())
        x = _resize(images.to(param.device, torch.float32), self.D.img_resolution)
        modes = [(m, m.training) for m in self.D.modules()]
        self.D.eval()
        try:
            with torch.no_grad():
                feats = self.D.features(x)  # [N, C_r, r/2, r/2] per block
        finally:
            for m, mode in modes:
                m.training = mode
        return torch.cat([f.float().mean(dim=(2, 3)) for f in feats], dim=1).cpu()


class RandomConvFeatures:
    """A fixed random-weight conv net, deterministic from ``seed``: ``[N, 3, H, W] -> [N, 2 * sum(channels)]``.

    Images are resized to ``resolution``; each stride-2 3x3 conv (He-scaled Gaussian weights drawn from a
    ``torch.Generator`` seeded with ``seed``, leaky ReLU) contributes the spatial mean and std of its channels.
    It needs no download and is stable for a given seed, so numbers are comparable between runs on the same
    machine setup, but it is a SANITY metric only: it measures low-level colour / texture statistics, is not
    comparable with Inception FID, and says little about semantic quality.
    """

    def __init__(self, seed: int = 0, *, resolution: int = 64, channels: Sequence[int] = (32, 64, 128, 256)) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.resolution = resolution
        self.weights: list[torch.Tensor] = []
        cin = 3
        for cout in channels:
            self.weights.append(torch.randn(cout, cin, 3, 3, generator=gen) * math.sqrt(2.0 / (cin * 9)))
            cin = cout
        self.name = f"random_conv_seed{seed}_res{resolution}_ch{'-'.join(str(c) for c in channels)}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # [N, 3, H, W] -> [N, 2 * sum(channels)]
        x = _resize(images.float(), self.resolution)
        feats = []
        with torch.no_grad():
            for w in self.weights:
                x = F.leaky_relu(F.conv2d(x, w.to(x.device), stride=2, padding=1), 0.2) * math.sqrt(2.0)
                std, mean = torch.std_mean(x, dim=(2, 3), correction=0)  # [N, C_l] each
                feats += [mean, std]
        return torch.cat(feats, dim=1).cpu()


def compute_features(extractor: FeatureExtractor, images: ImageBatch, *, batch_size: int = 64) -> np.ndarray:
    """Run ``extractor`` over uint8 ``[N, H, W, C]`` / float ``[N, C, H, W]`` images in batches: float64 ``[N, D]``."""
    out = []
    for i in range(0, _num_images(images), batch_size):
        batch = to_float_images(images[i : i + batch_size])
        with torch.no_grad():
            f = extractor(batch)
        if f.ndim != 2 or f.shape[0] != batch.shape[0]:
            raise ValueError(f"extractor {extractor.name!r} returned shape {tuple(f.shape)} for {len(batch)} images")
        out.append(f.detach().cpu().double().numpy())
    if not out:
        raise ValueError("compute_features needs at least one image")
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------------------------
# FID / KID / IS from features


# The linear algebra below runs in torch (float64), not numpy: numpy's OpenBLAS brings a second thread pool into
# a process that already has torch's, and on a busy machine the two pools oversubscribe the cores (eigh of a
# 1000x1000 matrix was measured at 8 s instead of 0.2 s on a loaded 2-core box).


def _as_features(f: np.ndarray | torch.Tensor) -> torch.Tensor:  # -> float64 [N, D] on the CPU
    if isinstance(f, torch.Tensor):
        t = f.detach().to("cpu", torch.float64)
    else:
        t = torch.from_numpy(np.asarray(f, np.float64))
    if t.ndim != 2:
        raise ValueError(f"expected features [N, D], got shape {tuple(t.shape)}")
    return t


def feature_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased, float64) of features ``[N, D]``, for caching FID statistics."""
    f = _as_features(features)
    if f.shape[0] < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    mu = f.mean(dim=0)  # [D]
    centred = f - mu  # [N, D]
    sigma = centred.T @ centred / (f.shape[0] - 1)  # [D, D]
    return mu.numpy(), sigma.numpy()


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:  # [D, D] PSD x2 -> Tr sqrtm(S1 S2)
    # S1 S2 is similar to a symmetric PSD matrix whose eigenvalues are cheap to get: with S1 = L L^T (Cholesky),
    # S1 S2 = L (L^T S2 L) L^-1; if S1 is singular (fewer samples than dims), use R = sqrtm(S1) = V sqrt(W) V^T and
    # S1 S2 ~ R S2 R (R S2 R and R R S2 share their eigenvalues).
    chol, info = torch.linalg.cholesky_ex(s1)
    if int(info) == 0:
        m = chol.T @ s2 @ chol  # [D, D]
    else:
        w, v = torch.linalg.eigh(s1)
        r = (v * w.clamp_min(0).sqrt()) @ v.T  # [D, D]
        m = r @ s2 @ r
    return torch.linalg.eigvalsh((m + m.T) * 0.5).clamp_min(0).sqrt().sum()


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))`` between two Gaussians (float64).

    ``Tr sqrtm(S1 S2)`` is the sum of square roots of the eigenvalues of ``S1 S2``, which equal those of the
    symmetric PSD ``L^T S2 L`` (``S1 = L L^T``, Cholesky; or ``sqrtm(S1) S2 sqrtm(S1)`` via ``eigh`` when ``S1`` is
    singular). So a Cholesky and one ``eigvalsh`` replace scipy's ``sqrtm``, without its complex round-off.
    """
    mu1_t, mu2_t = (torch.from_numpy(np.asarray(m, np.float64).reshape(-1)) for m in (mu1, mu2))  # [D]
    s1, s2 = (torch.from_numpy(np.atleast_2d(np.asarray(s, np.float64))) for s in (sigma1, sigma2))  # [D, D]
    d = mu1_t.numel()
    if mu2_t.numel() != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"inconsistent statistics shapes {mu1_t.shape}, {s1.shape}, {mu2_t.shape}, {s2.shape}")
    s1, s2 = (s1 + s1.T) * 0.5, (s2 + s2.T) * 0.5
    tr_covmean = _trace_sqrt_product(s1, s2)
    diff = mu1_t - mu2_t
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2.0 * tr_covmean)


def fid_from_features(f1: np.ndarray | torch.Tensor, f2: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N1, D]`` and ``[N2, D]``."""
    return fid_from_stats(*feature_stats(f1), *feature_stats(f2))


def kid_from_features(
    f1: np.ndarray | torch.Tensor,
    f2: np.ndarray | torch.Tensor,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    generator: np.random.Generator,
) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with the kernel ``k(x, y) = (x.y / D + 1)^3``, averaged over subsets.

    As in stylegan2-ada's ``kernel_inception_distance.py``: ``num_subsets`` times, ``m = min(N1, N2,
    max_subset_size)`` rows are drawn without replacement from each set. Can be slightly negative for equal
    distributions (it is unbiased). Gram matrices are computed in float32 (as the reference does), kernel values are
    cubed and summed in float64.
    """
    x_all, y_all = _as_features(f1).float(), _as_features(f2).float()
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"feature dims differ: {x_all.shape[1]} vs {y_all.shape[1]}")
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    total = 0.0
    for _ in range(num_subsets):
        x = x_all[torch.from_numpy(generator.choice(x_all.shape[0], m, replace=False))]  # [m, D]
        y = y_all[torch.from_numpy(generator.choice(y_all.shape[0], m, replace=False))]  # [m, D]
        a = (x @ x.T / d + 1).double() ** 3 + (y @ y.T / d + 1).double() ** 3  # [m, m]
        b = (x @ y.T / d + 1).double() ** 3  # [m, m]
        total += float((a.sum() - torch.trace(a)) / (m - 1) - b.sum() * 2 / m)
    return total / num_subsets / m


def manifold_coverage(
    manifold_features: np.ndarray | torch.Tensor, probe_features: np.ndarray | torch.Tensor, *, k: int = 3
) -> np.ndarray:
    """Which probes ``[P, D]`` lie inside the manifold of ``[M, D]`` features: the union of balls around its points
    reaching their ``k``-th nearest neighbour in the same set (Kynkäänniemi et al. 2019). bool [P]; exact pairwise
    distances (float64)."""
    manifold, probes = _as_features(manifold_features), _as_features(probe_features)
    if manifold.shape[1] != probes.shape[1]:
        raise ValueError(f"feature dims differ: {manifold.shape[1]} vs {probes.shape[1]}")
    if manifold.shape[0] <= k:
        raise ValueError(f"a manifold with k = {k} needs more than {k} samples")
    rows = 1024  # distance matrices in blocks of rows: memory stays O(rows x N) for large sets
    radii = torch.cat(  # [M]; the 1st nearest neighbour is the point itself
        [torch.cdist(b, manifold).kthvalue(k + 1, dim=1).values for b in manifold.split(rows)]
    )
    inside = torch.cat([(torch.cdist(b, manifold) <= radii[None]).any(dim=1) for b in probes.split(rows)])  # [P]
    return inside.numpy()


def precision_recall(
    real_features: np.ndarray | torch.Tensor, fake_features: np.ndarray | torch.Tensor, *, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of features ``[N1, D]`` (data) and ``[N2, D]``.

    Each set's manifold is the union of balls around its points reaching their ``k``-th nearest neighbour in the
    same set (:func:`manifold_coverage`). Precision: the share of generated samples inside the data's manifold (how
    many look like some data); recall: the share of the data inside the generated manifold (how much of the data
    the model covers). Both in [0, 1]; exact pairwise distances (float64).
    """
    real, fake = _as_features(real_features), _as_features(fake_features)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: {real.shape[1]} vs {fake.shape[1]}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} samples per set")
    return float(manifold_coverage(real, fake, k=k).mean()), float(manifold_coverage(fake, real, k=k).mean())


def inception_score(probs: np.ndarray | torch.Tensor, *, splits: int = 10) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of class probabilities ``[N, K]``: (mean, std) over splits.

    The set is cut into ``splits`` contiguous parts (as in the original code and stylegan2-ada); ``p(y)`` is the
    mean over each part. Uniform predictions give 1; confident predictions spread evenly over K classes give K.
    """
    p = _as_features(probs).numpy()
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be non-negative rows summing to 1 (apply softmax to logits first)")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits={splits} must be between 1 and the number of samples {n}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]  # [n_i, K]
        py = part.mean(axis=0, keepdims=True)  # [1, K]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0).sum(axis=1)  # [n_i]
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
