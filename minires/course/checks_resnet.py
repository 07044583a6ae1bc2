"""Checkers for the pieces of a residual net: the option-A shortcut, a BasicBlock composed from
the student's kernels, an SGD-with-momentum step, and a topological-order backward. The
references are minires's own operations, optimiser and autograd engine.
"""
from __future__ import annotations

import numpy

from .graph import Value
from .verdict import CheckFailed, Checker

SHORTCUT_GENERIC = ("option A: y = x[:, :, ::stride, ::stride] followed by out_channels - C zero "
                    "channels; dx is dy's first C channels put back at the subsampled positions")
SHORTCUT_SIDES = ("minires appends the out_channels - C zero channels after x's channels (some "
                  "implementations pad both sides; here x fills channels 0 .. C-1)")
SHORTCUT_OFFSET = ("subsample with x[:, :, ::stride, ::stride], starting at row and column 0, "
                   "where the strided 3x3 convolution's windows are centred")
SHORTCUT_ODD = ("odd H: x[:, :, ::2, ::2] keeps ceil(H / 2) rows, the output size of the block's "
                "3x3, stride-2, padding-1 convolution")


def _op_grad(device, op, x, dy, *args):
    """minires's op applied to ``x`` on ``device``: (output, dx for the upstream ``dy``)."""
    from ..creation import tensor
    t = tensor(x, requires_grad=True, device=device)
    y = op(t, *args)
    y.backward(tensor(dy, device=device))
    return y.array, t.grad.array


def check_shortcut_a(ck: Checker):
    from ..ops import zero_pad_shortcut
    for x_shape, out_c, stride, trap in (((2, 3, 4, 4), 3, 1, SHORTCUT_GENERIC),
                                         ((2, 2, 4, 4), 4, 2, SHORTCUT_GENERIC),
                                         ((2, 2, 5, 5), 6, 2, SHORTCUT_ODD)):
        with ck.case(f"x {x_shape} -> {out_c} channels, stride {stride}", trap):
            x = ck.randn(*x_shape)
            y, cache = ck.unpack(ck.call("shortcut_a_forward", ck.dev(x), out_c, stride), 2,
                                 "shortcut_a_forward", "y, cache")
            y_shape = _shortcut_shape(x_shape, out_c, stride)
            y_ref, _ = _op_grad(ck.device, zero_pad_shortcut, x, numpy.zeros(y_shape), out_c,
                                stride)
            c, before = x_shape[1], (out_c - x_shape[1]) // 2
            pad = ((0, 0), (before, out_c - c - before), (0, 0), (0, 0))
            wrong = [(numpy.pad(x[:, :, ::stride, ::stride], pad), SHORTCUT_SIDES)]
            if stride > 1:
                shifted = numpy.pad(x[:, :, 1::stride, 1::stride],
                                    ((0, 0), (0, out_c - c), (0, 0), (0, 0)))
                wrong.append((shifted, SHORTCUT_OFFSET))
            ck.compare("shortcut_a_forward's y", y, y_ref, wrong)
            dy = ck.randn(*y_shape)
            dx = ck.call("shortcut_a_backward", ck.dev(dy), cache)
            _, dx_ref = _op_grad(ck.device, zero_pad_shortcut, x, dy, out_c, stride)
            sides = numpy.zeros_like(x)
            sides[:, :, ::stride, ::stride] = dy[:, before:before + c]
            ck.compare("shortcut_a_backward's dx", dx, dx_ref, [(sides, SHORTCUT_SIDES)])
            ck.numeric("shortcut_a_backward's dx", dx, lambda v: ck.host(
                ck.call("shortcut_a_forward", ck.dev(v), out_c, stride)[0], "y"), x, dy)


