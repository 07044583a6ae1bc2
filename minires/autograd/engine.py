"""The backward pass: ``tensor.backward()`` and ``grad()``.

``L.backward()`` applies the chain rule in **reverse topological order**: every node is visited
only after *all* the nodes that consumed its output, so the gradient reaching a tensor used twice
(``b = a + a``) is the *sum* of its contributions before it is passed further back. For a node
``y = f(x_1, ..., x_k)`` with upstream gradient ``dL/dy``, ``Function.backward`` returns
``dL/dx_i = (dy/dx_i)^T dL/dy`` for each input.

At each node, :func:`run_backward` does four things, each a helper below: run the gradient hooks
of the node's tensor (:func:`run_hooks`), hand the gradient to whoever asked for it
(:func:`deliver`: a leaf's ``.grad``, a ``retain_grad`` tensor, or ``grad()``'s capture), compute
the gradients of the node's inputs (:func:`input_gradients`: the version check, the node's
backward, the anomaly check and the shape check), and add them to what is pending for those
inputs (:func:`add_pending`).

The graph is freed after ``backward()`` (the arrays saved for backward and the links to the inputs
are dropped, :func:`free`) unless ``retain_graph=True``, so memory does not grow over a training
run.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy

from ..devices import backend
from .anomaly import check_backward, is_anomaly_enabled
from .function import Function, check_versions, graph_node
from .grad_mode import no_grad
from .tensor import Tensor


# --- the pass ---

def run_backward(root: Tensor, grad, retain_graph: bool = False,
                 capture: dict | None = None) -> None:
    """Backpropagate ``grad`` (dL/d``root``) from ``root`` to every leaf.

    With ``capture`` (a dict keyed by ``id`` of graph nodes, see :func:`graph_node`), the
    gradients reaching those nodes are stored there and no ``.grad`` is touched (``grad()``)."""
    root_node = graph_node(root)
    pending: dict[int, Any] = {id(root_node): grad}   # node id -> sum of the gradients so far
    with no_grad():
        for node in reversed(topological_order(root_node)):
            node_grad = pending.pop(id(node), None)
            if node_grad is None:          # no gradient flows here (e.g. a frozen branch)
                continue
            node_grad = run_hooks(node, node_grad)
            deliver(node, node_grad, capture)
            if isinstance(node, Function):     # (a leaf's gradient ended in deliver)
                for parent, parent_grad in zip(node.inputs, input_gradients(node, node_grad)):
                    add_pending(pending, parent, parent_grad)
                if not retain_graph:
                    free(node)


def topological_order(root) -> list:
    """Graph nodes reachable from ``root``, each after all its inputs (iterative depth-first
    search: a ResNet-1202 graph is deeper than Python's recursion limit)."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((parent, False) for parent in parents(node)
                         if id(parent) not in visited)
    return order


def parents(node) -> tuple:
    """The graph nodes of a node's inputs (none for a leaf); refuses a freed node."""
    if not isinstance(node, Function):
        return ()
    if node.freed:
        raise RuntimeError(
            "Trying to backward through the graph a second time (its saved arrays were freed by "
            "the first backward). Pass retain_graph=True to the first backward() if you need to "
            "backward twice.")
    return tuple(parent for parent in node.inputs if parent is not None)


# --- one node ---

def run_hooks(node, grad):
    """Apply the gradient hooks of a node's tensor; a hook may return a replacement."""
    hooks = node._hooks if isinstance(node, Tensor) else node.output_hooks
    for hook in list(hooks or ()):
        replaced = hook(Tensor._wrap(grad))
        if replaced is not None:
            grad = _check_hook_result(node, replaced, grad)
    return grad


def deliver(node, grad, capture: dict | None) -> None:
    """Hand a node's gradient to whoever asked for it: ``grad()``'s capture when there is one
    (and nothing else), else the ``.grad`` of a leaf or of a tensor that called ``retain_grad``."""
    if capture is not None:
        if id(node) in capture:
            capture[id(node)] = grad
    elif isinstance(node, Tensor):
        accumulate_grad(node, grad)
    elif node.retained_output is not None:
        retained = node.retained_output()          # a weak reference: None once freed
        if retained is not None:
            accumulate_grad(retained, grad)


