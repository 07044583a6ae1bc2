r"""Gradient flow through a network, measured with the engine's own hooks.

For one batch, :func:`measure_gradient_flow` records

* for every conv/linear weight, in depth order: ``||dL/dW||`` and ``||W||``;
* for every block ``y = relu(F(x) + S(x))``: the norm of the gradient at its output, at its input,
  and the part of the input gradient that arrives **through the branch** ``F`` and **through the
  shortcut** ``S``, each measured on its own path;
* the std of each layer's response after batch norm, before the nonlinearity or the addition
  (the paper's Figure 7).

How the two paths are told apart: a forward pre-hook gives the branch and the shortcut each its
own *alias* of the block input (an identity graph node). The gradient that reaches an alias is
exactly what its path sends back, and the two add up to the input's gradient:

.. math::  \frac{\partial L}{\partial x} = \underbrace{\Big(\frac{\partial F}{\partial x}\Big)^T
           \frac{\partial L}{\partial y'}}_{\text{branch}} +
           \underbrace{\Big(\frac{\partial S}{\partial x}\Big)^T
           \frac{\partial L}{\partial y'}}_{\text{shortcut}}, \qquad y' = F(x) + S(x)

For an identity shortcut the second term *is* ``dL/dy'``: the gradient at the addition reaches
the input unchanged, however small the branch's Jacobian (the ReLU after the addition still zeroes
it where ``y' < 0``). All hooks are removed afterwards and the model
is left as it was (its gradients, training mode and parameters).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy

from .. import nn
from ..devices import backend
from ..autograd import Tensor
from ..nn import functional as F
from ..ops import identity
from .norms import array_norm, array_std


@dataclass
class ParamFlow:
    name: str
    depth: int
    grad_norm: float
    weight_norm: float
    shape: tuple = ()


@dataclass
class BlockFlow:
    name: str
    depth: int
    out_grad_norm: float
    in_grad_norm: float
    branch_grad_norm: float
    shortcut_grad_norm: float | None
    response_std: float | None

    @property
    def shortcut_to_branch(self) -> float | None:
        """How many times more gradient reaches the input through the shortcut."""
        if self.shortcut_grad_norm is None or not self.branch_grad_norm:
            return None
        return self.shortcut_grad_norm / self.branch_grad_norm


@dataclass
class LayerResponse:
    name: str
    depth: int
    std: float


@dataclass
class GradientFlow:
    """What :func:`measure_gradient_flow` found, for one model and one batch."""
    model: str
    loss: float
    params: list[ParamFlow] = field(default_factory=list)
    blocks: list[BlockFlow] = field(default_factory=list)
    responses: list[LayerResponse] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"loss": self.loss,
                "params": [asdict(p) for p in self.params],
                "blocks": [asdict(b) for b in self.blocks],
                "responses": [asdict(r) for r in self.responses]}

    def conv_grad_norms(self, kernel: int | None = 3) -> list[float]:
        """Gradient norms of the (3x3) conv weights inside the blocks, in depth order."""
        return [p.grad_norm for p in self.params if p.name.startswith("blocks.")
                and ".branch.conv" in p.name
                and (kernel is None or tuple(p.shape[-2:]) == (kernel, kernel))]

    def spread(self) -> float:
        """max/min of the block conv-weight gradient norms: 1 is perfectly even flow."""
        norms = [n for n in self.conv_grad_norms() if n > 0]
        return max(norms) / min(norms) if norms else math.nan

    def first_to_last(self) -> float:
        """Gradient norm of the first block's first conv over the last block's last conv."""
        norms = self.conv_grad_norms()
        return norms[0] / norms[-1] if norms and norms[-1] else math.nan


def weight_layers(model: nn.Module) -> list[tuple[str, Tensor]]:
    """The conv and linear weights of a model, in depth (registration) order."""
    out = []
    for mname, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out.append((f"{mname}.weight" if mname else "weight", m.weight))
    return out


def _blocks(model: nn.Module):
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        return []
    return [(f"blocks.{i}", b) for i, b in enumerate(blocks)]


def measure_gradient_flow(model: nn.Module, images: Tensor, labels: Tensor,
                          loss_fn=F.cross_entropy, name: str | None = None) -> GradientFlow:
    """Run one forward and backward pass of ``model`` on a batch and record the gradient flow.

    The model keeps its mode (use ``model.train()`` for batch statistics, as at initialisation in
    the paper). Its ``.grad`` fields are restored afterwards, so this can run mid-training.
    """
    saved_grads = [(p, p.grad) for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    handles, records = [], {}
    for bname, block in _blocks(model):
        record = records.setdefault(bname, {})
        handles.append(block.register_forward_pre_hook(
            _on_input_grad(record, "in_grad", array_norm)))
        handles.append(block.register_forward_hook(_on_output_grad(record, "out_grad")))
        if hasattr(block, "branch"):
            handles.append(block.branch.register_forward_pre_hook(
                _on_path_grad(record, "branch_grad")))
            handles.append(block.branch.register_forward_hook(
                _on_output_std(record, "response_std")))
        if "shortcut" in getattr(block, "_modules", {}):
            handles.append(block.shortcut.register_forward_pre_hook(
                _on_path_grad(record, "shortcut_grad")))

    responses: list[LayerResponse] = []
    batch_norms = [(mname, m) for mname, m in model.named_modules()
                   if isinstance(m, nn.BatchNorm2d)]
    for depth, (mname, m) in enumerate(batch_norms, start=1):
        handles.append(m.register_forward_hook(_on_response(responses, mname, depth)))

    try:
        # the input must take part in the graph for block 0's input gradient to be computed
        x = images if images.requires_grad else images.detach().requires_grad_(
            images.dtype.kind == "f")
        loss = loss_fn(model(x), labels)
        loss.backward()
        params = [ParamFlow(pname, i + 1, array_norm(w.grad.array) if w.grad is not None else 0.0,
                            array_norm(w.array), tuple(w.shape))
                  for i, (pname, w) in enumerate(weight_layers(model))]
        blocks = []
        for depth, (bname, block) in enumerate(_blocks(model), start=1):
            rec = records[bname]
            branch = rec.get("branch_grad")
            shortcut = rec.get("shortcut_grad")
            blocks.append(BlockFlow(
                name=bname, depth=depth, out_grad_norm=rec.get("out_grad", 0.0),
                in_grad_norm=rec.get("in_grad", 0.0),
                branch_grad_norm=array_norm(branch) if branch is not None else 0.0,
                shortcut_grad_norm=array_norm(shortcut) if shortcut is not None else None,
                response_std=rec.get("response_std")))
        result = GradientFlow(model=name or getattr(model, "name", type(model).__name__),
                              loss=float(loss.item()), params=params, blocks=blocks,
                              responses=sorted(responses, key=lambda r: r.depth))
    finally:
        for h in handles:
            h.remove()
        for p, g in saved_grads:
            p.grad = g
    return result


def path_gradients(model: nn.Module, images: Tensor, labels: Tensor, block_index: int,
                   loss_fn=F.cross_entropy) -> dict:
    """The raw gradient arrays (host, float64) at one block's input: ``total``, ``branch`` and
    ``shortcut`` (None for a plain block). ``branch + shortcut == total`` is the test that the
    split is exact."""
    block = model.blocks[block_index]
    got = {}
    handles = [block.register_forward_pre_hook(_on_input_grad(got, "total")),
               block.branch.register_forward_pre_hook(_on_path_grad(got, "branch"))]
    if "shortcut" in block._modules:
        handles.append(block.shortcut.register_forward_pre_hook(_on_path_grad(got, "shortcut")))
    saved = [(p, p.grad) for p in model.parameters()]
    try:
        x = images.detach().requires_grad_(True)
        loss_fn(model(x), labels).backward()
    finally:
        for h in handles:
            h.remove()
        for p, g in saved:
            p.grad = g
    return {k: (backend.to_host(got[k]).astype(numpy.float64) if k in got else None)
            for k in ("total", "branch", "shortcut")}


# --- the hooks: each stores what it sees into a dict (a block's record) under ``key`` ---

def _on_input_grad(record: dict, key: str, summary=None):
    """A forward pre-hook: the gradient that reaches the module's input (``summary`` of it,
    e.g. its norm, or the array itself)."""
    def hook(module, inputs):
        inputs[0].register_hook(lambda g: record.__setitem__(
            key, g.array if summary is None else summary(g.array)))
        return inputs
    return hook


def _on_path_grad(record: dict, key: str):
    """A forward pre-hook on a block's branch or shortcut: the gradient that flows back along
    that path alone (the block's input reaches both paths; an identity op on this one gives it
    a tensor of its own whose gradient is this path's share)."""
    def hook(module, inputs):
        alias = identity(inputs[0])
        alias.register_hook(lambda g: record.__setitem__(key, g.array))
        return (alias,)
    return hook


def _on_output_grad(record: dict, key: str):
    """A forward hook: the norm of the gradient that reaches the module's output."""
    def hook(module, inputs, output):
        output.register_hook(lambda g: record.__setitem__(key, array_norm(g.array)))
    return hook


def _on_output_std(record: dict, key: str):
    """A forward hook: the standard deviation of the module's output (its response)."""
    def hook(module, inputs, output):
        record[key] = array_std(output.array)
    return hook


def _on_response(responses: list, name: str, depth: int):
    """A forward hook on the ``depth``-th batch norm: its response std, as a LayerResponse."""
    def hook(module, inputs, output):
        responses.append(LayerResponse(name, depth, array_std(output.array)))
    return hook
