"""Checkers for batch norm: training mode (batch statistics) and evaluation mode (running
statistics, and their update). The reference is the naive ``minires.kernels.reference``; the trap signatures are
the results of the known mistakes (a missing gradient path, statistics over the wrong axes, the
batch's statistics in eval mode), computed on the host.
"""
from __future__ import annotations

import numpy

from ..kernels import reference
from .verdict import Checker

EPS = 1e-5
BN_GENERIC = ("per channel: mu and var over axes (0, 2, 3), x_hat = (x - mu) / sqrt(var + eps), "
              "y = gamma * x_hat + beta with gamma and beta reshaped to (1, C, 1, 1)")
BN_AXES = ("the statistics are per channel, over N, H and W: mean over axes (0, 2, 3), not over "
           "axis 0 alone")
BN_BIASED = ("normalise with the biased variance (divide by M = N*H*W, not M - 1; the running "
             "variance is the one that uses M - 1)")
MEAN_PATH = ("the mean's gradient path is missing: mu depends on every x, which adds "
             "-gamma/sigma * dbeta/M to dx (dbeta = sum of dy per channel)")
VAR_PATH = ("the variance's gradient path is missing: sigma depends on every x, which adds "
            "-gamma/sigma * x_hat * dgamma/M to dx (dgamma = sum of dy * x_hat per channel)")
NO_PATHS = ("dx = gamma * dy / sigma treats mu and sigma as constants (that is eval mode); in "
            "training both depend on x: dx = gamma/sigma * (dy - dbeta/M - x_hat * dgamma/M)")
EVAL_RUNNING = ("eval mode must use the running statistics (running_mean, running_var), not the "
                "batch's mean and variance")
EVAL_BACKWARD = ("in eval mode the statistics are constants: dx = dy * gamma / sqrt(running_var "
                 "+ eps), without the mean and variance paths of training")
RUNNING_UNBIASED = ("the running variance is updated with the unbiased batch variance, "
                    "var * M / (M - 1), as PyTorch does (the normalisation uses the biased one)")
RUNNING_MOMENTUM = ("running = (1 - momentum) * running + momentum * batch statistic: momentum "
                    "weighs the new batch (PyTorch's convention, momentum = 0.1)")
RUNNING_GENERIC = ("running_mean <- (1 - momentum) * running_mean + momentum * mu, running_var <- "
                   "(1 - momentum) * running_var + momentum * var * M / (M - 1)")


def _channel(v):
    return v.reshape(1, -1, 1, 1)


def _stats(x, ddof=0):
    return x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=ddof)


def _normalise(x, gamma, beta, mean, var):
    return _channel(gamma) * (x - _channel(mean)) / numpy.sqrt(_channel(var) + EPS) \
        + _channel(beta)


def _train_parts(x, gamma, dy):
    """The pieces of batch norm's training backward (host, float64)."""
    m = x.size // x.shape[1]
    mean, var = _stats(x)
    scale = _channel(gamma / numpy.sqrt(var + EPS))
    x_hat = (x - _channel(mean)) / numpy.sqrt(_channel(var) + EPS)
    dbeta, dgamma = dy.sum(axis=(0, 2, 3)), (dy * x_hat).sum(axis=(0, 2, 3))
    return scale, x_hat, _channel(dbeta) / m, _channel(dgamma) / m


def _train_traps(x, gamma, dy):
    """dx of the three known mistakes of batch norm's training backward."""
    scale, x_hat, dbeta_m, dgamma_m = _train_parts(x, gamma, dy)
    return [(scale * (dy - x_hat * dgamma_m), MEAN_PATH),
            (scale * (dy - dbeta_m), VAR_PATH),
            (scale * dy, NO_PATHS)]


def _train_dx(x, gamma, dy):
    """The right dx in training mode: a mistake in eval mode."""
    scale, x_hat, dbeta_m, dgamma_m = _train_parts(x, gamma, dy)
    return scale * (dy - dbeta_m - x_hat * dgamma_m)


def _backward_checks(ck, prefix, grads, refs, wrong, forward, x, gamma, beta, dy):
    for name, got, ref in zip(("dx", "dgamma", "dbeta"), grads, refs):
        ck.compare(f"{prefix}'s {name}", got, ref, wrong if name == "dx" else ())
    ck.numeric(f"{prefix}'s dx", grads[0], lambda v: forward(v, gamma, beta), x, dy, wrong)
    ck.numeric(f"{prefix}'s dgamma", grads[1], lambda v: forward(x, v, beta), gamma, dy)
    ck.numeric(f"{prefix}'s dbeta", grads[2], lambda v: forward(x, gamma, v), beta, dy)


