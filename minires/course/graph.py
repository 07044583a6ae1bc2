"""A scalar computation graph for the topological-order backward exercise (micrograd's ``Value``).

Each :class:`Value` knows its ``parents`` and the ``local_grads`` (the partial derivative of this
node with respect to each parent), so the student's ``backward(root)`` only has to order the nodes
and apply the chain rule::

    root.grad = 1
    for node in reversed(topological_order(root)):
        for parent, local in zip(node.parents, node.local_grads):
            parent.grad += local * node.grad
"""
from __future__ import annotations

import math


class Value:
    """A scalar node: ``data``, ``grad`` (0 until a backward fills it), ``parents``,
    ``local_grads`` and the ``op`` that made it."""

    __slots__ = ("data", "grad", "parents", "local_grads", "op", "label")

    def __init__(self, data: float, parents=(), local_grads=(), op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self.parents = tuple(parents)
        self.local_grads = tuple(local_grads)
        self.op, self.label = op, label

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    __rmul__ = __mul__

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def __repr__(self):
        name = self.label or self.op or "leaf"
        return f"Value({name}: data={self.data:.4g}, grad={self.grad:.4g})"
