"""The reverse-mode autograd engine: ``Tensor``, ``Function`` and ``backward``.

A ``Tensor`` holds an array (``.array``: NumPy on "cpu", CuPy on "cuda") and, when it was computed
by a differentiable operation, the ``Function`` node that made it (``._ctx``). The nodes form a
directed acyclic graph from the inputs to, say, a scalar loss ``L``.

``L.backward()`` applies the chain rule in **reverse topological order**: every node is visited
only after *all* the nodes that consumed its output, so the gradient reaching a tensor used twice
(``b = a + a``) is the *sum* of its contributions before it is passed further back. For a node
``y = f(x_1, ..., x_k)`` with upstream gradient ``dL/dy``, ``Function.backward`` returns
``dL/dx_i = (dy/dx_i)^T dL/dy`` for each input.

The graph's nodes are the ``Function`` objects and the leaf tensors that require grad: a
``Function`` records the *node* of each input (the ``Function`` that computed it, or the leaf), not
the input tensor itself. So an intermediate tensor's array is freed as soon as nothing but the
graph would hold it; backward needs only what each ``Function`` saved. (Keeping the tensors in
the graph would keep every activation of a ResNet alive until backward: about twice the memory.)
Hooks and ``retain_grad`` of a non-leaf tensor are kept on its ``Function``.

The graph is freed after ``backward()`` (the arrays saved for backward and the links to the inputs
are dropped) unless ``retain_graph=True``, so memory does not grow over a training run.

The arithmetic methods of ``Tensor`` (``+``, ``@``, ``.sum()`` ...) are attached by
``minires.ops``, which builds on this module; this file holds only the engine.
"""
from __future__ import annotations

import contextlib
import os
import threading
import traceback
import weakref
from typing import Any, Callable, Iterable, Sequence

import numpy

from . import backend
from .backend import Device
from .errors import AnomalyError

float16 = numpy.dtype(numpy.float16)
float32 = numpy.dtype(numpy.float32)
float64 = numpy.dtype(numpy.float64)
int32 = numpy.dtype(numpy.int32)
int64 = numpy.dtype(numpy.int64)
bool_ = numpy.dtype(numpy.bool_)
_TYPE_NAMES = {}  # filled below
_DTYPE_NAMES = {"float16": float16, "half": float16, "float32": float32, "float": float32,
                "float64": float64, "double": float64, "int32": int32, "int64": int64,
                "long": int64, "bool": bool_}


_TYPE_DTYPES = {"FloatTensor": float32, "DoubleTensor": float64, "HalfTensor": float16,
                "LongTensor": int64, "IntTensor": int32, "BoolTensor": bool_}
_TYPE_NAMES.update({v: k for k, v in _TYPE_DTYPES.items()})


def as_dtype(dtype: Any) -> numpy.dtype:
    """Normalise a dtype given as a NumPy dtype, a type or a name ("float32")."""
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    try:
        return numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


# ---------------------------------------------------------------------------------------------
# Grad mode: "build a graph or not" (training vs evaluation is a separate flag, on nn.Module)
# ---------------------------------------------------------------------------------------------

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def set_grad_enabled(mode: bool):
    previous = is_grad_enabled()
    _state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        _state.grad_enabled = previous


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which operations record no graph."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = False

    def __exit__(self, *exc):
        _state.grad_enabled = self._previous
        return False


class enable_grad(no_grad):
    def __enter__(self):
        self._previous = is_grad_enabled()
        _state.grad_enabled = True


# ---------------------------------------------------------------------------------------------
# Anomaly mode: which operation made the first NaN or infinity?
# ---------------------------------------------------------------------------------------------

_anomaly_enabled = False     # read once per operation; off costs one global lookup, nothing more


