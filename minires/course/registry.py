"""The pieces a student can write, the functions each one needs, and :func:`check`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import checks_kernels as K
from . import checks_norm as N
from . import checks_resnet as R
from .originality import refuse_minires_functions
from .verdict import Checker, MissingFunctionError, Refused, Verdict, lookup


def fwd_bwd(name: str) -> dict:
    """The usual two parts: ``NAME_forward`` and ``NAME_backward``, graded separately."""
    return {"forward": (f"{name}_forward",), "backward": (f"{name}_backward",)}


@dataclass(frozen=True)
class Piece:
    name: str
    functions: tuple[str, ...]
    checker: Callable[[Checker], None]
    summary: str
    # part -> prefixes of the function names and compared quantities that belong to it; each
    # part passes or fails on its own (an autograder cell grades one part)
    parts: dict
    # minires files the student's code may call while this piece is checked (besides the array
    # helpers): the reference pieces a composite piece is built from
    allowed_calls: tuple[str, ...] = ()


PIECES = {p.name: p for p in (
    Piece("im2col", ("im2col", "col2im"), K.check_im2col,
          "im2col(x, kh, kw, stride, padding) -> cols; col2im(dcols, x_shape, kh, kw, stride, "
          "padding) -> dx", {"im2col": ("im2col",), "col2im": ("col2im",)}),
    Piece("conv2d", ("conv2d_forward", "conv2d_backward"), K.check_conv2d,
          "conv2d_forward(x, w, b, stride, padding) -> (y, cache); conv2d_backward(dy, cache) -> "
          "(dx, dw, db)", fwd_bwd("conv2d")),
    Piece("relu", ("relu_forward", "relu_backward"), K.check_relu,
          "relu_forward(x) -> (y, cache); relu_backward(dy, cache) -> dx", fwd_bwd("relu")),
    Piece("max_pool", ("max_pool_forward", "max_pool_backward"), K.check_max_pool,
          "max_pool_forward(x, kernel, stride) -> (y, cache); max_pool_backward(dy, cache) -> dx",
          fwd_bwd("max_pool")),
    Piece("avg_pool", ("avg_pool_forward", "avg_pool_backward"), K.check_avg_pool,
          "avg_pool_forward(x, kernel, stride) -> (y, cache); avg_pool_backward(dy, cache) -> dx",
          fwd_bwd("avg_pool")),
    Piece("softmax_cross_entropy", ("softmax_cross_entropy",), K.check_softmax_cross_entropy,
          "softmax_cross_entropy(logits, labels) -> (loss, dlogits)",
          {"loss": ("softmax_cross_entropy", "the loss"), "gradient": ("dlogits",)}),
    Piece("batch_norm", ("batch_norm_forward", "batch_norm_backward"), N.check_batch_norm,
          "batch_norm_forward(x, gamma, beta, eps) -> (y, cache) (training mode); "
          "batch_norm_backward(dy, cache) -> (dx, dgamma, dbeta)", fwd_bwd("batch_norm")),
    Piece("batch_norm_eval", ("batch_norm_update_running", "batch_norm_eval_forward",
                              "batch_norm_eval_backward"), N.check_batch_norm_eval,
          "batch_norm_update_running(running_mean, running_var, x, momentum) -> (running_mean, "
          "running_var); batch_norm_eval_forward(x, gamma, beta, running_mean, running_var, eps) "
          "-> (y, cache); batch_norm_eval_backward(dy, cache) -> (dx, dgamma, dbeta)",
          {"running": ("batch_norm_update_running", "the new running"),
           **fwd_bwd("batch_norm_eval")}),
    Piece("shortcut_a", ("shortcut_a_forward", "shortcut_a_backward"), R.check_shortcut_a,
          "shortcut_a_forward(x, out_channels, stride) -> (y, cache); shortcut_a_backward(dy, "
          "cache) -> dx", fwd_bwd("shortcut_a")),
    Piece("basic_block", ("basic_block_forward", "basic_block_backward"), R.check_basic_block,
          "basic_block_forward(x, params, stride) -> (y, cache); basic_block_backward(dy, cache) "
          "-> (dx, grads); params and grads: dicts with w1, gamma1, beta1, w2, gamma2, beta2",
          fwd_bwd("basic_block"), allowed_calls=("course/reference.py",)),
    Piece("sgd_momentum", ("sgd_momentum",), R.check_sgd_momentum,
          "sgd_momentum(w, dw, velocity, lr, momentum, weight_decay) -> (w, velocity)",
          {"step": ("",)}),
    Piece("graph_backward", ("topological_order", "backward"), R.check_graph_backward,
          "topological_order(root) -> list of Value; backward(root) fills every node's .grad",
          {"topological_order": ("topological_order",), "backward": ("backward", "the leaves")}),
)}


def missing_functions(piece: str, student) -> list[str]:
    return [name for name in PIECES[piece].functions if lookup(student, name) is None]


def check(piece: str, student, device: str = "cpu", seed: int = 0) -> Verdict:
    """Check the student's implementation of ``piece`` (a name in :data:`PIECES`) on ``device``.

    ``student`` is a module, any object with the functions as attributes, or a dict such as a
    notebook's ``globals()``. Returns a :class:`Verdict`, with one verdict per part
    (``verdict.part("backward")``); a piece that is minires's own code, or that calls into
    minires while it is checked, is refused (``verdict.refused`` says why). Raises ``KeyError``
    for an unknown piece and :class:`MissingFunctionError` when a function the piece needs is
    not defined.
    """
    if piece not in PIECES:
        raise KeyError(f"unknown piece {piece!r}; the pieces are {', '.join(PIECES)}")
    missing = missing_functions(piece, student)
    if missing:
        raise MissingFunctionError(f"{piece} needs {', '.join(missing)}, not defined by "
                                   f"{_name(student)} ({PIECES[piece].summary})")
    spec = PIECES[piece]
    refused = refuse_minires_functions(piece, {n: lookup(student, n) for n in spec.functions})
    checker = Checker(piece, student, device, seed, spec.parts, spec.allowed_calls)
    if not refused:
        try:
            spec.checker(checker)
        except Refused as exc:
            refused = str(exc)
    if refused:
        return Verdict(piece, device, False, list(checker.cases), failure=refused,
                       refused=refused)
    return checker.verdict()


def _name(student) -> str:
    if isinstance(student, dict):
        return "the notebook" if "__name__" in student else "the given functions"
    return getattr(student, "__file__", None) or getattr(student, "__name__", None) or \
        type(student).__name__
