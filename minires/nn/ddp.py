"""``DistributedDataParallel``: one model replica per rank, gradients averaged after backward.

At construction, rank 0's parameters and buffers are broadcast to every rank, so the replicas
start equal. Each rank then runs forward and backward on its own share of the batch; a gradient
hook on every parameter (the public ``Tensor.register_hook``) copies the parameter's gradient into
a flat bucket as it arrives, and when the last one has arrived the bucket is averaged across the
ranks in **one** ``all_reduce`` per dtype (not one message per parameter) and written back to every
``.grad``. The optimiser step that follows is then the same on every rank, and the replicas stay
equal. With a loss that is a mean over each rank's equal share, the averaged gradient is the
gradient of the mean over the global batch: the step one process would take on the whole batch.

How the hooks deliver it: the engine adds a hook's return value into ``.grad``. Until the bucket
is complete, a hook returns zeros (so ``.grad`` is created but holds nothing yet); the hook of
the last parameter averages the bucket, writes every earlier ``.grad`` and returns its own
share. The averaged values are assigned, never added, so no rounding creeps in.

``no_sync()`` skips the averaging (gradients accumulate locally); the first backward after it
averages the accumulated gradients, as in PyTorch. Buffers (batch norm's running statistics) are
broadcast from rank 0 before each forward in training when ``broadcast_buffers`` (PyTorch's
default).
"""
from __future__ import annotations

import contextlib

from .. import distributed as dist
from ..autograd import Tensor
from ..autograd.grad_mode import no_grad
from .module import Module


class _Bucket:
    """One flat buffer for the gradients of the parameters of one dtype and device."""

    def __init__(self, params: list):
        first = params[0]
        xp = first.xp
        self.params = params
        self.offsets = []
        total = 0
        for p in params:
            self.offsets.append(total)
            total += p.array.size
        self.flat = Tensor._wrap(xp.zeros(total, dtype=first.dtype))

    def slot(self, i: int):
        p, start = self.params[i], self.offsets[i]
        return self.flat.array[start:start + p.array.size].reshape(p.array.shape)


def _flat_broadcast(tensors: list) -> None:
    """Broadcast ``tensors`` from rank 0, one message per dtype and device."""
    groups: dict = {}
    for t in tensors:
        groups.setdefault((t.dtype, str(t.device)), []).append(t)
    for group in groups.values():
        bucket = _Bucket(group)
        for i, t in enumerate(group):
            bucket.slot(i)[...] = t.array
        dist.broadcast(bucket.flat, src=0)
        for i, t in enumerate(group):
            t.array[...] = bucket.slot(i)


class DistributedDataParallel(Module):
    """``DistributedDataParallel(module, device_ids=None, output_device=None, dim=0,
    broadcast_buffers=True, process_group=None, bucket_cap_mb=None,
    find_unused_parameters=False, ...)`` as PyTorch's (see the module docstring).

    ``device_ids``/``output_device`` are recorded (the module must already be on its device, as
    PyTorch requires); ``bucket_cap_mb`` is accepted and unused (one bucket per dtype).
    ``find_unused_parameters=True`` walks the graph of each forward's output to find parameters
    that will get no gradient, and counts them as ready (zero) so the averaging still happens."""

    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb=None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not dist.is_initialized():
            raise dist.DistributedError(
                "DistributedDataParallel: the default process group is not initialised; call "
                "minires.distributed.init_process_group('mpi') first (launch with mpiexec -n N)")
        self.module = module
        self.device_ids = list(device_ids) if device_ids is not None else None
        self.output_device, self.dim = output_device, dim
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.require_backward_grad_sync = True
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._param_names = [n for n, _ in named]
        params = [p for _, p in named]
        with no_grad():
            _flat_broadcast([p for p in module.parameters()] +
                            [b for b in module.buffers() if b is not None])
        groups: dict = {}
        for p in params:
            groups.setdefault((p.dtype, str(p.device)), []).append(p)
        self._buckets = [_Bucket(g) for g in groups.values()]
        self._where = {}                      # id(param) -> (bucket, index in it)
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (bucket, i)
        self._params = params
        self._ready: set = set()
        self._zeros: dict = {}
        self._handles = [p.register_hook(self._make_hook(p)) for p in params]

    # --- the gradient hooks ---
    def _make_hook(self, param):
        def hook(grad):
            return self._gradient_arrived(param, grad)
        return hook

    def _zero_like(self, param):
        z = self._zeros.get(id(param))
        if z is None:
            z = Tensor._wrap(param.xp.zeros(param.array.shape, dtype=param.dtype))
            self._zeros[id(param)] = z
        return z

    def _gradient_arrived(self, param, grad):
        if not self.require_backward_grad_sync:
            return None
        bucket, i = self._where[id(param)]
        slot = bucket.slot(i)
        slot[...] = grad.array
        if param.grad is not None:           # gradients accumulated under no_sync()
            slot += param.grad.array
        self._ready.add(id(param))
        if len(self._ready) < len(self._params):
            return self._zero_like(param)
        return self._average_and_write(param)

    def _mark_unused_ready(self, output) -> None:
        from ..autograd.engine import topological_order
        from ..autograd.function import graph_node
        outputs = output if isinstance(output, (tuple, list)) else \
            list(output.values()) if isinstance(output, dict) else [output]
        reached = set()
        for out in outputs:
            node = graph_node(out) if isinstance(out, Tensor) else None
            if node is not None:
                reached.update(id(n) for n in topological_order(node) if isinstance(n, Tensor))
        for p in self._params:
            if id(p) not in reached:
                bucket, i = self._where[id(p)]
                slot = bucket.slot(i)
                slot[...] = 0
                if p.grad is not None:
                    slot += p.grad.array
                self._ready.add(id(p))

    def _average_and_write(self, last):
        for bucket in self._buckets:
            dist.all_reduce(bucket.flat, op=dist.ReduceOp.AVG)
        self._ready.clear()
        result = None
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                averaged = bucket.slot(i)
                if p is last and p.grad is None:
                    result = Tensor._wrap(averaged)      # the engine copies it into .grad
                elif p.grad is None:                      # unused here, used on another rank
                    p.grad = Tensor._wrap(averaged.copy())
                else:
                    p.grad.array[...] = averaged
        return result if result is not None else self._zero_like(last)

    # --- forward ---
    def forward(self, *inputs, **kwargs):
        if self._ready and self.require_backward_grad_sync:
            missing = [n for n, p in zip(self._param_names, self._params)
                       if id(p) not in self._ready]
            self._ready.clear()
            raise dist.DistributedError(
                f"DistributedDataParallel: the last backward gave no gradient to "
                f"{len(missing)} parameter(s) ({', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}), so the gradients were not averaged; "
                f"pass find_unused_parameters=True if the model leaves parameters unused")
        if self.broadcast_buffers and self.training:
            buffers = [b for b in self.module.buffers() if b is not None]
            if buffers:
                with no_grad():
                    _flat_broadcast(buffers)
        output = self.module(*inputs, **kwargs)
        if self.find_unused_parameters and self.require_backward_grad_sync:
            self._mark_unused_ready(output)
        return output

    @contextlib.contextmanager
    def no_sync(self):
        """Gradients of the backward passes inside accumulate locally, unaveraged; the first
        backward after the block averages everything accumulated."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous


__all__ = ["DistributedDataParallel"]
