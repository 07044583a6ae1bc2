"""Coursework: pieces of minires that students write, and checkers that grade them.

**The student's contract** (CS231n's): a student's file (or notebook) defines plain functions over
arrays. On the ``cpu`` device they receive NumPy float64 arrays; on ``strict`` and ``cuda`` they
receive that device's arrays, so code that should run there takes its array module from its
inputs (``xp = minires.backend.array_module(x)``) instead of using ``np`` directly. Images are
(N, C, H, W), weights (F, C, kh, kw); ``stride`` and ``padding`` are ints; each ``*_forward``
returns ``(output, cache)`` and its ``*_backward(dout, cache)`` the gradients, the cache being the
student's own.

============================  =====================================================================
piece                         functions
============================  =====================================================================
``im2col``                    ``im2col(x, kh, kw, stride, padding) -> cols`` of shape
                              (N*Ho*Wo, C*kh*kw), rows ordered (n, i, j), columns like
                              ``w.reshape(F, -1)``; ``col2im(dcols, x_shape, kh, kw, stride,
                              padding) -> dx``, its adjoint
``conv2d``                    ``conv2d_forward(x, w, b, stride, padding) -> (y, cache)``;
                              ``conv2d_backward(dy, cache) -> (dx, dw, db)``
``relu``                      ``relu_forward(x) -> (y, cache)``; ``relu_backward(dy, cache) -> dx``
``max_pool``, ``avg_pool``    ``max_pool_forward(x, kernel, stride) -> (y, cache)``;
                              ``max_pool_backward(dy, cache) -> dx`` (likewise ``avg_pool_*``;
                              no padding)
``softmax_cross_entropy``     ``softmax_cross_entropy(logits, labels) -> (loss, dlogits)``, loss
                              averaged over the batch
``batch_norm``                training mode, per channel over (N, H, W):
                              ``batch_norm_forward(x, gamma, beta, eps) -> (y, cache)``;
                              ``batch_norm_backward(dy, cache) -> (dx, dgamma, dbeta)``
``batch_norm_eval``           ``batch_norm_update_running(running_mean, running_var, x, momentum)
                              -> (running_mean, running_var)`` (PyTorch's rule, unbiased variance);
                              ``batch_norm_eval_forward(x, gamma, beta, running_mean, running_var,
                              eps) -> (y, cache)``; ``batch_norm_eval_backward(dy, cache) ->
                              (dx, dgamma, dbeta)``
``shortcut_a``                the paper's option A: ``shortcut_a_forward(x, out_channels, stride)
                              -> (y, cache)``; ``shortcut_a_backward(dy, cache) -> dx``
``basic_block``               ``basic_block_forward(x, params, stride) -> (y, cache)``;
                              ``basic_block_backward(dy, cache) -> (dx, grads)``, params and grads
                              dicts with keys w1, gamma1, beta1, w2, gamma2, beta2 (3x3 convs
                              without bias, batch norm in training mode, eps 1e-5)
``sgd_momentum``              ``sgd_momentum(w, dw, velocity, lr, momentum, weight_decay) ->
                              (w, velocity)``, PyTorch's rule; the first velocity is zeros
``graph_backward``            over :class:`minires.course.graph.Value` nodes:
                              ``topological_order(root) -> list``; ``backward(root)`` fills
                              every node's ``.grad``
============================  =====================================================================

``check(piece, student)`` runs one piece's checker and returns a :class:`Verdict`; ``minires
check PIECE FILE`` does the same from the command line. ``use(student)`` plugs the student's
conv2d and batch norm into minires's autograd (``with mr.course.use(my_kernels): ...``).
Each verdict holds one verdict per part (``verdict.part("forward")``), graded separately; a piece
that is minires's own code, or a wrapper calling into it, is refused. ``check_sanity`` and
``check_training`` grade a training loop by what it does (:mod:`minires.course.training`).
"""
from .registry import PIECES, check  # noqa: F401
from .verdict import MissingFunctionError, Verdict, numeric_gradient, relative_error  # noqa: F401


def __getattr__(name):
    # use() touches the autograd ops; release() is for instructors: both load on first use
    if name == "use":
        from .plug import use
        return use
    if name == "release":
        from .release import release
        return release
    if name in ("check_sanity", "check_training"):      # assignment 4's training-loop graders
        from . import training
        return getattr(training, name)
    raise AttributeError(f"module 'minires.course' has no attribute {name!r}")
