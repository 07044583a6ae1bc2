r"""``summary(model, input_size)``: a per-layer table of output shapes, parameters and FLOPs.

One forward pass of a zero input is run under ``mr.no_grad()`` in evaluation mode, with a forward
hook on every *leaf* module (a module without submodules) that records the layer's output shape
and its arithmetic cost. The hooks are removed afterwards and every module's training flag is
restored, so the model is left exactly as it was (no random numbers are drawn either).

Counting conventions (per sample, i.e. for one image, whatever ``batch_size`` is):

* **MACs** (multiply-accumulates) are counted for the layers that do them, convolutions and
  linear layers: a ``Conv2d`` producing ``C_out x H_o x W_o`` from ``C_in`` channels with a
  ``kh x kw`` kernel does ``C_in * kh * kw * C_out * H_o * W_o`` MACs; a ``Linear`` does
  ``in_features * out_features``. This is the figure usually quoted for CNNs ("ResNet-18: 1.8
  GFLOPs" in the paper, 1.82 G MACs; "ResNet-20: 41 M" for CIFAR).
* **FLOPs** count a multiply-add as **two** operations: ``2 x MACs`` for convolutions and linear
  layers (plus one per output element for a bias), about 4 per element for batch norm (subtract,
  divide, scale, shift), the kernel area per output element for pooling, and one per output
  element for other layers (ReLU, sigmoid, the option-A shortcut ...). Identity and Flatten cost
  nothing. The residual addition ``F(x) + x`` happens inside a block's ``forward``, not in a
  leaf layer, and is not counted (one operation per element; negligible next to the convs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from .. import nn
from ..autograd import Tensor, no_grad
from ..dtypes import float32
from ..creation import zeros
from ..ops.arguments import pair


@dataclass
class LayerRow:
    """One leaf layer call: ``flops`` (a multiply-add = 2) and ``macs`` are per sample."""
    name: str
    type: str
    output_shape: tuple
    params: int
    trainable_params: int
    macs: int
    flops: int


def _cost(module, inputs, output) -> tuple[int, int]:
    """(MACs, FLOPs) of one call of a leaf module, per sample."""
    out = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(out, Tensor):
        return 0, 0
    out_elems = math.prod(out.shape[1:]) if out.ndim > 0 else 1
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = module.in_channels * kh * kw * out_elems
        return macs, 2 * macs + (out_elems if module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        batch_rows = math.prod(out.shape[1:-1]) if out.ndim > 2 else 1
        macs = module.in_features * module.out_features * batch_rows
        return macs, 2 * macs + (out_elems if module.bias is not None else 0)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return 0, 4 * out_elems
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kh, kw = pair(module.kernel_size, "kernel_size", type(module).__name__)
        return 0, kh * kw * out_elems
    if isinstance(module, nn.AdaptiveAvgPool2d):
        x = inputs[0] if inputs else None
        in_elems = math.prod(x.shape[1:]) if isinstance(x, Tensor) else out_elems
        return 0, in_elems
    if isinstance(module, (nn.Identity, nn.Flatten)):
        return 0, 0
    return 0, out_elems


def _shape(output):
    if isinstance(output, Tensor):
        return output.shape
    if isinstance(output, (tuple, list)):
        return tuple(_shape(o) for o in output)
    return ()


class ModelSummary:
    """The result of :func:`summary`: ``rows`` (one :class:`LayerRow` per leaf-layer call, in call
    order), ``total_params``, ``trainable_params``, ``total_macs`` and ``total_flops`` (per
    sample), ``input_size`` and ``batch_size``. ``str(summary)`` is a readable table."""

    def __init__(self, model_name, rows, total_params, trainable_params, input_size, batch_size,
                 output_shape):
        self.model_name = model_name
        self.rows: list[LayerRow] = rows
        self.total_params, self.trainable_params = total_params, trainable_params
        self.non_trainable_params = total_params - trainable_params
        self.total_macs = sum(r.macs for r in rows)
        self.total_flops = sum(r.flops for r in rows)
        self.input_size, self.batch_size = input_size, batch_size
        self.output_shape = output_shape

    def __str__(self):
        headers = ("Layer (type)", "Output shape", "Params", "MACs", "FLOPs")
        body = [(f"{r.name} ({r.type})", str(list(r.output_shape)), f"{r.params:,}",
                 _human(r.macs), _human(r.flops)) for r in self.rows]
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
                  for i, h in enumerate(headers)]

        def fmt(cells):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths)))
        rule = "-" * len(fmt(headers))
        lines = [f"{self.model_name}: input {list(self.input_size)}, batch {self.batch_size}",
                 rule, fmt(headers), rule.replace("-", "=")]
        lines += [fmt(row) for row in body]
        lines += [rule,
                  f"Total params:         {self.total_params:,}",
                  f"Trainable params:     {self.trainable_params:,}",
                  f"Non-trainable params: {self.non_trainable_params:,}",
                  f"MACs per sample:      {_human(self.total_macs)} ({self.total_macs:,})",
                  f"FLOPs per sample:     {_human(self.total_flops)} ({self.total_flops:,}; "
                  f"a multiply-add counts 2)",
                  rule]
        return "\n".join(lines)

    def __repr__(self):
        return (f"ModelSummary({self.model_name}, {len(self.rows)} layers, "
                f"params={self.total_params:,}, MACs={_human(self.total_macs)})")


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(int(n))


def summary(model: nn.Module, input_size, device=None, dtype=float32,
            batch_size: int = 1) -> ModelSummary:
    """Run ``model`` once on zeros of shape ``(batch_size, *input_size)`` and tabulate its leaf
    layers. ``input_size`` excludes the batch dimension, e.g. ``(3, 32, 32)``; a list of such
    tuples gives a model several inputs. ``device`` defaults to that of the model's parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: expected an nn.Module, got {type(model).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be a positive int, got {batch_size!r}")
    sizes = list(input_size) if input_size and isinstance(input_size[0], (tuple, list)) \
        else [tuple(input_size)]
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else None
    inputs = [zeros(batch_size, *map(int, s), dtype=numpy.dtype(dtype), device=device)
              for s in sizes]

    names = {id(m): name or type(m).__name__ for name, m in model.named_modules()}
    rows: list[LayerRow] = []

    def hook(module, args, output):
        macs, flops = _cost(module, args, output)
        params = [p for p in module.parameters(recurse=False)]
        rows.append(LayerRow(names.get(id(module), type(module).__name__), type(module).__name__,
                             _shape(output), sum(p.numel() for p in params),
                             sum(p.numel() for p in params if p.requires_grad), macs, flops))

    modes = [(m, m.training) for m in model.modules()]
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not any(True for _ in m.children())]
    try:
        model.eval()
        with no_grad():
            output = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    params = list(model.parameters())
    label = getattr(model, "name", None)
    label = label if isinstance(label, str) and label else type(model).__name__
    return ModelSummary(label, rows, sum(p.numel() for p in params),
                        sum(p.numel() for p in params if p.requires_grad),
                        sizes[0] if len(sizes) == 1 else sizes, batch_size, _shape(output))