def is_anomaly_enabled() -> bool:
    return _anomaly_enabled


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager (and decorator) that checks every operation's output, forward and
    backward, for NaN and infinity, and raises :class:`~minires.errors.AnomalyError` at the first
    one, naming the operation, its shapes and the line of your code that called it.

    Slow (one check and, on a GPU, one wait per operation): for finding a bug, not for training.
    """

    def __enter__(self):
        global _anomaly_enabled
        self._previous, _anomaly_enabled = _anomaly_enabled, True
        return self

    def __exit__(self, *exc):
        global _anomaly_enabled
        _anomaly_enabled = self._previous
        return False


def _nonfinite(array) -> str | None:
    """"NaN" or "infinity" if the floating array holds one, else None."""
    if isinstance(array, numpy.generic):
        array = numpy.asarray(array)
    if getattr(array, "dtype", None) is None or array.dtype.kind not in "fc":
        return None
    xp = backend.array_module(array)
    nan, finite = backend.to_host(xp.stack([xp.isnan(array).any(), xp.isfinite(array).all()]))
    return "NaN" if nan else None if finite else "infinity"


def _caller() -> str:
    """``file:line`` of the innermost frame outside minires: where the user called the op."""
    package = os.path.dirname(os.path.abspath(__file__))
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(package + os.sep):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def _check_forward(fn: "Function", args, out) -> None:
    """Under detect_anomaly: raise if ``fn``'s forward made a non-finite value (or was given
    one that no checked operation made: a parameter or the data)."""
    fn.anomaly_caller = _caller()
    what = _nonfinite(out)
    if what is None:
        return
    shapes = ", ".join(str(tuple(a.shape)) for a in args if isinstance(a, Tensor))
    for i, a in enumerate(args):
        given = _nonfinite(a.array) if isinstance(a, Tensor) else None
        if given is not None:
            raise AnomalyError(
                f"detect_anomaly: {fn.name} (forward, called at {fn.anomaly_caller}) was given "
                f"{given} in its input {i} of shape {tuple(a.shape)}: that tensor was not made by "
                f"an operation under detect_anomaly (the data or a parameter?): find where it "
                f"became non-finite, e.g. numpy.isfinite(t.numpy()).all()")
    raise AnomalyError(
        f"detect_anomaly: {fn.name} (forward, called at {fn.anomaly_caller}) produced {what} in "
        f"its output of shape {tuple(out.shape)} from finite inputs of shapes {shapes}")


def _check_backward(ctx: "Function", grad_output, input_grads) -> None:
    """Under detect_anomaly: raise if ``ctx``'s backward returned a non-finite gradient."""
    for i, g in enumerate(input_grads):
        what = _nonfinite(g) if g is not None else None
        if what is None:
            continue
        given = _nonfinite(grad_output)
        where = getattr(ctx, "anomaly_caller", None)
        raise AnomalyError(
            f"detect_anomaly: {ctx.name} (backward"
            + (f", of the call at {where}" if where else "") + f") returned {what} in the "
            f"gradient of its input {i} of shape {tuple(g.shape)}, "
            + (f"because the gradient it was given (shape {tuple(grad_output.shape)}) already "
               f"held {given} (from a hook or the `gradient` passed to backward())" if given else
               f"from a finite gradient of shape {tuple(grad_output.shape)}"))


# ---------------------------------------------------------------------------------------------
# Function: one node of the graph
# ---------------------------------------------------------------------------------------------

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
        if _anomaly_enabled:
            _check_forward(fn, args, out)
        requires_grad = is_grad_enabled() and any(t.requires_grad for t in tensors)
        result = Tensor._wrap(out, requires_grad=requires_grad)
        if requires_grad:
            fn.inputs = tuple(_graph_node(a) for a in args)
            fn.needs_input_grad = tuple(node is not None for node in fn.inputs)
            fn.arg_is_tensor = tuple(isinstance(a, Tensor) for a in args)
            fn.output_shape, fn.output_dtype = result.shape, result.dtype
            fn.output_hooks = None
            fn.retained_output = None
            fn.freed = False
            result._ctx = fn
            fn.versions = _record_versions(cls, args, result)
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


