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

import dataclasses

import numpy

from ..devices.backend import memory_owner
from .anomaly import check_forward, is_anomaly_enabled
from .grad_mode import is_grad_enabled
from .tensor import Tensor


class Function:
    """A differentiable operation: subclasses define ``forward`` and ``backward`` over arrays.

    ``forward(self, *args, **kwargs)`` receives the arrays of the Tensor arguments (other
    arguments as they are) and returns one array; it keeps what backward needs with
    ``self.save_for_backward(...)`` or as attributes. Whatever it keeps that is the memory of an
    input or of the output is found there when the node is built, and its version recorded
    (:func:`record_saved_versions`): no flag to declare, none to forget. ``backward(self,
    grad_output)`` returns one
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
        share_counter_if_view(result, tensors)
        if requires_grad:
            fn.saved_versions = record_saved_versions(fn, args, result)   # before fn gets more
            fn.inputs = tuple(graph_node(a) for a in args)
            fn.needs_input_grad = tuple(node is not None for node in fn.inputs)
            fn.arg_is_tensor = tuple(isinstance(a, Tensor) for a in args)
            fn.output_shape, fn.output_dtype = result.shape, result.dtype
            fn.output_hooks = None
            fn.retained_output = None
            fn.freed = False
            result._ctx = fn
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


# --- the version check (PyTorch's version counter, Chainer's ``retain_inputs``) ---
#
# Every piece of memory has one version counter (``Tensor._version``), shared by every tensor
# that looks at it: views, ``.data``, ``detach()``. Every write bumps it. A node records, when it
# is built, the version of exactly the tensors whose memory it keeps for backward (found in what
# its forward kept, so the record cannot drift from the saved data); backward refuses to run when
# one of them changed since.

def share_counter_if_view(result: Tensor, tensors) -> None:
    """An operation whose output is a view of an input's memory (``view``, ``reshape`` when it
    does not copy, ``permute``, basic indexing, ``expand`` ...) gives the output that input's
    version counter: a write through either is a write to both."""
    owner = memory_owner(result.array)
    for t in tensors:
        if memory_owner(t.array) is owner:
            result._version = t._version
            return


class SavedVersion:
    """One tensor a node keeps for backward: its counter, the version it had, and what to call
    it in the error (its argument position, or None for the output; its shape and dtype)."""
    __slots__ = ("counter", "version", "position", "shape", "dtype")

    def __init__(self, tensor: Tensor, position: int | None):
        self.counter, self.version, self.position = tensor._version, tensor._version[0], position
        self.shape, self.dtype = tensor.array.shape, tensor.array.dtype

    @property
    def what(self) -> str:
        return "output" if self.position is None else f"input {self.position}"


def kept_arrays(fn) -> list:
    """What ``fn``'s forward kept: ``save_for_backward``'s arrays and the attributes it set,
    looked into one level of tuples (named ones too), lists, dicts and dataclasses (a kernel's
    cache, such as ``Conv2dCache`` or ``BatchNormCache``, which hold the input and the weight);
    not only arrays, which is harmless: only an array has the memory of an input."""
    kept = list(getattr(fn, "saved_tensors", None) or ())
    for v in fn.__dict__.values():
        if isinstance(v, (tuple, list)):
            kept.extend(v)
        elif isinstance(v, dict):
            kept.extend(v.values())
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            kept.extend(vars(v).values())
        else:
            kept.append(v)
    return [k for k in kept if hasattr(k, "shape")]


def record_saved_versions(fn, args, result) -> tuple:
    """A :class:`SavedVersion` for every input (and the output) whose memory ``fn`` keeps."""
    kept = kept_arrays(fn)
    if not kept:
        return ()
    owners = {id(memory_owner(k)) for k in kept}
    saved = [SavedVersion(a, i) for i, a in enumerate(args)
             if isinstance(a, Tensor) and id(memory_owner(a.array)) in owners]
    if id(memory_owner(result.array)) in owners:
        saved.append(SavedVersion(result, None))
    return tuple(saved)


def check_versions(ctx) -> None:
    """Refuse to backward through a node whose saved tensors were changed in place since the
    forward (PyTorch's check and message): the gradient would be silently wrong."""
    for saved in getattr(ctx, "saved_versions", ()):
        if saved.counter[0] != saved.version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: the {saved.what} of {ctx.name} (a {saved.dtype} tensor of "
                f"shape {saved.shape}) is at version {saved.counter[0]}; expected version "
                f"{saved.version} instead. Hint: .clone() the tensor before changing it in place "
                f"(or use the out-of-place op, x = x + y), and call optimizer.step() only after "
                f"loss.backward()")


def graph_node(value):
    """The graph node of an operation's argument: the Function that computed it (a non-leaf
    tensor), the tensor itself (a leaf that requires grad), or None (no gradient flows there)."""
    if isinstance(value, Tensor) and value.requires_grad:
        return value._ctx if value._ctx is not None else value
    return None
