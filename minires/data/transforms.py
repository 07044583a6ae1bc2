"""Transforms on host batches: ``(N, C, H, W)`` NumPy arrays in, new arrays out.

The paper's CIFAR-10 recipe (section 4.2): subtract the per-pixel mean (of the training set),
and for training augment with "4 pixels padded on each side, a 32x32 crop randomly sampled from
the padded image or its horizontal flip"::

    mean = PerPixelMean().fit(train)                 # train: a dataset or an array
    train_tf = Compose([mean, RandomCrop(32, padding=4), RandomHorizontalFlip()])
    test_tf = mean

Every transform is called as ``transform(batch, rng)`` with an explicit ``numpy.random.Generator``
(the :class:`~minires.data.loader.DataLoader` passes one derived from its seed, the epoch and the
batch index, so the augmentation is reproducible and resumable). Deterministic transforms ignore
``rng``; random ones fall back to minires' global generator (``mr.manual_seed``) when it is None.
Random transforms draw one set of random numbers per batch, vectorised: no Python loop over images.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy

from ..random import host_generator

__all__ = ["Transform", "Compose", "Normalize", "PerPixelMean", "RandomCrop",
           "RandomHorizontalFlip"]


def _check_batch(x, name: str) -> numpy.ndarray:
    if not isinstance(x, numpy.ndarray):
        raise TypeError(f"{name}: expects a host numpy array (N, C, H, W), got {type(x).__name__} "
                        "(transforms run on the host, before the loader moves the batch)")
    if x.ndim != 4:
        raise ValueError(f"{name}: expects a batch (N, C, H, W), got shape {x.shape}")
    return x


def _rng(rng) -> numpy.random.Generator:
    return host_generator() if rng is None else rng


class Transform:
    """Base class: ``__call__(batch, rng=None) -> batch``."""

    def __call__(self, x: numpy.ndarray, rng: numpy.random.Generator | None = None):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Compose(Transform):
    """Apply transforms in order, all with the same generator."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        rng = _rng(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def _chunks(data, chunk: int = 4096):
    """The images of an array or dataset, ``chunk`` at a time, as float64 arrays."""
    n = len(data)
    if n == 0:
        raise ValueError("cannot fit statistics on no samples")
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        if isinstance(data, numpy.ndarray):
            part = data[lo:hi]
        else:
            from .loader import get_batch
            part = get_batch(data, numpy.arange(lo, hi))[0]
        yield numpy.asarray(part, dtype=numpy.float64)


def _mean_over_samples(data) -> numpy.ndarray:
    """The mean image (C, H, W) of an array or dataset, accumulated in float64 by chunks."""
    total = sum(part.sum(axis=0) for part in _chunks(data))
    return total / len(data)


class PerPixelMean(Transform):
    """Subtract the mean image of the training set (the paper's "per-pixel mean subtracted").

    ``PerPixelMean().fit(train)`` computes the ``(C, H, W)`` mean from an array or a dataset;
    ``PerPixelMean(mean)`` uses a given one. The result has the input's float dtype.
    """

    def __init__(self, mean: numpy.ndarray | None = None):
        self.mean = None if mean is None else numpy.asarray(mean, dtype=numpy.float32)

    def fit(self, data) -> "PerPixelMean":
        self.mean = _mean_over_samples(data).astype(numpy.float32)
        return self

    def __call__(self, x, rng=None):
        x = _check_batch(x, "PerPixelMean")
        if self.mean is None:
            raise RuntimeError("PerPixelMean: call .fit(train_images) first (or pass mean=)")
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"PerPixelMean: batch images {x.shape[1:]} but the mean is "
                             f"{self.mean.shape}")
        dtype = x.dtype if x.dtype.kind == "f" else numpy.float32
        return (x - self.mean).astype(dtype, copy=False)

    def __repr__(self):
        return f"PerPixelMean({'unfitted' if self.mean is None else self.mean.shape})"


class Normalize(Transform):
    """Per-channel ``(x - mean[c]) / std[c]``; ``Normalize.fit(train)`` computes both."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = numpy.asarray(mean, dtype=numpy.float32).reshape(-1)
        self.std = numpy.asarray(std, dtype=numpy.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError("Normalize: mean and std need the same number of channels")
        if numpy.any(self.std <= 0):
            raise ValueError("Normalize: std must be positive")

    @classmethod
    def fit(cls, data) -> "Normalize":
        """Per-channel mean and standard deviation of an array or dataset ``(N, C, H, W)``."""
        count, total, total_sq = 0, 0.0, 0.0
        for part in _chunks(data):
            count += part.shape[0] * part.shape[2] * part.shape[3]
            total = total + part.sum(axis=(0, 2, 3))
            total_sq = total_sq + (part * part).sum(axis=(0, 2, 3))
        mean = total / count
        var = numpy.maximum(total_sq / count - mean ** 2, 1e-12)
        return cls(mean, numpy.sqrt(var))

    def __call__(self, x, rng=None):
        x = _check_batch(x, "Normalize")
        if x.shape[1] != len(self.mean):
            raise ValueError(f"Normalize: batch has {x.shape[1]} channels, mean/std have "
                             f"{len(self.mean)}")
        dtype = x.dtype if x.dtype.kind == "f" else numpy.float32
        out = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return out.astype(dtype, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop(Transform):
    """Pad every side with ``padding`` zeros, then cut a random ``size x size`` window per image.

    The window's corner is uniform over all positions, independently per image; with the
    default padding of 4 on 32x32 images that is the paper's augmentation. Vectorised: one
    gather over the batch. Note the zeros are added after mean subtraction when this follows
    :class:`PerPixelMean` (as in the paper's pipeline), i.e. padding has the mean colour.
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 4):
        self.size = (int(size), int(size)) if numpy.isscalar(size) else tuple(int(s) for s in size)
        self.padding = int(padding)
        if self.padding < 0 or min(self.size) < 1:
            raise ValueError("RandomCrop: size must be >= 1 and padding >= 0")

    def __call__(self, x, rng=None):
        x = _check_batch(x, "RandomCrop")
        rng = _rng(rng)
        n, c, h, w = x.shape
        p = self.padding
        th, tw = self.size
        if th > h + 2 * p or tw > w + 2 * p:
            raise ValueError(f"RandomCrop: a {th}x{tw} crop does not fit a {h}x{w} image padded "
                             f"by {p}")
        padded = numpy.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        oy = rng.integers(0, h + 2 * p - th + 1, size=n)
        ox = rng.integers(0, w + 2 * p - tw + 1, size=n)
        windows = numpy.lib.stride_tricks.sliding_window_view(padded, (th, tw), axis=(2, 3))
        # windows: (n, c, H', W', th, tw); pick window (oy[i], ox[i]) of image i -> (n, c, th, tw)
        return numpy.ascontiguousarray(windows[numpy.arange(n), :, oy, ox])

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p`` (independently per image)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, rng=None):
        x = _check_batch(x, "RandomHorizontalFlip")
        rng = _rng(rng)
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
