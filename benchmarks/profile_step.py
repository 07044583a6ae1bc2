"""Where the time of a minires training step goes, op by op (CPU).

    python benchmarks/profile_step.py [--model resnet20] [--batch 128] [--image-size 32]
                                      [--steps 5] [--json out.json]

Every autograd ``Function``'s ``forward`` and ``backward`` is wrapped with a clock for the
measured steps (after two warm-up steps), and so are the optimiser's ``step`` and ``zero_grad``.
What no op and no optimiser call accounts for is the framework around them: building and walking
the graph, module calls, hooks, the Python between the kernels. The table it prints, one row per
op type with its forward and backward milliseconds per step and its share of the step, says which
kernel a speed-up must come from. The clocks cost about a microsecond per call; nothing is
asserted.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import minires as mr  # noqa: E402
import minires.nn.functional as F  # noqa: E402
from minires import models, optim  # noqa: E402
from minires.autograd.function import Function  # noqa: E402
from minires.host_allocator import tune_host_allocator  # noqa: E402

from common import write_results  # noqa: E402


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _clocked(fn, totals, key):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start
    return wrapper


def instrument(optimizer) -> collections.Counter:
    """Wrap every Function's forward and backward, and ``optimizer``'s step and zero_grad, with
    clocks adding into the returned counter (keys ``(name, phase)``)."""
    totals = collections.Counter()
    for cls in set(_subclasses(Function)):
        for phase in ("forward", "backward"):
            if phase in vars(cls):             # only where the class defines it
                setattr(cls, phase, _clocked(vars(cls)[phase], totals, (cls.__name__, phase)))
    for name in ("step", "zero_grad"):
        setattr(optimizer, name, _clocked(getattr(optimizer, name), totals,
                                          (f"{type(optimizer).__name__}.step, .zero_grad",
                                           "optimizer")))
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    tune_host_allocator()
    mr.manual_seed(0)
    model = models.get_model(args.model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = mr.randn(args.batch, 3, args.image_size, args.image_size)
    y = mr.randint(0, model.fc.out_features, (args.batch,))

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    step()
    step()
    totals = instrument(opt)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    step_ms = (time.perf_counter() - start) / args.steps * 1e3
    per_op = collections.defaultdict(lambda: {"forward_ms": None, "backward_ms": None,
                                              "total_ms": 0.0})
    for (name, phase), seconds in totals.items():
        ms = seconds / args.steps * 1e3
        row = per_op[name]
        if phase != "optimizer":
            row[f"{phase}_ms"] = (row[f"{phase}_ms"] or 0.0) + ms
        row["total_ms"] += ms
    rows = [{"op": name, **times, "share": times["total_ms"] / step_ms}
            for name, times in per_op.items()]
    rows.sort(key=lambda r: -r["share"])
    rest = step_ms - sum(r["total_ms"] for r in rows)
    rows.append({"op": "(the framework around the ops)", "forward_ms": None, "backward_ms": None,
                 "total_ms": rest, "share": rest / step_ms})
    print(f"{args.model}, batch {args.batch}, {args.image_size}x{args.image_size}: "
          f"{step_ms:.0f} ms per training step")
    print(f"  {'op':<32} {'forward ms':>10} {'backward ms':>11} {'total ms':>9} {'share':>6}")
    for r in rows:
        fwd = "" if r["forward_ms"] is None else f"{r['forward_ms']:.1f}"
        bwd = "" if r["backward_ms"] is None else f"{r['backward_ms']:.1f}"
        print(f"  {r['op']:<32} {fwd:>10} {bwd:>11} {r['total_ms']:9.1f} "
              f"{100 * r['share']:5.1f}%")
    if args.json:
        write_results(args.json, "cpu", [{"model": args.model, "batch": args.batch,
                                          "image_size": args.image_size, "step_ms": step_ms,
                                          "ops": rows}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