def input_gradients(fn: Function, grad) -> list:
    """``fn``'s backward at ``grad``: one checked gradient array per input, None where no
    gradient is needed. Refuses to run when a tensor it kept was changed in place."""
    check_versions(fn)
    returned = fn.backward(grad)
    if not isinstance(returned, tuple):
        returned = (returned,)
    if is_anomaly_enabled():
        check_backward(fn, grad, returned)
    return [check_gradient(fn, parent, _as_array(g)) if needed and g is not None else None
            for parent, g, needed in zip(fn.inputs, returned, fn.needs_input_grad)]


def check_gradient(fn: Function, parent, grad):
    """``grad`` if it has the shape and dtype of the input ``parent``, else a clear error."""
    shape, dtype = _shape_and_dtype(parent)
    if tuple(grad.shape) != shape or grad.dtype != dtype:
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {tuple(grad.shape)} dtype "
            f"{grad.dtype} for an input of shape {shape} dtype {dtype} (a bug in that op)")
    return grad


def add_pending(pending: dict, node, grad) -> None:
    """Add ``grad`` to the gradient pending for ``node`` (a node used twice gets the sum);
    nothing for None (no gradient flows to that input)."""
    if grad is None:
        return
    key = id(node)
    pending[key] = _as_array(pending[key] + grad) if key in pending else grad


def accumulate_grad(tensor: Tensor, grad) -> None:
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


def free(fn: Function) -> None:
    """Drop what a Function kept for backward, and its links to the rest of the graph."""
    fn.freed = True
    fn.saved_tensors = None
    fn.inputs = ()
    fn.__dict__.clear()


def _as_array(value):
    """NumPy arithmetic on 0-d arrays returns scalars; the engine only passes arrays around."""
    return numpy.asarray(value) if isinstance(value, numpy.generic) else value


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


# --- the entry points ---

def backward(self: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
    """Compute the gradient of this tensor with respect to every leaf that requires grad and
    accumulate it into their ``.grad``. ``gradient`` is dL/d(self); it defaults to 1 for a
    scalar."""
    run_backward(self, initial_gradient(self, gradient), retain_graph)


Tensor.backward = backward


def grad(outputs: Tensor, inputs: Sequence[Tensor], grad_outputs=None,
         retain_graph: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs`` as new tensors, without touching
    any ``.grad`` (like ``torch.autograd.grad``)."""
    nodes = [graph_node(t) for t in inputs]
    capture: dict[int, Any] = {id(n): None for n in nodes if n is not None}
    run_backward(outputs, initial_gradient(outputs, grad_outputs), retain_graph, capture=capture)
    return tuple(None if n is None or capture[id(n)] is None
                 else Tensor._wrap(capture[id(n)].copy()) for n in nodes)


def initial_gradient(tensor: Tensor, gradient) -> Any:
    """The array dL/d(tensor) that starts a backward pass (checked against this tensor)."""
    if not tensor.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn "
                           "(no input of the computation had requires_grad=True)")
    if gradient is None:
        if tensor.array.size != 1:
            raise RuntimeError(
                f"backward(): gradient can be implicitly created only for scalar outputs, this "
                f"tensor has shape {tensor.shape}; pass gradient= (a tensor of that shape) or "
                f"reduce it first, e.g. loss.sum().backward()")
        array = tensor.xp.ones(tensor.array.shape, dtype=tensor.dtype)
    else:
        array = gradient.array if isinstance(gradient, Tensor) else gradient
        if isinstance(array, Tensor) or backend.device_of_array(array) != tensor.device:
            raise RuntimeError(f"backward(): gradient is on {backend.device_of_array(array)}, "
                               f"the tensor on {tensor.device}")
        if tuple(array.shape) != tensor.shape:
            raise RuntimeError(f"backward(): gradient has shape {tuple(array.shape)} but the "
                               f"tensor has shape {tensor.shape}")
        if array.dtype != tensor.dtype:
            raise TypeError(f"backward(): gradient has dtype {array.dtype}, the tensor "
                            f"{tensor.dtype}; convert it with .to({tensor.dtype.name})")
    return array
