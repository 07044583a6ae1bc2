"""``Module`` and ``Parameter``: the containers that PyTorch code expects.

A module registers its parameters, buffers and submodules by plain attribute assignment
(``self.conv = nn.Conv2d(...)``); ``parameters()``, ``state_dict()``, ``train()``, ``to()`` ...
then walk that tree. Training mode (``module.training``) is a flag of the modules, separate from
grad mode (``mr.no_grad()``), which is a flag of the engine.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import numpy

from ..devices import backend
from ..autograd import Tensor, no_grad, parse_to_args, zero_grads


class Parameter(Tensor):
    """A tensor that a module learns: ``requires_grad=True`` and registered by ``Module``."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.array
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _ForwardHookHandle:
    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and model. Subclasses define ``forward``."""

    _hook_counter = 0

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())

    # --- registration ---
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called "
                                 f"(call super().__init__() first in {type(self).__name__})")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers_declared() and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def _buffers_declared(self):
        return self.__dict__.get("_declared_buffers", ())

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter or None")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not learned (e.g. batch norm's ``running_mean``): saved in
        ``state_dict()`` and moved by ``to()``, never given to the optimiser."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name} must be a Tensor or None")
        declared = set(self._buffers_declared()) | {name}
        object.__setattr__(self, "_declared_buffers", declared)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name} must be a Module, got {type(module).__name__}")
        if not isinstance(name, str) or "." in name or not name:
            raise KeyError(f"add_module: module name {name!r} must be a non-empty string "
                           f"without '.'")
        self._modules[name] = module

    register_module = add_module

    # --- calling ---
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook: Callable) -> _ForwardHookHandle:
        """``hook(module, inputs, output)`` runs after ``forward``; a returned value replaces the
        output. Returns a handle with ``remove()``."""
        Module._hook_counter += 1
        self._forward_hooks[Module._hook_counter] = hook
        return _ForwardHookHandle(self._forward_hooks, Module._hook_counter)

    def register_forward_pre_hook(self, hook: Callable) -> _ForwardHookHandle:
        Module._hook_counter += 1
        self._forward_pre_hooks[Module._hook_counter] = hook
        return _ForwardHookHandle(self._forward_pre_hooks, Module._hook_counter)

    # --- walking the tree ---
    def children(self) -> Iterator["Module"]:
        for m in self._modules.values():
            if m is not None:
                yield m

    def named_children(self):
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def named_modules(self, prefix: str = "", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in modules:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- modes ---
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise ValueError("train(mode): mode must be a bool")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self.parameters(), set_to_none)

    # --- devices and dtypes ---
    def to(self, *args, **kwargs) -> "Module":
        """Move (in place) every parameter and buffer to a device and/or floating dtype."""
        device, dtype = parse_to_args(args, kwargs)
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"Module.to: only floating dtypes are allowed, got {dtype}")
        with no_grad():
            for m in self.modules():
                for store in (m._parameters, m._buffers):
                    for t in store.values():
                        if t is None:
                            continue
                        data = t.array
                        if dtype is not None and data.dtype.kind == "f" and data.dtype != dtype:
                            data = data.astype(dtype)
                        if device is not None:
                            data = backend.to_device(data, device)
                        t.array = data
                        if t.grad is not None:
                            g = t.grad.array
                            if dtype is not None and g.dtype != data.dtype:
                                g = g.astype(data.dtype)
                            if device is not None:
                                g = backend.to_device(g, device)
                            t.grad = Tensor._wrap(g)
        return self

    def float(self) -> "Module":
        return self.to(numpy.float32)

    def double(self) -> "Module":
        return self.to(numpy.float64)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Module":
        return self.to(f"cuda:{index}")

    # --- state ---
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name (detached tensors sharing memory)."""
        out = OrderedDict()
        for mprefix, m in self.named_modules(prefix.rstrip(".")):
            for name, p in m._parameters.items():
                if p is not None:
                    out[f"{mprefix}.{name}" if mprefix else name] = p.detach()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[f"{mprefix}.{name}" if mprefix else name] = b.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into this module's parameters and buffers (on their current devices and
        dtypes); lazy modules that never saw an input get parameters of the checkpoint's sizes
        first. With ``strict``, missing or unexpected keys raise a KeyError listing them; a
        shape mismatch always raises."""
        for name, module in self.named_modules():
            if getattr(module, "has_uninitialized_params", lambda: False)():
                module.materialize_from_state(state_dict, f"{name}." if name else "")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            problems = [f"{what} keys {keys[:10]}{' ...' if len(keys) > 10 else ''}"
                        for what, keys in (("missing", missing), ("unexpected", unexpected))
                        if keys]
            raise KeyError(f"load_state_dict for {type(self).__name__}: {'; '.join(problems)} "
                           f"(is it a checkpoint of another model?)")
        mismatched = []
        for k, target in own.items():
            if k not in state_dict:
                continue
            value = state_dict[k]
            if not hasattr(value, "shape"):
                raise TypeError(f"load_state_dict: {k} is a {type(value).__name__}, not an "
                                f"array or Tensor")
            shape = tuple(value.shape)
            if shape != target.shape:
                mismatched.append(f"{k}: checkpoint {shape} vs model {target.shape}")
        if mismatched:
            raise ValueError("load_state_dict: size mismatch for " + "; ".join(mismatched[:10]))
        params_and_buffers = dict(self.named_parameters())
        params_and_buffers.update(dict(self.named_buffers()))
        with no_grad():
            for k in own:
                if k not in state_dict:
                    continue
                value = state_dict[k]
                live = params_and_buffers[k]
                array = value.array if isinstance(value, Tensor) else value
                if not isinstance(array, numpy.ndarray) and not hasattr(array, "shape"):
                    raise TypeError(f"load_state_dict: {k} is a {type(array).__name__}, not an "
                                    f"array or Tensor")
                array = backend.to_device(array, live.device)   # any device -> the live one
                # into the live memory, as PyTorch's copy_: views of it see the values, and a
                # graph that kept it refuses to backward
                live.array[...] = array.astype(live.dtype, copy=False)
                live._bump_version()
        return _IncompatibleKeys(missing, unexpected)

    # --- printing ---
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._modules) + \
            list(self._buffers)


class _IncompatibleKeys(tuple):
    def __new__(cls, missing, unexpected):
        obj = super().__new__(cls, (missing, unexpected))
        obj.missing_keys, obj.unexpected_keys = missing, unexpected
        return obj
