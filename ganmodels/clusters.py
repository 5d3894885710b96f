"""Unsupervised classes for a dataset: k-means on small, mirror-symmetric pictures.

A StyleGAN2 trained on a few thousand varied pictures tends to draw the data's largest group first (for the emoji
set: people and hands in five skin tones, over half of it) for every latent. Conditioning G and D on cluster labels
makes every group a class that has to be drawn (``ganmodels dataset cluster`` + ``ganmodels train --cond``).

Features need no downloaded weights: each picture shrunk to ``size`` x ``size`` (area filter), averaged with its
mirror image (so a picture and its x-flip get the same class), reduced by PCA; then k-means++ with Lloyd iterations
and several restarts, all random choices from one ``numpy.random.Generator``.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

__all__ = [
    "ClassMatch",
    "Clustering",
    "FeatureSpace",
    "Refinement",
    "class_consistency",
    "class_correspondence",
    "cluster_images",
    "image_features",
    "kmeans",
    "match_classes",
    "refine_clusters",
]


@dataclasses.dataclass(frozen=True)
class Clustering:
    """Result of :func:`kmeans`: labels [N] int64 (classes sorted by size, largest first), centres [K, D]."""

    labels: np.ndarray
    centres: np.ndarray
    inertia: float  # sum of squared distances of points to their centre

    @property
    def sizes(self) -> np.ndarray:
        """Members per class: int64 [K]."""
        return np.bincount(self.labels, minlength=len(self.centres))


def _thumbnails(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, R, R, 3] -> float32 [N, 3*size*size]: mirror-averaged area-filtered thumbnails in [0, 1]."""
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, R, R, 3], got {images.dtype} {list(images.shape)}")
    thumbs = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])  # [N, s, s, 3]
    x = thumbs.astype(np.float32) / 255.0
    x = 0.5 * (x + x[:, :, ::-1])  # mirror-symmetric
    return x.reshape(len(x), -1)


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
    """The PCA of a dataset's thumbnails: ``project`` maps any pictures of its resolution into it."""

    mean: np.ndarray  # [3*size*size]
    basis: np.ndarray  # [dims, 3*size*size]
    size: int

    @classmethod
    def fit(cls, images: np.ndarray, *, size: int = 16, dims: int = 64) -> FeatureSpace:
        x = _thumbnails(images, size)
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt: [min(N, D), D]
        return cls(mean=mean, basis=vt[:dims], size=size)

    def project(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, R, R, 3] -> float32 [N, dims]."""
        return ((_thumbnails(images, self.size) - self.mean) @ self.basis.T).astype(np.float32)


def image_features(images: np.ndarray, *, size: int = 16, dims: int = 64) -> np.ndarray:
    """uint8 [N, R, R, 3] -> float32 [N, min(dims, N, 3*size*size)]: PCA of mirror-averaged thumbnails."""
    return FeatureSpace.fit(images, size=size, dims=dims).project(images)


@dataclasses.dataclass(frozen=True)
class Refinement:
    """Result of :func:`refine_clusters`: finer labels [N] int64 and each fine class's coarse class, parent [K]."""

    labels: np.ndarray
    parent: np.ndarray


