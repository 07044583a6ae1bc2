"""Each process's share of an epoch, for data-parallel training: PyTorch's ``DistributedSampler``
rule, as one function on index arrays.

Both minires's own :class:`~minires.train.ShardedDataLoader` and the PyTorch shim
:class:`minires.utils.data.distributed.DistributedSampler` split an epoch with it, so a run
shards its data the same way whichever of the two it uses.
"""
from __future__ import annotations

import math

import numpy

__all__ = ["shard_indices"]


def shard_indices(indices, num_replicas: int, rank: int, drop_last: bool = False):
    """Rank ``rank``'s share of an epoch's ``indices`` by PyTorch's rule: padded by repeating
    the start to a multiple of ``num_replicas`` (or cut to one, ``drop_last``), then
    ``indices[rank:total:num_replicas]``."""
    indices = numpy.asarray(indices, dtype=numpy.int64)
    n = len(indices)
    if drop_last and n % num_replicas != 0:
        num_samples = math.ceil((n - num_replicas) / num_replicas)
    else:
        num_samples = math.ceil(n / num_replicas)
    total = num_samples * num_replicas
    if drop_last:
        indices = indices[:total]
    elif total > n:               # repeat the start (the whole list as often as needed)
        indices = numpy.concatenate([indices, numpy.resize(indices, total - n)])
    return indices[rank:total:num_replicas]
