"""``torch.utils.data`` for minires (``minires.utils.data``): PyTorch's data API (``Dataset``,
``TensorDataset``, ``DataLoader``, ``random_split``, ``Subset``) with its keywords, on top of
:mod:`minires.data.loader`, whose names are minires's own.

The loader *is* minires' own :class:`minires.data.DataLoader` (same epoch order, seeding and
resumable ``state_dict``); what this module adds is PyTorch's calling convention: a dataset
returns a *tuple per sample* (tensors, arrays or numbers), and a batch is that tuple with each
field stacked along a new first axis (``collate_fn``, default :func:`default_collate`).

Differences, on purpose:

* ``num_workers`` is accepted and ignored: batches are assembled in the main process. Worker
  processes would need picklable datasets and shared memory to pay off; a batch here is one NumPy
  fancy-indexing copy, which costs less than sending it between processes would.
* ``pin_memory`` is accepted and ignored (NumPy host memory; CuPy copies it as it is).
* ``sampler`` is any iterable of indices with a length (e.g.
  :class:`~minires.utils.data.distributed.DistributedSampler`): each epoch serves the indices it
  yields, in its order; ``batch_sampler`` is not implemented. ``shuffle=True`` draws a
  permutation per epoch from a seed. ``generator`` (an int seed or a NumPy ``Generator``) gives
  that seed; without one, the seed is drawn from minires' generator, so ``mr.manual_seed``
  fixes it.
* ``TensorDataset`` is the one of :mod:`minires.data`: it takes tensors (``TensorDataset(x,
  y)``), as PyTorch's, and also the course's (images, labels) host arrays.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ...autograd import Tensor
from ...data import loader as _loader
from ...data.loader import Dataset, Subset, TensorDataset
from ...random import host_generator

from .distributed import DistributedSampler

__all__ = ["Dataset", "TensorDataset", "DataLoader", "Subset", "random_split", "default_collate",
           "DistributedSampler"]


def default_collate(samples: list):
    """Stack a list of samples field by field: tensors and arrays along a new first axis,
    Python ints to int64, floats to float64 (as PyTorch), tuples/lists/dicts recursively."""
    first = samples[0]
    if isinstance(first, Tensor):
        xp = first.xp
        return Tensor._wrap(xp.stack([s.array for s in samples]))
    if isinstance(first, numpy.ndarray) or isinstance(first, numpy.generic):
        return Tensor(numpy.stack([numpy.asarray(s) for s in samples]))
    if isinstance(first, bool):
        return Tensor(numpy.asarray(samples, dtype=bool))
    if isinstance(first, numbers.Integral):
        return Tensor(numpy.asarray(samples, dtype=numpy.int64))
    if isinstance(first, numbers.Real):
        return Tensor(numpy.asarray(samples, dtype=numpy.float64))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        return [default_collate(list(field)) for field in zip(*samples)]
    return samples


class DataLoader(_loader.DataLoader):
    """``DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0, collate_fn=None,
    pin_memory=False, drop_last=False, generator=None)``: batches as PyTorch's loader gives them
    (a list with one stacked tensor per field of the samples). See the module docstring for what
    is accepted and ignored. ``device`` (a minires extension) moves every batch there; without
    it, batches stay where the dataset's tensors are (the host for arrays), as in PyTorch."""

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, generator=None, prefetch_factor=None,
                 persistent_workers: bool = False, device=None):
        if batch_sampler is not None:
            raise NotImplementedError("DataLoader: batch_sampler is not implemented; use "
                                      "sampler= with batch_size=, or a Subset of the indices")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle "
                             "(shuffle in the sampler: DistributedSampler(shuffle=True))")
        if sampler is not None and not (hasattr(sampler, "__iter__") and
                                        hasattr(sampler, "__len__")):
            raise TypeError(f"DataLoader: sampler must be an iterable of indices with a "
                            f"length, got {type(sampler).__name__}")
        self.sampler = sampler
        if int(num_workers) < 0:
            raise ValueError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        if generator is None:
            seed = int(host_generator().integers(2 ** 31))
        elif isinstance(generator, numpy.random.Generator):
            seed = int(generator.integers(2 ** 31))
        else:
            seed = int(generator)
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                         seed=seed, device=device)
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn if collate_fn is not None else default_collate

    def __len__(self) -> int:
        if getattr(self, "sampler", None) is None:
            return super().__len__()
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_order(self, epoch: int) -> numpy.ndarray:
        """The indices of an epoch: the sampler's (its own epoch, set by its ``set_epoch``),
        else the loader's own order."""
        if self.sampler is None:
            return super().epoch_order(epoch)
        return numpy.fromiter(iter(self.sampler), dtype=numpy.int64, count=len(self.sampler))

    def _serve(self, epoch, start, order, device, iteration):
        for b in range(start, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.collate_fn is default_collate and hasattr(self.dataset, "get_items"):
                batch = list(self.dataset.get_items(indices))
            else:
                batch = self.collate_fn([self.dataset[int(i)] for i in indices])
            if self._iteration == iteration:
                self._served = b + 1
            yield _move(batch, self.device) if self.device is not None else batch

    def __repr__(self):
        return (f"utils.data.DataLoader({len(self.dataset)} samples, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last})")


def _move(batch, device):
    """The batch's tensors on ``device`` (the ``device=`` keyword, a minires extension)."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(v, device) for v in batch)
    return batch


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths
    (counts summing to ``len(dataset)``, or fractions summing to 1, as PyTorch's)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0) \
            and sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):          # the remainder, round-robin, as PyTorch
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the "
                         f"dataset has {n} samples")
    rng = generator if isinstance(generator, numpy.random.Generator) else \
        numpy.random.default_rng(int(generator) if generator is not None
                                 else int(host_generator().integers(2 ** 31)))
    order = rng.permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + length]))
        start += length
    return out
