r"""Numerical gradient checks: the test that an analytic backward pass is right.

For a function ``f`` of inputs ``x`` with a scalar summary ``L = <f(x), v>`` (``v`` a fixed random
tensor, so every output element matters), the central difference

.. math::  \frac{\partial L}{\partial x_i} \approx \frac{L(x + \epsilon e_i) - L(x - \epsilon e_i)}{2\epsilon}

has error O(eps^2); in float64 with eps = 1e-6 it agrees with a correct backward to about 1e-8.
``fast_mode=True`` checks one *directional* derivative instead, along a random unit direction
``u``: ``(L(x + eps u) - L(x - eps u)) / 2 eps`` against ``<grad L, u>``: two forward passes
whatever the size of ``x`` (Chainer's ``check_backward``), for large inputs and the GPU.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy

from .devices import backend
from .autograd import Tensor, no_grad


class GradcheckError(RuntimeError):
    """The analytic and numerical gradients disagree."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor)]


def gradcheck(fn: Callable, inputs: "Tensor | Sequence", eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, fast_mode: bool = False,
              seed: int = 0) -> bool:
    """Compare the gradients that ``backward()`` computes for ``fn(*inputs)`` with central
    differences, for every input that requires grad. Inputs should be float64.

    Returns True; on a mismatch raises :class:`GradcheckError` (or returns False when
    ``raise_exception=False``) with a report naming the input, the worst element and both values.
    """
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need "
                            f"float64 inputs (use .double())")
    rng = numpy.random.default_rng(seed)
    outputs = _outputs(fn, inputs)
    # random projections make the check sensitive to every output element
    weights = [backend.to_device(rng.standard_normal(o.shape), o.device).astype(o.dtype)
               for o in outputs]
    analytic = _analytic_gradients(outputs, weights, inputs, checked)

    def loss() -> float:
        return _projected_loss(fn, inputs, weights)

    for i in checked:
        if fast_mode:
            failure = _check_directional_derivative(loss, inputs[i], analytic[i], eps, atol, rtol,
                                                    rng)
        else:
            failure = _check_every_element(loss, inputs[i], analytic[i], eps, atol, rtol)
        if failure:
            return _fail(raise_exception, f"gradcheck{' (fast mode)' if fast_mode else ''}: "
                                          f"input {i} of shape {inputs[i].shape}: {failure}")
    return True


def _projected_loss(fn, inputs, weights) -> float:
    """``L = sum_k <f_k(x), v_k>`` for the current input arrays, on the host (no graph)."""
    with no_grad():
        total = 0.0
        for o, w in zip(_outputs(fn, inputs), weights):
            total += float(backend.to_host((o.array * w).sum()))
    return total


def _analytic_gradients(outputs, weights, inputs, checked) -> dict:
    """``dL/dx`` by ``backward()`` through the graph of ``outputs``, for each checked input, as
    float64 host arrays."""
    for i in checked:
        inputs[i].grad = None
    total = None
    for o, w in zip(outputs, weights):
        term = (o * Tensor._wrap(w)).sum()
        total = term if total is None else total + term
    total.backward()
    return {i: (backend.to_host(inputs[i].grad.array).astype(numpy.float64)
                if inputs[i].grad is not None else numpy.zeros(inputs[i].shape))
            for i in checked}


def _check_every_element(loss, x, analytic, eps, atol, rtol) -> str | None:
    """The slow half: a central difference for every element of ``x`` (two forward passes each).
    Returns what disagrees, or None."""
    original = x.array.copy()
    host = backend.to_host(original).astype(numpy.float64)
    numeric = numpy.zeros_like(host)
    flat = host.reshape(-1)
    for k in range(flat.size):
        saved = flat[k]
        flat[k] = saved + eps
        x.array = backend.to_device(host, x.device)
        plus = loss()
        flat[k] = saved - eps
        x.array = backend.to_device(host, x.device)
        minus = loss()
        flat[k] = saved
        numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
    x.array = original
    diff = numpy.abs(numeric - analytic)
    bad = diff > atol + rtol * numpy.abs(numeric)
    if not bad.any():
        return None
    worst = numpy.unravel_index(numpy.argmax(diff - rtol * numpy.abs(numeric)), diff.shape)
    return (f"{int(bad.sum())} of {bad.size} elements disagree; worst at index "
            f"{tuple(int(v) for v in worst)}: numerical={numeric[worst]:.6g} "
            f"analytic={analytic[worst]:.6g} (atol={atol}, rtol={rtol})")


def _check_directional_derivative(loss, x, analytic, eps, atol, rtol, rng) -> str | None:
    """The fast half: one central difference along a random unit direction ``u`` (two forward
    passes whatever the size of ``x``) against ``<dL/dx, u>``. Returns what disagrees, or None."""
    original = x.array.copy()
    u = rng.standard_normal(x.shape)
    u /= numpy.linalg.norm(u) or 1.0
    u_dev = backend.to_device(u, x.device)
    x.array = original + eps * u_dev
    plus = loss()
    x.array = original - eps * u_dev
    minus = loss()
    x.array = original
    numeric = (plus - minus) / (2 * eps)
    expected = float((analytic * u).sum())
    if abs(numeric - expected) <= atol + rtol * abs(numeric):
        return None
    return (f"directional derivative numerical={numeric:.6g} analytic={expected:.6g} "
            f"(|diff|={abs(numeric - expected):.3g}, atol={atol}, rtol={rtol})")


def _fail(raise_exception: bool, message: str) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False
