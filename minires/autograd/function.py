"""``Function``: one node of the graph, and what a node records when it is built.

The graph's nodes are the ``Function`` objects and the leaf tensors that require grad: a
``Function`` records the *node* of each input (:func:`graph_node`: the ``Function`` that computed
it, or the leaf), not the input tensor itself. So an intermediate tensor's array is freed as soon
as nothing but the graph would hold it; backward needs only what each ``Function`` saved.
(Keeping the tensors in the graph would keep every activation of a ResNet alive until backward:
about twice the memory.) Hooks and ``retain_grad`` of a non-leaf tensor are kept on its
``Function``.
"""
from __future__ import annotations

import numpy

from .anomaly import check_forward, is_anomaly_enabled
from .grad_mode import is_grad_enabled
from .tensor import Tensor


class Function:
    """A differentiable operation: subclasses define ``forward`` and ``backward`` over arrays.

    ``forward(self, *args, **kwargs)`` receives the arrays of the Tensor arguments (other
    arguments as they are) and returns one array; it keeps what backward needs with
    ``self.save_for_backward(...)`` or as attributes. ``backward(self, grad_output)`` returns one
    gradient array per positional argument of ``apply`` (None where there is none, e.g. for a
    non-tensor argument, or where ``self.needs_input_grad[i]`` is False).

    Once recorded in a graph, a Function also knows its output's shape and dtype, and holds the
    gradient hooks and the ``retain_grad`` request of the tensor it computed.
    """

    # The engine's fields have slots; ``__dict__`` stays because each op's ``forward`` keeps what
    # its backward needs as attributes of its own choosing (``self.stride``, ``self.cache``), and
    # freeing the graph clears that dict in one step.
    __slots__ = ("inputs", "saved_tensors", "needs_input_grad", "freed", "output_shape",
                 "output_dtype", "output_hooks", "retained_output", "__dict__")

    # Which tensors the backward reads (for the in-place check, see ``Tensor._version``): the
    # inputs' values (most ops) and/or the output's (exp, sqrt, relu, sigmoid, tanh).
    saves_inputs = True
    saves_output = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """``(node, 0)`` per tensor argument, as in PyTorch: the input's ``grad_fn``, an
        :class:`AccumulateGrad` for a leaf that requires grad, else ``(None, 0)``."""
        arg_is_tensor = getattr(self, "arg_is_tensor", ())
        return tuple((AccumulateGrad(node) if isinstance(node, Tensor) else node, 0)
                     for node, is_tensor in zip(getattr(self, "inputs", ()), arg_is_tensor)
                     if is_tensor)

    @classmethod
    def apply(cls, *args, **kwargs) -> "Tensor":
        fn = cls()
        device = None
        tensors = []
        for a in args:
            if isinstance(a, Tensor):
                tensors.append(a)
                d = a.device
                if device is None:
                    device = d
                elif d != device:
                    raise RuntimeError(
                        f"{fn.name}: expected all tensors on one device, got {device} and {d}; "
                        f"move them with .to('{device}') first")
        raw = [a.array if isinstance(a, Tensor) else a for a in args]
        out = fn.forward(*raw, **kwargs)
        if isinstance(out, numpy.generic):      # NumPy reductions return scalars, not 0-d arrays
            out = numpy.asarray(out)
        if is_anomaly_enabled():
            check_forward(fn, args, out)
        requires_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        result = Tensor._wrap(out, requires_grad=requires_grad)
        if requires_grad:
            fn.inputs = tuple(graph_node(a) for a in args)
            fn.needs_input_grad = tuple(node is not None for node in fn.inputs)
            fn.arg_is_tensor = tuple(isinstance(a, Tensor) for a in args)
            fn.output_shape, fn.output_dtype = result.shape, result.dtype
            fn.output_hooks = None
            fn.retained_output = None
            fn.freed = False
            result._ctx = fn
            fn.versions = record_versions(cls, args, result)
        return result

    def __repr__(self):
        return f"<{self.name}>"


class AccumulateGrad:
    """The node a leaf's gradient ends in (``grad_fn.next_functions`` shows it, as PyTorch)."""

    def __init__(self, variable: "Tensor"):
        self.variable = variable
        self.next_functions = ()

    @property
    def name(self) -> str:
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"


def record_versions(cls, args, result) -> tuple:
    """The version of every tensor whose value the node's backward depends on: its saved inputs
    (``cls.saves_inputs``) and its output when the backward reads it (``cls.saves_output``).
    (The graph itself records nodes, not tensors, so an in-place op that rebinds a tensor to a
    new node cannot misroute a gradient.)"""
    seen = [(a._version, a._version[0]) for a in args
            if isinstance(a, Tensor) and cls.saves_inputs]
    if cls.saves_output:
        seen.append((result._version, result._version[0]))
    return tuple(seen)


def check_versions(ctx) -> None:
    """Refuse to backward through a node whose saved tensors were changed in place since the
    forward (PyTorch's version-counter check): the gradient would be silently wrong."""
    for counter, version in getattr(ctx, "versions", ()):
        if counter[0] != version:
            raise RuntimeError(
                f"one of the tensors needed for the gradient of {ctx.name} has been modified by "
                f"an in-place operation (it is at version {counter[0]}, expected {version}); "
                f"use the out-of-place op (x = x + y, not x += y or x.add_(y)), or .clone() "
                f"the tensor before changing it")


def graph_node(value):
    """The graph node of an operation's argument: the Function that computed it (a non-leaf
    tensor), the tensor itself (a leaf that requires grad), or None (no gradient flows there)."""
    if isinstance(value, Tensor) and value.requires_grad:
        return value._ctx if value._ctx is not None else value
    return None
