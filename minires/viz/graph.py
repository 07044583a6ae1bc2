"""Walk a tensor's autograd graph into plain nodes and edges, and the drawing object around them.

The graph's nodes are what the engine links (see :mod:`minires.autograd.function`): a
``Function`` records the node of each tensor input (``inputs``: the ``Function`` that computed
it, or the leaf tensor itself, or None where no gradient flows). :func:`collect_graph` copies what
a drawing needs from each ``Function`` (its name, output shape and dtype) and keeps a reference
only to the leaves, whose ``.grad`` is read each time the drawing is rendered: draw before
``backward()``, show the drawing again after it, and the gradients appear. (The ``Function``
objects themselves are not kept: they hold the arrays saved for backward.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from ..autograd import Tensor
from ..autograd.function import Function

# a leaf's .grad is printed element by element up to this many elements, as a norm above it
TINY = 4


@dataclass
class GraphNode:
    """One box: a ``Function`` node (``kind="op"``) or a leaf tensor (``kind="leaf"``)."""
    kind: str
    op: str                      # the Function's name ("Mul"); "" for a leaf
    name: str                    # a name from ``params`` ("fc.weight"), else ""
    shape: tuple
    dtype: str
    tensor: Tensor | None = field(default=None, repr=False)   # the leaf itself (its .grad)
    is_output: bool = False

    @property
    def title(self) -> str:
        """What the node is called: the leaf's name (else its shape) or the op (with a name)."""
        if self.kind == "leaf":
            return self.name or f"leaf {format_shape(self.shape)}"
        return f"{self.name} = {self.op}" if self.name else self.op

    def lines(self) -> list[str]:
        """The text of the node's box, read now (a leaf's gradient may have arrived since)."""
        lines = [self.title, f"{format_shape(self.shape)} {self.dtype}"]
        if self.kind == "leaf" and self.tensor is not None:
            if self.tensor.numel() <= TINY:         # (a large leaf's data is not shown: no copy)
                lines.append(describe("data", self.tensor.numpy(), values_only=True))
            if self.tensor.grad is not None:
                lines.append(describe("grad", self.tensor.grad.numpy()))
            elif not self.tensor.requires_grad:
                lines.append("requires_grad=False")
        return [line for line in lines if line]


def format_shape(shape: tuple) -> str:
    return "scalar" if len(shape) == 0 else "(" + ", ".join(str(n) for n in shape) + ")"


def describe(label: str, array: numpy.ndarray, values_only: bool = False) -> str:
    """``grad 0.25`` for one element, ``grad [0.25, -1]`` for a few, ``‖grad‖ 3.1`` above that
    (``""`` for a large array when only values are wanted)."""
    if array.size == 1:
        return f"{label} {float(array.reshape(())):.4g}"
    if array.size <= TINY:
        return f"{label} [" + ", ".join(f"{v:.4g}" for v in array.reshape(-1).tolist()) + "]"
    if values_only:
        return ""
    norm = float(numpy.sqrt(numpy.sum(numpy.square(array.astype(numpy.float64)))))
    return f"‖{label}‖ {norm:.4g}"


def collect_graph(tensor: Tensor, params: dict | None = None):
    """The nodes reachable from ``tensor`` (the output first) and the edges ``(input, consumer)``
    as indices into that list, one edge per use (``a + a`` gives two). ``params`` maps names to
    tensors (``dict(model.named_parameters())``); a named non-leaf tensor names its node."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expected a minires Tensor, got {type(tensor).__name__}")
    names = {}
    for name, value in (params or {}).items():
        if not isinstance(value, Tensor):
            raise TypeError(f"draw_graph: params[{name!r}] is a {type(value).__name__}, not a "
                            f"Tensor; pass e.g. params=dict(model.named_parameters())")
        names[id(value._ctx if value._ctx is not None else value)] = name

    root = tensor._ctx if tensor._ctx is not None else tensor
    nodes: list[GraphNode] = [make_node(root, names.get(id(root), ""))]
    index: dict[int, int] = {id(root): 0}
    edges: list[tuple[int, int]] = []
    stack = [root]                      # iterative: a ResNet-110 graph is deeper than recursion
    while stack:
        consumer = stack.pop()
        if not isinstance(consumer, Function):
            continue                    # a leaf: nothing comes into it
        for parent in consumer.inputs:
            if parent is None:          # an argument no gradient flows to (a constant)
                continue
            if id(parent) not in index:
                index[id(parent)] = len(nodes)
                nodes.append(make_node(parent, names.get(id(parent), "")))
                stack.append(parent)
            edges.append((index[id(parent)], index[id(consumer)]))
    nodes[0].is_output = True
    return nodes, edges


def make_node(obj, name: str) -> GraphNode:
    if isinstance(obj, Function):
        if obj.freed:
            raise RuntimeError(
                f"draw_graph: the graph was freed by backward() ({obj.name} has no inputs left); "
                f"draw it before backward() (the drawing shows the gradients once they exist), "
                f"or call backward(retain_graph=True)")
        return GraphNode("op", obj.name, name, tuple(obj.output_shape), str(obj.output_dtype))
    return GraphNode("leaf", "", name, tuple(obj.shape), str(obj.dtype), tensor=obj)


class Graph:
    """A drawn graph: ``nodes``, ``edges`` (index pairs, input first), ``source`` (the SVG text,
    built when asked, with the leaves' current gradients), ``save(path)``, and ``_repr_svg_`` so
    that Jupyter shows it."""

    def __init__(self, nodes: list[GraphNode], edges: list[tuple[int, int]], note: str = ""):
        self.nodes, self.edges, self.note = nodes, edges, note

    @property
    def source(self) -> str:
        from .layout import layout
        from .svg import render
        return render(self.nodes, self.edges, layout(len(self.nodes), self.edges), self.note)

    def _repr_svg_(self) -> str:
        return self.source

    def save(self, path) -> str:
        """Write the SVG to ``path`` (``.svg`` is added when missing); returns the path."""
        path = str(path)
        if not path.endswith(".svg"):
            path += ".svg"
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.source)
        return path

    def edge_names(self) -> list[tuple[str, str]]:
        """The edges as ``(input title, consumer title)`` pairs (for reading and for tests)."""
        return [(self.nodes[i].title, self.nodes[j].title) for i, j in self.edges]

    def __repr__(self):
        return f"<Graph: {len(self.nodes)} nodes, {len(self.edges)} edges>"


def draw_graph(tensor: Tensor, params: dict | None = None) -> Graph:
    """Draw the autograd graph that computed ``tensor``: returns a :class:`Graph`, shown as SVG
    in Jupyter, written with ``.save("graph.svg")``.

    Each ``Function`` node shows its op, output shape and dtype; each leaf its name from
    ``params`` (a ``{name: tensor}`` dict such as ``dict(model.named_parameters())``; a leaf not
    in it is called by its shape), its values when it has at most four elements, and its
    ``.grad`` (values, or the norm ``‖grad‖`` of a larger one) once ``backward()`` has put it
    there: draw before ``backward()`` and show the drawing again after it. A tensor no operation
    computed is one box; one that does not require grad says so in a note under it."""
    nodes, edges = collect_graph(tensor, params)
    note = ""
    if not tensor.requires_grad:
        note = ("no graph: this tensor does not require grad (no input had requires_grad=True, "
                "or it was computed under no_grad)")
    return Graph(nodes, edges, note)