def _record_versions(cls, args, result) -> tuple:
    """The version of every tensor whose value the node's backward depends on: its saved inputs
    (``cls.saves_inputs``) and its output when the backward reads it (``cls.saves_output``).
    (The graph itself records nodes, not tensors, so an in-place op that rebinds a tensor to a
    new node cannot misroute a gradient.)"""
    seen = [(a._version, a._version[0]) for a in args
            if isinstance(a, Tensor) and cls.saves_inputs]
    if cls.saves_output:
        seen.append((result._version, result._version[0]))
    return tuple(seen)


def _check_versions(ctx) -> None:
    """Refuse to backward through a node whose saved tensors were changed in place since the
    forward (PyTorch's version-counter check): the gradient would be silently wrong."""
    for counter, version in getattr(ctx, "versions", ()):
        if counter[0] != version:
            raise RuntimeError(
                f"one of the tensors needed for the gradient of {ctx.name} has been modified by "
                f"an in-place operation (it is at version {counter[0]}, expected {version}); "
                f"use the out-of-place op (x = x + y, not x += y or x.add_(y)), or .clone() "
                f"the tensor before changing it")


# ---------------------------------------------------------------------------------------------
# Size
# ---------------------------------------------------------------------------------------------

class Size(tuple):
    """A tensor's shape: a tuple that prints as ``minires.Size([2, 3])`` (``torch.Size``)."""

    def __repr__(self):
        return f"minires.Size({list(self)})"

    __str__ = __repr__

    def __format__(self, spec):
        # inside f-strings (every error message of minires) a shape reads as the tuple it is
        return tuple.__repr__(self).__format__(spec)

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------

