r"""``SyncBatchNorm``: batch norm whose statistics are those of the global batch, across ranks.

Each rank holds a share of the batch. In training the per-channel statistics are combined
across the ranks in two ``all_reduce`` s (two passes, as the single-process kernel computes
them, so the result matches one process on the whole batch to rounding):

.. math::
    \mu = \frac1M \sum_{\text{ranks}} \sum x, \qquad
    \sigma^2 = \frac1M \sum_{\text{ranks}} \sum (x-\mu)^2, \qquad M = \sum_{\text{ranks}} M_r

and the normalisation itself is the existing kernel's evaluation path with ``(mu, sigma^2)``
given as the statistics. The backward's two reductions are global too (one ``all_reduce`` of
both): with :math:`d\beta = \sum_{\text{ranks}}\sum dy` and
:math:`d\gamma = \sum_{\text{ranks}}\sum dy\,\hat x`,

.. math::
    dx = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}
         \Big(dy - \frac{d\beta}{M} - \hat x\,\frac{d\gamma}{M}\Big)

while the gradients of ``weight`` and ``bias`` stay each rank's own sums (DistributedDataParallel
averages them, as it does every parameter's). Outside training, or without a process group of
more than one rank, the layer is plain batch norm (as PyTorch's).
"""
from __future__ import annotations

from .. import distributed as dist
from ..devices.backend import to_host
from ..autograd import Function, Tensor
from ..kernels import norm as kernel
from .layers import _BatchNorm
from .module import Module


def _all_reduce_array(array) -> None:
    dist.all_reduce(Tensor._wrap(array))


class SyncBatchNormFunction(Function):
    """The training-mode forward and backward of :class:`SyncBatchNorm` over the ranks."""

    def forward(self, x, weight, bias, *, running_mean, running_var, momentum, eps):
        xp = kernel.array_module(x)
        rows = kernel._to_rows(x)
        wide, r = kernel.widen(rows)
        c = rows.shape[1]
        totals = xp.zeros(c + 1, dtype=x.dtype)            # per-channel sums, and the count M
        totals[:c] = kernel.fold(kernel.column_sums(wide), r)
        totals[c] = rows.shape[0]
        _all_reduce_array(totals)
        m = float(to_host(totals[c:])[0])     # the global count M (one scalar read per layer)
        mean = totals[:c] * (1.0 / m)
        centered = wide - xp.tile(mean, r)
        var = kernel.fold(kernel.column_dots(centered, centered), r)
        _all_reduce_array(var)
        var = var * (1.0 / m)
        kernel.update_running_stats(running_mean, running_var, mean, var, m, momentum)
        y, self.cache = kernel.batch_norm_forward(x, mean, var, weight, bias, training=False,
                                                  eps=eps)
        self.global_count = m
        return y

    def backward(self, dy):
        need = self.needs_input_grad
        cache = self.cache
        dx_local, dweight, dbias = kernel.batch_norm_backward(dy, cache, need[0], True, True)
        xp = kernel.array_module(cache.centered)
        c = cache.inv_std.shape[0]
        sums = xp.concatenate([dbias, dweight])               # this rank's two reductions
        _all_reduce_array(sums)
        dx = None
        if need[0]:
            m = self.global_count
            scale = cache.inv_std if cache.weight is None else cache.weight * cache.inv_std
            r = cache.centered.shape[1] // c
            correction = cache.centered * xp.tile(scale * cache.inv_std * sums[c:] * (-1.0 / m),
                                                  r)
            correction += xp.tile(scale * sums[:c] * (-1.0 / m), r)
            n_rows = cache.centered.shape[0] * r
            dx = dx_local + kernel._from_rows(correction.reshape(n_rows, c), cache.x_shape)
        return dx, (dweight if need[1] else None), (dbias if need[2] else None)


class SyncBatchNorm(_BatchNorm):
    """``SyncBatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, process_group=None)``: batch norm over the global batch (see the
    module docstring); (N, C) or (N, C, H, W) inputs."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 dtype=None, device=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype,
                         device=device)
        self.process_group = process_group

    def forward(self, x):
        need_sync = self.training and dist.is_initialized() and dist.get_world_size() > 1
        if not need_sync:
            return super().forward(x)
        if x.ndim not in self._expected_ndim:
            raise ValueError(f"SyncBatchNorm: expected a 2-D or 4-D input, got shape {x.shape}")
        if self.running_mean is not None:
            self.num_batches_tracked.array += 1
        rm = self.running_mean.array if self.running_mean is not None else None
        rv = self.running_var.array if self.running_var is not None else None
        return SyncBatchNormFunction.apply(x, self.weight, self.bias, running_mean=rm,
                                           running_var=rv, momentum=float(self.momentum),
                                           eps=float(self.eps))

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """``module`` with every BatchNorm layer replaced by a SyncBatchNorm holding the same
        parameters, running statistics and mode (a BatchNorm module itself is returned
        converted)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            if module.affine:
                converted.weight, converted.bias = module.weight, module.bias
            if module.track_running_stats:
                converted.running_mean = module.running_mean
                converted.running_var = module.running_var
                converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module


SyncBatchNorm._expected_ndim = (2, 4)

__all__ = ["SyncBatchNorm"]
