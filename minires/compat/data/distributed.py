"""``torch.utils.data.distributed`` for minires (``minires.utils.data.distributed``):
``DistributedSampler``, each rank's share of a dataset, with PyTorch's rule.

The ``N`` indices (shuffled by epoch when ``shuffle``) are padded by repeating their start until
their count is a multiple of ``num_replicas`` (or cut to one, with ``drop_last``), and rank ``r``
takes every ``num_replicas``-th from position ``r``: ``indices[r:total:num_replicas]``. The shards
are disjoint apart from the padding and together cover the dataset. That rule is minires's own
:func:`minires.data.sharding.shard_indices` (``ShardedDataLoader`` shards with it too).

The shuffle draws from NumPy (``default_rng([seed, epoch])``, as minires's loader), so its order
is not PyTorch's ``randperm``; without shuffling the indices are PyTorch's exactly.
"""
from __future__ import annotations

import math

import numpy

from ...data.sharding import shard_indices

__all__ = ["DistributedSampler", "shard_indices"]


class DistributedSampler:
    """``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False)``: iterating gives this rank's indices for the current epoch;
    ``set_epoch(e)`` before each epoch gives every epoch its own shuffle (the same on every
    rank). ``num_replicas``/``rank`` default to the process group's."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            if not dist.is_initialized():
                raise dist.DistributedError(
                    "DistributedSampler: give num_replicas and rank, or call "
                    "minires.distributed.init_process_group() first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if int(num_replicas) < 1 or not 0 <= int(rank) < int(num_replicas):
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the "
                             f"interval [0, {int(num_replicas) - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self):
        n = len(self.dataset)
        order = numpy.random.default_rng([self.seed, self.epoch]).permutation(n) \
            if self.shuffle else numpy.arange(n)
        return iter(shard_indices(order, self.num_replicas, self.rank, self.drop_last).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