class Tensor:
    """An n-dimensional array on a device, with an optional gradient.

    Build one with :func:`minires.tensor` (or ``randn``/``zeros``/``ones``); operations on tensors
    that require grad record the graph that ``backward()`` walks.
    """

    # ``_version``: a one-element list counting the in-place changes of this tensor's value,
    # shared with its ``detach()``-ed aliases (as PyTorch's version counter); a node records the
    # versions it depends on and backward refuses to run when one changed (``_check_versions``).
    __slots__ = ("array", "requires_grad", "grad", "_ctx", "_hooks", "_name", "_version",
                 "__weakref__")
    __array_priority__ = 1000
    __array_ufunc__ = None       # `numpy_array + tensor` gives Tensor.__radd__, not an object array

    def __init__(self, data=None, *sizes, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.array
        elif isinstance(data, (list, tuple)) or data is None:
            # ``mr.Tensor([1, 2])``: float32 values, as ``torch.Tensor``; ``mr.Tensor(2, 3)``
            # (sizes) gives zeros where PyTorch leaves the memory uninitialised
            data = numpy.asarray([] if data is None else data, dtype=float32)
        elif isinstance(data, (int, numpy.integer)) and not isinstance(data, bool):
            data = numpy.zeros((int(data), *(int(s) for s in sizes)), dtype=float32)
        if sizes and not isinstance(data, numpy.ndarray):
            raise TypeError("Tensor(): sizes follow only an int size, e.g. Tensor(2, 3)")
        backend.device_of_array(data)  # raises for anything that is not an array of a device
        self.array = data
        self.requires_grad = bool(requires_grad)
        if self.requires_grad and data.dtype.kind != "f":
            raise RuntimeError(f"only floating-point tensors can require gradients, got {data.dtype}")
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        self._hooks: list | None = None        # a leaf's gradient hooks (a non-leaf's: on _ctx)
        self._name = None
        self._version = [0]

    @classmethod
    def _wrap(cls, array, requires_grad=False) -> "Tensor":
        t = cls.__new__(cls)
        t.array = array
        t.requires_grad = requires_grad
        t.grad = None
        t._ctx = None
        t._hooks = None
        t._name = None
        t._version = [0]
        return t

    # --- attributes ---
    @property
    def data(self) -> "Tensor":
        """This tensor's values as a new tensor that shares its memory and is cut from the graph
        (PyTorch's ``.data``). The raw array is ``.array``; ``.numpy()`` copies it to the host."""
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value) -> None:
        array = value.array if isinstance(value, Tensor) else value
        backend.device_of_array(array)  # raises for anything that is not an array of a device
        self.array = array

    @property
    def shape(self) -> Size:
        return Size(self.array.shape)

    @property
    def dtype(self) -> numpy.dtype:
        return self.array.dtype

    @property
    def device(self) -> Device:
        return backend.device_of_array(self.array)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def xp(self):
        """The array module of this tensor's device (numpy, cupy, or the strict stand-in)."""
        return backend.get_array_module(self.device)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def type(self, dtype=None):
        """Without an argument, the type name (``'minires.FloatTensor'``); with a dtype or a
        name such as ``'torch.LongTensor'``, the tensor converted to it (``.to(dtype)``)."""
        if dtype is None:
            return f"minires.{_TYPE_NAMES.get(self.dtype, self.dtype.name)}"
        if isinstance(dtype, str) and dtype.rsplit(".", 1)[-1] in _TYPE_DTYPES:
            dtype = _TYPE_DTYPES[dtype.rsplit(".", 1)[-1]]
        return self.to(as_dtype(dtype))

    def __index__(self) -> int:
        # `classes[labels[j]]`: a one-element integer tensor indexes like a Python int
        if self.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index, this one has dtype {self.dtype} and shape {self.shape}")
        return int(self.item())

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # --- host access ---
    def numpy(self) -> numpy.ndarray:
        """A NumPy copy on the host (a view of the data on "cpu"), from any device."""
        if self.requires_grad:
            return backend.to_host(self.array).copy() if self.device.type == "cpu" \
                else backend.to_host(self.array)
        return backend.to_host(self.array)

    def item(self):
        """The single element as a Python number."""
        if self.array.size != 1:
            raise ValueError(f"item(): only a one-element tensor converts to a Python number, "
                             f"this one has shape {self.shape}")
        return backend.to_host(self.array).reshape(()).item()

    def tolist(self):
        return backend.to_host(self.array).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def __repr__(self):
        extra = ""
        if self.device.type != "cpu":
            extra += f", device='{self.device}'"
        if self.dtype != float32:
            extra += f", dtype={self.dtype.name}"
        if self._ctx is not None:
            extra += f", grad_fn=<{self._ctx.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        body = numpy.array2string(backend.to_host(self.array), separator=", ", precision=4,
                                  threshold=50, prefix="tensor(")
        return f"tensor({body}{extra})"

    # --- graph handling ---
    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory and, unlike ``.data``, the version
        counter: changing it in place is caught by backward, as in PyTorch)."""
        t = Tensor._wrap(self.array)
        t._version = self._version
        return t

    def detach_(self) -> "Tensor":
        self._ctx = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.dtype.kind != "f":
            raise RuntimeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on a non-leaf tensor after backward (leaves keep it anyway)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._ctx is not None:
            self._ctx.retained_output = weakref.ref(self)

    def register_hook(self, hook: Callable[["Tensor"], "Tensor | None"]):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        if self._ctx is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            if self._ctx.output_hooks is None:
                self._ctx.output_hooks = []
            hooks = self._ctx.output_hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def backward(self, gradient: "Tensor | None" = None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires grad and
        accumulate it into their ``.grad``. ``gradient`` is dL/d(self); it defaults to 1 for a
        scalar."""
        run_backward(self, self._seed_grad(gradient), retain_graph)

    def _seed_grad(self, gradient):
        """The array dL/d(self) that starts a backward pass (checked against this tensor)."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn "
                               "(no input of the computation had requires_grad=True)")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(
                    f"backward(): gradient can be implicitly created only for scalar outputs, this "
                    f"tensor has shape {self.shape}; pass gradient= (a tensor of that shape) or "
                    f"reduce it first, e.g. loss.sum().backward()")
            grad = self.xp.ones(self.array.shape, dtype=self.dtype)
        else:
            grad = gradient.array if isinstance(gradient, Tensor) else gradient
            if isinstance(grad, Tensor) or backend.device_of_array(grad) != self.device:
                raise RuntimeError(f"backward(): gradient is on {backend.device_of_array(grad)}, "
                                   f"the tensor on {self.device}")
            if tuple(grad.shape) != self.shape:
                raise RuntimeError(f"backward(): gradient has shape {tuple(grad.shape)} but the "
                                   f"tensor has shape {self.shape}")
            if grad.dtype != self.dtype:
                raise TypeError(f"backward(): gradient has dtype {grad.dtype}, the tensor "
                                f"{self.dtype}; convert it with .to({self.dtype.name})")
        return grad

    # --- conversion ---
    # ``to(device)`` / ``to(dtype)`` is attached by ``minires.ops`` (it is itself an operation
    # in the graph), like the arithmetic methods.

    def float(self) -> "Tensor":
        return self.to(float32)

    def double(self) -> "Tensor":
        return self.to(float64)

    def long(self) -> "Tensor":
        return self.to(int64)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    # In-place methods (``add_``, ``zero_``, ``x += y`` ...) are attached by ``minires.ops``
    # (``ops/inplace.py``): they are operations like the others.


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _parse_to_args(args, kwargs):
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Device) or (isinstance(a, str) and a not in _DTYPE_NAMES):
            device = a                  # normalize_device below rejects unknown names
        elif isinstance(a, Tensor):
            device, dtype = a.device, a.dtype
        else:
            dtype = a
    if device is not None:
        device = backend.normalize_device(device)
    if dtype is not None:
        dtype = as_dtype(dtype)
    return device, dtype


# ---------------------------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------------------------

def _as_array(value):
    """NumPy arithmetic on 0-d arrays returns scalars; the engine only passes arrays around."""
    return numpy.asarray(value) if isinstance(value, numpy.generic) else value


def _graph_node(value):
    """The graph node of an operation's argument: the Function that computed it (a non-leaf
    tensor), the tensor itself (a leaf that requires grad), or None (no gradient flows there)."""
    if isinstance(value, Tensor) and value.requires_grad:
        return value._ctx if value._ctx is not None else value
    return None


def _shape_and_dtype(node) -> tuple:
    if isinstance(node, Tensor):
        return node.shape, node.dtype
    return node.output_shape, node.output_dtype


def _check_hook_result(node, value, grad):
    """A hook's replacement gradient, checked against the gradient it replaces."""
    array = value.array if isinstance(value, Tensor) else value
    if not hasattr(array, "shape") or isinstance(array, numpy.generic):
        raise TypeError(f"a gradient hook returned {type(value).__name__}; it must return None "
                        f"(to only look) or a Tensor of shape {_shape_and_dtype(node)[0]}")
    expected_device = backend.device_of_array(grad)
    if tuple(array.shape) != tuple(grad.shape) or array.dtype != grad.dtype or \
            backend.device_of_array(array) != expected_device:
        raise RuntimeError(
            f"a gradient hook returned shape {tuple(array.shape)}, dtype {array.dtype} on "
            f"{backend.device_of_array(array)}; the tensor has shape {tuple(grad.shape)}, dtype "
            f"{grad.dtype} on {expected_device}")
    return array


