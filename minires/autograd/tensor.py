"""``Tensor``: an n-dimensional array on a device, with an optional gradient.

A ``Tensor`` holds an array (``.array``: NumPy on "cpu", CuPy on "cuda") and, when it was computed
by a differentiable operation that recorded a graph, the ``Function`` node that made it
(``._ctx``, public as ``.grad_fn``). This module holds the tensor's own fields and accessors;
the arithmetic methods (``+``, ``@``, ``.sum()``, ``.to()`` ...) are attached by ``minires.ops``
and ``backward()`` by :mod:`minires.autograd.engine`, both built on this module.
"""
from __future__ import annotations

import weakref
from typing import Callable, Iterable

import numpy

from ..devices import backend
from ..devices.backend import Device
from ..dtypes import (DTYPE_TYPE_NAMES, TYPE_NAME_DTYPES, as_dtype, float32, float64, int64,
                      is_dtype_name)


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


class Tensor:
    """An n-dimensional array on a device, with an optional gradient.

    Build one with :func:`minires.tensor` (or ``randn``/``zeros``/``ones``); operations on tensors
    that require grad record the graph that ``backward()`` walks.
    """

    # ``_version``: a one-element list counting the writes to this tensor's memory, shared by
    # every tensor that looks at that memory (its views, ``.data``, ``detach()``); every write
    # bumps it (in-place ops, optimiser steps, ``load_state_dict``). A node records the versions
    # of the tensors it keeps for backward, and backward refuses to run when one changed
    # (``function.check_versions``).
    __slots__ = ("array", "requires_grad", "grad", "_ctx", "_hooks", "_version", "__weakref__")
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
        if requires_grad and data.dtype.kind != "f":
            raise RuntimeError(f"only floating-point tensors can require gradients, got {data.dtype}")
        self._set_fields(data, bool(requires_grad))

    @classmethod
    def _wrap(cls, array, requires_grad: bool = False) -> "Tensor":
        """A tensor around an array already checked (what operations return): no conversion."""
        t = cls.__new__(cls)
        t._set_fields(array, requires_grad)
        return t

    def _set_fields(self, array, requires_grad: bool) -> None:
        """Every field of a new tensor, in one place (``__init__`` and ``_wrap`` both end here)."""
        self.array = array
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._ctx = None        # the Function that computed this tensor (None: a leaf)
        self._hooks: list | None = None        # a leaf's gradient hooks (a non-leaf's: on _ctx)
        self._version = [0]

    # --- attributes ---
    @property
    def data(self) -> "Tensor":
        """This tensor's values as a new tensor that shares its memory and is cut from the graph
        (PyTorch's ``.data``). The raw array is ``.array``; ``.numpy()`` copies it to the host.
        Unlike PyTorch's, it shares the version counter too: changing it in place while a graph
        still needs the old values is caught by backward (PyTorch's gradient would be wrong)."""
        t = Tensor._wrap(self.array)
        t._version = self._version
        return t

    @data.setter
    def data(self, value) -> None:
        array = value.array if isinstance(value, Tensor) else value
        backend.device_of_array(array)  # raises for anything that is not an array of a device
        self.array = array
        # other memory, other counter (what the graph kept of the old memory is intact)
        self._version = value._version if isinstance(value, Tensor) else [0]

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
            return f"minires.{DTYPE_TYPE_NAMES.get(self.dtype, self.dtype.name)}"
        if isinstance(dtype, str) and dtype.rsplit(".", 1)[-1] in TYPE_NAME_DTYPES:
            dtype = TYPE_NAME_DTYPES[dtype.rsplit(".", 1)[-1]]
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

    def _bump_version(self) -> None:
        """Count a write to this tensor's memory (every tensor viewing it sees the new count)."""
        self._version[0] += 1

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

    # ``backward()`` is attached by ``minires.autograd.engine``, which is built on Tensor (as the
    # arithmetic methods are attached by ``minires.ops``): this module does not import the engine.

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


def parse_to_args(args: tuple, kwargs: dict) -> tuple:
    """``(device, dtype)`` from the arguments of ``Tensor.to`` or ``Module.to``: a device, a
    dtype, a tensor (its device and dtype) or ``device=``/``dtype=``; None where not given."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Device) or (isinstance(a, str) and not is_dtype_name(a)):
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