def check_batch_norm(ck: Checker):
    for shape, adds in (((4, 3, 2, 3), "training mode"),
                        ((2, 4, 3, 2), "another shape, inputs far from zero mean")):
        with ck.case(f"x {shape}, gamma and beta ({shape[1]},), eps {EPS} ({adds})", BN_GENERIC):
            c = shape[1]
            x = ck.randn(*shape) * 2.0 + 3.0 * ck.randn(1, c, 1, 1)
            gamma, beta = ck.randn(c) + 1.5, ck.randn(c)
            x_d, g_d, b_d = ck.dev(x), ck.dev(gamma), ck.dev(beta)
            y, cache = ck.unpack(ck.call("batch_norm_forward", x_d, g_d, b_d, EPS), 2,
                                 "batch_norm_forward", "y, cache")
            y_ref, ref_cache = reference.batch_norm_forward(x_d, g_d, b_d, EPS)
            axis0 = gamma.reshape(1, c, 1, 1) * (x - x.mean(0)) / numpy.sqrt(x.var(0) + EPS) \
                + beta.reshape(1, c, 1, 1)
            ck.compare("batch_norm_forward's y", y, y_ref,
                       wrong=[(axis0, BN_AXES),
                              (_normalise(x, gamma, beta, *_stats(x, ddof=1)), BN_BIASED)])
            dy = ck.randn(*shape)
            grads = ck.unpack(ck.call("batch_norm_backward", ck.dev(dy), cache), 3,
                              "batch_norm_backward", "dx, dgamma, dbeta")
            refs = reference.batch_norm_backward(ck.dev(dy), ref_cache)

            def forward(x_, g_, b_):
                return ck.host(ck.call("batch_norm_forward", ck.dev(x_), ck.dev(g_), ck.dev(b_),
                                       EPS)[0], "y")
            _backward_checks(ck, "batch_norm_backward", grads, refs, _train_traps(x, gamma, dy),
                             forward, x, gamma, beta, dy)


def check_batch_norm_eval(ck: Checker):
    shape, momentum = (4, 3, 2, 3), 0.1
    c = shape[1]
    m = shape[0] * shape[2] * shape[3]
    x = ck.randn(*shape) * 2.0 + 3.0 * ck.randn(1, c, 1, 1)
    running_mean, running_var = ck.randn(c), ck.rng.uniform(0.5, 2.0, c)
    with ck.case(f"running statistics ({c},) updated from x {shape}, momentum {momentum}",
                 RUNNING_GENERIC):
        new = ck.unpack(ck.call("batch_norm_update_running", ck.dev(running_mean),
                                ck.dev(running_var), ck.dev(x), momentum), 2,
                        "batch_norm_update_running", "running_mean, running_var")
        ref_mean, ref_var = reference.batch_norm_update_running(
            ck.dev(running_mean), ck.dev(running_var), ck.dev(x), momentum)
        mean, var = _stats(x)
        swapped = [(momentum * running_mean + (1 - momentum) * mean, RUNNING_MOMENTUM)]
        ck.compare("the new running_mean", new[0], ref_mean, swapped)
        ck.compare("the new running_var", new[1], ref_var,
                   [((1 - momentum) * running_var + momentum * var, RUNNING_UNBIASED),
                    (momentum * running_var + (1 - momentum) * var * m / (m - 1),
                     RUNNING_MOMENTUM)])
    with ck.case(f"eval mode, x {shape}, running statistics ({c},)", EVAL_RUNNING):
        gamma, beta = ck.randn(c) + 1.5, ck.randn(c)
        x_d, g_d, b_d = ck.dev(x), ck.dev(gamma), ck.dev(beta)
        rm_d, rv_d = ck.dev(running_mean), ck.dev(running_var)
        y, cache = ck.unpack(ck.call("batch_norm_eval_forward", x_d, g_d, b_d, rm_d, rv_d, EPS),
                             2, "batch_norm_eval_forward", "y, cache")
        y_ref, ref_cache = reference.batch_norm_eval_forward(x_d, g_d, b_d, rm_d, rv_d, EPS)
        ck.compare("batch_norm_eval_forward's y", y, y_ref,
                   [(_normalise(x, gamma, beta, *_stats(x)), EVAL_RUNNING)])
        dy = ck.randn(*shape)
        grads = ck.unpack(ck.call("batch_norm_eval_backward", ck.dev(dy), cache), 3,
                          "batch_norm_eval_backward", "dx, dgamma, dbeta")
        refs = reference.batch_norm_eval_backward(ck.dev(dy), ref_cache)

        def forward(x_, g_, b_):
            return ck.host(ck.call("batch_norm_eval_forward", ck.dev(x_), ck.dev(g_), ck.dev(b_),
                                   ck.dev(running_mean), ck.dev(running_var), EPS)[0], "y")
        _backward_checks(ck, "batch_norm_eval_backward", grads, refs,
                         [(_train_dx(x, gamma, dy), EVAL_BACKWARD)], forward, x, gamma, beta, dy)

