"""The optimiser base class: parameter groups, ``zero_grad``, and a state that can be saved.

Updates act on the parameters' arrays in place with the array module of their device, outside
the graph: an optimiser step never builds autograd history.
"""
from __future__ import annotations

import numpy

from ..devices import backend
from ..autograd import Tensor, zero_grads


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list (did you pass "
                             "model.parameters() of a model without parameters?)")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups: list[dict] = []
        for group in params:
            self.add_param_group(group)
        self.state: dict[int, dict] = {}

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimise Tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError("optimizer got a tensor that does not require grad")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        group.setdefault("initial_lr", group.get("lr"))
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self._params(), set_to_none)

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # --- state, for checkpoints: plain host arrays and numbers, indexed by parameter order ---
    @staticmethod
    def _decayed_grad(p, weight_decay: float):
        """``p``'s gradient array plus the L2 weight decay ``weight_decay * p`` (a new array when
        there is decay: ``.grad`` itself is never changed in place)."""
        g = p.grad.array
        return g + weight_decay * p.array if weight_decay else g

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {}
        for key, s in self.state.items():
            if key in index:
                state[index[key]] = {k: (backend.to_host(v).copy() if hasattr(v, "shape") else v)
                                     for k, v in s.items()}
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        for g, group in zip(groups, self.param_groups):
            g["params"] = [index[id(p)] for p in group["params"]]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        params = self._params()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError("optimizer.load_state_dict: the saved parameter groups do not match "
                             "this optimizer's (a checkpoint of another model or optimizer?)")
        for g, own in zip(groups, self.param_groups):
            for k, v in g.items():
                if k != "params":
                    own[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            entry = {}
            for k, v in s.items():
                if isinstance(v, numpy.ndarray) and v.ndim > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"optimizer.load_state_dict: state {k!r} of parameter "
                                         f"{i} has shape {v.shape}, the parameter {p.shape}")
                    v = backend.to_device(v.astype(p.dtype), p.device)
                entry[k] = v
            self.state[id(p)] = entry

    def __repr__(self):
        body = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({body})"