def _shortcut_shape(x_shape, out_c, stride):
    n, _, h, w = x_shape
    return n, out_c, -(-h // stride), -(-w // stride)


BLOCK_GENERIC = ("y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)): 3x3 convolutions with "
                 "padding 1 (the first one strides), batch norm in training mode, the option-A "
                 "shortcut when the shape changes, the identity otherwise")
BLOCK_SHORTCUT_GRAD = ("the shortcut's gradient is missing: dx = d(branch)/dx + d(shortcut)/dx, "
                       "and the identity shortcut hands dy on to x unchanged")
BLOCK_RELU_ORDER = ("the last ReLU comes after the addition: y = relu(F(x) + shortcut(x)), not "
                    "relu(F(x)) + shortcut(x)")
BLOCK_NO_RELU = "the block ends with a ReLU after the addition: y = relu(F(x) + shortcut(x))"
BLOCK_KEYS = ("w1", "gamma1", "beta1", "w2", "gamma2", "beta2")


def _reference_block(device, x, params, stride, dy, eps):
    """minires's ops, composed as a BasicBlock: (y, dx, grads, trap signatures)."""
    from ..creation import tensor
    from ..ops import batch_norm, conv2d, relu, zero_pad_shortcut

    def run(final, shortcut_grad):
        xt = tensor(x, requires_grad=True, device=device)
        p = {k: tensor(v, requires_grad=True, device=device) for k, v in params.items()}
        h = relu(batch_norm(conv2d(xt, p["w1"], None, stride, 1), None, None, p["gamma1"],
                            p["beta1"], True, 0.1, eps))
        branch = batch_norm(conv2d(h, p["w2"], None, 1, 1), None, None, p["gamma2"],
                            p["beta2"], True, 0.1, eps)
        xs = xt if shortcut_grad else xt.detach()
        f = params["w1"].shape[0]
        short = xs if (stride == 1 and f == x.shape[1]) else zero_pad_shortcut(xs, f, stride)
        y = final(branch, short)
        y.backward(tensor(dy, device=device))
        return y.array, xt.grad.array, {k: p[k].grad.array for k in BLOCK_KEYS}

    y, dx, grads = run(lambda b, s: relu(b + s), True)
    _, dx_branch_only, _ = run(lambda b, s: relu(b + s), False)
    y_relu_first = run(lambda b, s: relu(b) + s, True)[0]
    y_no_relu = run(lambda b, s: b + s, True)[0]
    return y, dx, grads, {"dx": [(dx_branch_only, BLOCK_SHORTCUT_GRAD)],
                          "y": [(y_relu_first, BLOCK_RELU_ORDER), (y_no_relu, BLOCK_NO_RELU)]}


def check_basic_block(ck: Checker):
    eps = 1e-5
    for x_shape, f, stride, adds in (((2, 3, 4, 4), 3, 1, "identity shortcut"),
                                     ((2, 2, 4, 4), 4, 2, "stride 2, option-A shortcut")):
        c = x_shape[1]
        with ck.case(f"x {x_shape}, {f} filters, stride {stride} ({adds})", BLOCK_GENERIC):
            x = ck.randn(*x_shape)
            params = {"w1": ck.randn(f, c, 3, 3) * 0.5, "gamma1": ck.randn(f) + 1.5,
                      "beta1": ck.randn(f), "w2": ck.randn(f, f, 3, 3) * 0.5,
                      "gamma2": ck.randn(f) + 1.5, "beta2": ck.randn(f)}
            dev_params = {k: ck.dev(v) for k, v in params.items()}
            y, cache = ck.unpack(ck.call("basic_block_forward", ck.dev(x), dev_params, stride),
                                 2, "basic_block_forward", "y, cache")
            dy = ck.randn(*_shortcut_shape(x_shape, f, stride))    # y's shape, whatever y is
            y_ref, dx_ref, grads_ref, wrong = _reference_block(ck.device, x, params, stride, dy,
                                                               eps)
            ck.compare("basic_block_forward's y", y, y_ref, wrong["y"])
            dx, grads = ck.unpack(ck.call("basic_block_backward", ck.dev(dy), cache), 2,
                                  "basic_block_backward", "dx, grads")
            ck.compare("basic_block_backward's dx", dx, dx_ref, wrong["dx"])
            if not isinstance(grads, dict) or set(grads) != set(BLOCK_KEYS):
                raise CheckFailed(f"basic_block_backward's grads should be a dict with keys "
                                  f"{', '.join(BLOCK_KEYS)}, got "
                                  f"{sorted(grads) if isinstance(grads, dict) else type(grads)}",
                                  part="backward")
            for k in BLOCK_KEYS:
                ck.compare(f"basic_block_backward's grads['{k}']", grads[k], grads_ref[k])
            if stride == 2:
                ck.numeric("basic_block_backward's dx", dx, lambda v: ck.host(
                    ck.call("basic_block_forward", ck.dev(v), dev_params, stride)[0], "y"),
                    x, dy, wrong["dx"])


SGD_GENERIC = ("PyTorch's (and minires's) SGD: g = dw + weight_decay * w; v = momentum * v + g; "
               "w = w - lr * v; return the new w and v")
SGD_DECAY = ("weight decay adds weight_decay * w to the gradient before the momentum: "
             "g = dw + weight_decay * w")
SGD_LR = ("the learning rate multiplies the velocity, not the gradient inside it: v = momentum "
          "* v + g, w -= lr * v (CS231n's v = momentum * v - lr * dw differs once lr changes)")
SGD_VELOCITY = ("the velocity must carry over from step to step: v = momentum * v + g, then "
                "w -= lr * v; return the new velocity, the next step receives it")


def check_sgd_momentum(ck: Checker):
    from ..nn import Parameter
    from ..optim import SGD
    from ..creation import tensor
    shape, momentum = (3, 4), 0.9
    for lrs, wd, adds, trap in (((0.1, 0.1, 0.1, 0.1), 0.0, "constant lr", SGD_GENERIC),
                                ((0.1, 0.1, 0.1), 0.01, "weight decay 0.01", SGD_DECAY),
                                ((0.1, 0.05, 0.02, 0.01), 0.0, "lr changing every step",
                                 SGD_LR)):
        with ck.case(f"w {shape}, momentum {momentum}, lr {list(lrs)} ({adds})", trap):
            w0 = ck.randn(*shape)
            grads = [ck.randn(*shape) for _ in lrs]
            p = Parameter(tensor(w0, device=ck.device))
            opt = SGD([p], lr=lrs[0], momentum=momentum, weight_decay=wd)
            w, v, plain = ck.dev(w0), ck.xp.zeros(shape), w0.copy()
            for step, (lr, dw) in enumerate(zip(lrs, grads), 1):
                w, v = ck.unpack(ck.call("sgd_momentum", w, ck.dev(dw), v, lr, momentum, wd), 2,
                                 "sgd_momentum", "w, velocity")
                p.grad = tensor(dw, device=ck.device)
                opt.param_groups[0]["lr"] = lr
                opt.step()
                plain = plain - lr * (dw + wd * plain)
                ck.compare(f"w after step {step}", w, p.array, [(plain, SGD_VELOCITY)])


GRAPH_GENERIC = ("backward: root.grad = 1, then for every node in reverse topological order, "
                 "parent.grad += local_grad * node.grad for each of its parents")
GRAPH_REUSE = ("a node used more than once must accumulate: parent.grad += local * node.grad "
               "(assigning with = keeps only the last use)")
GRAPH_ORDER = ("visit the nodes in reverse topological order: a node's gradient must be complete "
               "(every use summed) before it is pushed to its parents; pushing it on as soon as "
               "part of it arrives (recursion without an order) counts the parents twice")
GRAPH_TOPO = ("topological_order must list every node reachable from the root once, each after "
              "all its parents (depth-first: append a node after visiting its parents)")

# (description, builder over Value or Tensor leaves, leaf values, trap)
GRAPHS = [
    ("a chain: tanh(a * b + 1)", lambda a, b: (a * b + 1.0).tanh(), (0.7, -1.3), GRAPH_GENERIC),
    ("a node used twice: b = a + a; c = b * 3 (micrograd issue #64)",
     lambda a: (a + a) * 3.0, (0.4,), GRAPH_REUSE),
    ("a node whose gradient arrives in parts: b = a * 2; c = b * b + tanh(b * a)",
     lambda a: (lambda b: b * b + (b * a).tanh())(a * 2.0), (0.3,), GRAPH_ORDER),
]


def _reachable(root):
    seen, stack = {id(root): root}, [root]
    while stack:
        for p in stack.pop().parents:
            if id(p) not in seen:
                seen[id(p)] = p
                stack.append(p)
    return seen


def _is_topological(order, nodes) -> bool:
    """Every node once, each after all its parents."""
    if not isinstance(order, (list, tuple)) or len(order) != len(nodes):
        return False
    position = {id(n): i for i, n in enumerate(order)}
    if set(position) != set(nodes):
        return False
    return all(position[id(p)] < position[id(n)] for n in order for p in n.parents)


def _describe_order(order) -> str:
    if not isinstance(order, (list, tuple)):
        return f"a {type(order).__name__}, not a list"
    return f"{len(order)} nodes, not every node once after all its parents,"


def check_graph_backward(ck: Checker):
    from ..dtypes import float64
    from ..creation import tensor
    for description, build, values, trap in GRAPHS:
        with ck.case(description, trap):
            leaves = [Value(v, label=f"leaf{i}") for i, v in enumerate(values)]
            root = build(*leaves)
            order = ck.call("topological_order", root)
            if not _is_topological(order, _reachable(root)):
                ck.fail(CheckFailed(f"topological_order returned {_describe_order(order)} for "
                                    f"a graph of {len(_reachable(root))} nodes", GRAPH_TOPO,
                                    "topological_order"))
            ck.call("backward", root)
            got = numpy.array([leaf.grad for leaf in leaves])
            ts = [tensor(v, requires_grad=True, dtype=float64, device=ck.device) for v in values]
            build(*ts).backward()
            ck.compare("the leaves' gradients", got,
                       numpy.array([float(t.grad.numpy()) for t in ts]), student=False)
            ck.numeric("the leaves' gradients", got, lambda v: numpy.array(
                build(*[Value(float(e)) for e in v]).data), numpy.array(values), 1.0,
                       student=False)
