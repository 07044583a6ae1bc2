"""``minires.nn.parallel``: ``DataParallel`` as a pass-through on one device, and
``DistributedDataParallel`` (one replica per process, :mod:`minires.nn.ddp`).

minires runs a model on one device; ``DataParallel(model)`` therefore runs ``model`` itself, as
PyTorch's does when it finds no more than one GPU (on CPU, say). It keeps PyTorch's structure:
the wrapped model is ``.module`` and its state-dict keys start with ``module.``, so checkpoints
move between the two frameworks' wrapped models.
"""
from __future__ import annotations

from .ddp import DistributedDataParallel
from .module import Module


class DataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        self.module = module
        self.device_ids = list(device_ids) if device_ids is not None else []
        self.output_device, self.dim = output_device, dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


__all__ = ["DataParallel", "DistributedDataParallel"]