def _split_counts(sizes: np.ndarray, k: int) -> np.ndarray:
    """How many sub-classes each class gets: k in all, in proportion to its size (highest averages: each extra one
    goes to the class with the most members per sub-class), at least one each and never more than its members."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if not len(sizes) <= k <= int(sizes.sum()):
        raise ValueError(f"k must be in {len(sizes)}..{int(sizes.sum())} (classes..pictures), got {k}")
    counts = np.ones(len(sizes), dtype=np.int64)
    for _ in range(k - len(sizes)):
        room = np.where(counts < sizes, sizes / counts, -1.0)
        counts[int(room.argmax())] += 1
    return counts


def refine_clusters(images: np.ndarray, labels: np.ndarray, *, k: int, seed: int = 0) -> Refinement:
    """Split every class of ``labels`` (int [N] for uint8 [N, R, R, 3] pictures) into sub-classes, k in all.

    Each class gets sub-classes in proportion to its size and is split by k-means on :func:`image_features` of the
    whole set. Fine classes are numbered class by class (class 0's first), within a class by size, so ``parent``
    (int64 [k]) is non-decreasing and a model trained on the coarse labels can start on the fine ones with every
    fine class computing what its parent did (``ganmodels train --init-from``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(images),) or (len(labels) and labels.min() < 0):
        raise ValueError(f"labels must be [N] class indices >= 0 for N = {len(images)} pictures")
    sizes = np.bincount(labels)
    if (sizes == 0).any():
        raise ValueError(f"class {int(np.flatnonzero(sizes == 0)[0])} has no pictures")
    counts = _split_counts(sizes, k)
    x = image_features(images)
    rng = np.random.default_rng(seed)
    fine = np.empty(len(labels), dtype=np.int64)
    parent, start = [], 0
    for j, n in enumerate(counts):
        members = np.flatnonzero(labels == j)
        sub = kmeans(x[members], k=int(n), seed=int(rng.integers(2**31))).labels  # numbered by size
        fine[members] = start + sub
        parent += [j] * int(n)
        start += int(n)
    return Refinement(labels=fine, parent=np.asarray(parent, dtype=np.int64))


def class_correspondence(old: np.ndarray, new: np.ndarray, *, num_new: int) -> np.ndarray:
    """For every new class, the old class most of its pictures had: int64 [num_new] (ties: the lower old class; a
    new class without pictures: -1). ``old`` and ``new`` label the same pictures (int [N]); the share of pictures
    whose old class is their new class's, ``(old == result[new]).mean()``, is 1 for a refinement of ``old``."""
    old, new = np.asarray(old, dtype=np.int64), np.asarray(new, dtype=np.int64)
    if old.shape != new.shape or old.ndim != 1:
        raise ValueError(f"old and new labels must be [N] for the same pictures, got {old.shape} and {new.shape}")
    if len(new) and (new.min() < 0 or new.max() >= num_new or old.min() < 0):
        raise ValueError(f"new labels must be in 0..{num_new - 1} and old ones >= 0")
    counts = np.zeros([num_new, int(old.max()) + 1 if len(old) else 1], dtype=np.int64)
    np.add.at(counts, (new, old), 1)
    return np.where(counts.sum(1) > 0, counts.argmax(1), -1)


@dataclasses.dataclass(frozen=True)
class ClassMatch:
    """Result of :func:`match_classes`: ``class_map`` int64 [num_new] (new class -> old class, -1 for an empty one)
    or None when the classes should not be mapped; ``agreement`` is the share of pictures keeping their old class
    through the best map; ``identical`` says the labels are the same (so there is nothing to map)."""

    class_map: np.ndarray | None
    agreement: float
    identical: bool = False

    @property
    def rejected(self) -> bool:
        """The labels differ but too few pictures would keep their old class to map the classes."""
        return self.class_map is None and not self.identical


def match_classes(old: np.ndarray, new: np.ndarray, *, num_new: int, min_agreement: float = 0.5) -> ClassMatch:
    """Decide whether new labels of the same pictures (int [N]) relabel the old ones well enough to start every new
    class from an old one: the map of :func:`class_correspondence` if at least ``min_agreement`` of the pictures keep
    their old class through it, None if fewer do or if the labels are the same (nothing to map)."""
    class_map = class_correspondence(old, new, num_new=num_new)
    old, new = np.asarray(old, dtype=np.int64), np.asarray(new, dtype=np.int64)
    agreement = float((old == class_map[new]).mean()) if len(new) else 0.0
    if np.array_equal(old, new):
        return ClassMatch(None, agreement, identical=True)
    return ClassMatch(class_map if agreement >= min_agreement else None, agreement)


def class_consistency(space: FeatureSpace, centres: np.ndarray, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of pictures whose nearest class centre (in ``space``) is their own label: for a conditional
    generator's samples, how well each class is drawn as its data looks (chance: about 1 / K)."""
    d2 = _sq_dists(space.project(images).astype(np.float64), centres.astype(np.float64))  # [N, K]
    return float((d2.argmin(1) == np.asarray(labels)).mean())


def _sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [N, K] between rows of x [N, D] and c [K, D]."""
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return np.maximum(d, 0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    d2 = _sq_dists(x, centres[0][None])[:, 0]
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(x[i])
        d2 = np.minimum(d2, _sq_dists(x, x[i][None])[:, 0])
    return np.stack(centres)


def kmeans(x: np.ndarray, *, k: int, seed: int = 0, iters: int = 100, restarts: int = 4) -> Clustering:
    """k-means++ / Lloyd on x [N, D]; the best of ``restarts`` runs. Classes are numbered by size, largest first."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be [N, D] with N >= 1, got {list(x.shape)}")
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)} (the number of pictures), got {k}")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(max(restarts, 1)):
        centres = _kmeans_pp(x, k, rng)
        labels = np.full(len(x), -1)
        for _ in range(iters):
            d2 = _sq_dists(x, centres)  # [N, K]
            new = d2.argmin(1)
            for j in np.flatnonzero(np.bincount(new, minlength=k) == 0):  # empty class: take the worst-fit point
                far = int(d2[np.arange(len(x)), new].argmax())
                new[far] = j
                d2[far] = 0
            if np.array_equal(new, labels):
                break
            labels = new
            centres = np.stack([x[labels == j].mean(0) for j in range(k)])
        inertia = float(_sq_dists(x, centres)[np.arange(len(x)), labels].sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels, centres)
    inertia, labels, centres = best
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")  # old class ids, largest first
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return Clustering(labels=rank[labels].astype(np.int64), centres=centres[order].astype(np.float32), inertia=inertia)


def cluster_images(images: np.ndarray, *, k: int, seed: int = 0) -> Clustering:
    """Class labels for a dataset's pictures (uint8 [N, R, R, 3]) by k-means on :func:`image_features`."""
    return kmeans(image_features(images), k=k, seed=seed)