def _run_hooks(node, grad):
    """Apply the gradient hooks of a node's tensor; a hook may return a replacement."""
    hooks = node._hooks if isinstance(node, Tensor) else node.output_hooks
    for hook in list(hooks or ()):
        replaced = hook(Tensor._wrap(grad))
        if replaced is not None:
            grad = _check_hook_result(node, replaced, grad)
    return grad


def _accumulate_grad(tensor: Tensor, grad) -> None:
    """Add ``grad`` into ``tensor.grad`` (a leaf's, or a non-leaf's that asked to retain it)."""
    if tensor.grad is None:
        # a copy: grad may be a broadcast view, or shared (add's backward passes its upstream
        # gradient to both inputs; a caller's `gradient` array), and .grad is updated in place
        # by optimisers and zero_(). It takes the memory layout of the tensor itself (as
        # PyTorch's gradients do), so that accumulating into it later adds arrays of one layout.
        copy = backend.array_module(tensor.array).empty_like(tensor.array)
        copy[...] = grad
        tensor.grad = Tensor._wrap(copy)
    else:
        tensor.grad.array += grad      # in place, as PyTorch accumulates into .grad


def _topological_order(root) -> list:
    """Graph nodes reachable from ``root``, each after all its inputs (iterative depth-first
    search: a ResNet-1202 graph is deeper than Python's recursion limit)."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Function):
            if node.freed:
                raise RuntimeError(
                    "Trying to backward through the graph a second time (its saved arrays were "
                    "freed by the first backward). Pass retain_graph=True to the first "
                    "backward() if you need to backward twice.")
            for parent in node.inputs:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _free(fn: Function) -> None:
    """Drop what a Function kept for backward, and its links to the rest of the graph."""
    fn.freed = True
    fn.saved_tensors = None
    fn.inputs = ()
    fn.__dict__.clear()


def run_backward(root: Tensor, grad, retain_graph: bool = False,
                 capture: dict | None = None) -> None:
    """Backpropagate ``grad`` from ``root``. With ``capture`` (a dict keyed by ``id`` of graph
    nodes, see :func:`_graph_node`), the gradients reaching those nodes are stored there and no
    ``.grad`` is touched (``mr.grad``)."""
    root_node = _graph_node(root)
    order = _topological_order(root_node)
    grads: dict[int, Any] = {id(root_node): grad}
    with no_grad():
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            g = _run_hooks(node, g)
            leaf = isinstance(node, Tensor)
            if capture is not None:
                if id(node) in capture:
                    capture[id(node)] = g
            elif leaf:
                _accumulate_grad(node, g)
            elif node.retained_output is not None:
                retained = node.retained_output()
                if retained is not None:
                    _accumulate_grad(retained, g)
            if leaf:
                continue
            _check_versions(node)
            input_grads = node.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if _anomaly_enabled:
                _check_backward(node, g, input_grads)
            for parent, pg, needed in zip(node.inputs, input_grads, node.needs_input_grad):
                if not needed or pg is None:
                    continue
                if isinstance(pg, numpy.generic):   # NumPy arithmetic on 0-d arrays gives scalars
                    pg = numpy.asarray(pg)
                shape, dtype = _shape_and_dtype(parent)
                if tuple(pg.shape) != shape or pg.dtype != dtype:
                    raise RuntimeError(
                        f"{node.name}.backward returned a gradient of shape {tuple(pg.shape)} "
                        f"dtype {pg.dtype} for an input of shape {shape} dtype {dtype} "
                        f"(a bug in that op)")
                key = id(parent)
                if key in grads:
                    grads[key] = _as_array(grads[key] + pg)
                else:
                    grads[key] = pg
            if not retain_graph:
                _free(node)


def grad(outputs: Tensor, inputs: Sequence[Tensor], grad_outputs=None,
         retain_graph: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs`` as new tensors, without touching
    any ``.grad`` (like ``torch.autograd.grad``)."""
    nodes = [_graph_node(t) for t in inputs]
    capture: dict[int, Any] = {id(n): None for n in nodes if n is not None}
    run_backward(outputs, outputs._seed_grad(grad_outputs), retain_graph, capture=capture)
    return tuple(None if n is None or capture[id(n)] is None
                 else Tensor._wrap(capture[id(n)].copy()) for n in nodes)


def zero_grads(tensors: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Forget the accumulated gradients of ``tensors`` (``Module.zero_grad`` and
    ``Optimizer.zero_grad``): drop them (``None``, the default, as in PyTorch) or set them to
    zeros."""
    for t in tensors:
        if set_to_none:
            t.grad = None
        elif t.grad is not None:
            t.grad = Tensor._wrap(t.grad.xp.zeros_like(t.grad.array))


def Variable(data, requires_grad: bool = False, volatile: bool = False) -> Tensor:
    """The old ``torch.autograd.Variable`` (merged into Tensor since PyTorch 0.4): a leaf tensor
    sharing ``data``'s memory. ``volatile`` is accepted and ignored (use ``mr.no_grad()``)."""
    array = data.array if isinstance(data, Tensor) else Tensor(data).array
    return Tensor(array, requires_grad=requires_grad)


def iter_tensors(obj) -> Iterable[Tensor]:
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from iter_tensors(o)
