"""The ``minires`` command (also ``python -m minires``).

    minires degradation [--quick | --long | --full] [--depths 20 56] [--steps N] ...
    minires gradflow --model plain56 --compare resnet56 [--after-steps K] ...
    minires responses --from DIR [--models plain20 resnet20 ...]
    minires train --model resnet20 [--dataset embedded|cifar10] [--epochs N] ...
    minires check conv2d my_kernels.py      (and minires release: see minires.course.cli)
    minires lesion --model resnet56 --compare plain56 [--from DEGRADATION_DIR] ...
    minires landscape --model resnet56 --compare plain56 [--grid N --range R --images M] ...

Bad arguments give a one-line error and exit status 2. Every error minires raises on purpose is
a :class:`~minires.errors.MiniresError` (an unavailable device, unreadable data, a checkpoint
that does not fit, results that would be overwritten, a run that diverged): it is caught here,
once, and printed as one line with exit status 1. Arguments are checked before any folder is created.
Ctrl-C, SIGTERM and SIGHUP stop a run with one line (exit 128 + the signal number); what was
finished and the last checkpoint are kept, and ``--resume`` continues from them.

Spread out: ``mpiexec -n N minires degradation ...`` trains the nets as a task farm (one net per
rank at a time) and ``mpiexec -n N minires train ...`` trains one net data-parallel
(DistributedDataParallel, ``--sync-bn``). Each rank gets cores / ranks BLAS threads on its machine
(unless OMP_NUM_THREADS or OPENBLAS_NUM_THREADS is set); only rank 0 writes shared files and
prints. See docs/scaling-out.md.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import signal
import sys
import threading

import numpy

from . import __version__, configuration
from .devices.host_allocator import tune_host_allocator
from .errors import (MiniresError, NothingToResumeError, ResultsExistError, TrainingDiverged,
                     UsageError)


class CLIError(UsageError):
    """A user error: printed as one line, exit status 1."""


def _writable_dir(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".minires-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise CLIError(f"--out {path!r} is not a writable folder ({exc.strerror or exc})")
    return path


def _device(name: str | None) -> str:
    """The device to run on: ``--device``, else $MINIRES_DEVICE, else "cpu"; checked here so a
    missing GPU is one line before any work starts."""
    from .devices import backend
    try:
        device = backend.normalize_device(name) if name else backend.default_device()
        backend.get_array_module(device)
    except (ValueError, backend.DeviceError) as exc:
        raise CLIError(str(exc))
    return str(device)


def _model_name(name: str) -> str:
    from .models import parse_model_name
    try:
        parse_model_name(name)
    except ValueError as exc:
        raise CLIError(str(exc))
    return name.strip().lower()


def _integer_at_least(value: str, minimum: int, expected: str) -> int:
    try:
        v = int(value)
    except ValueError:
        v = None
    if v is None or v < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return v


def _positive(value: str) -> int:
    return _integer_at_least(value, 1, "a positive integer")


def _nonnegative(value: str) -> int:
    return _integer_at_least(value, 0, "an integer >= 0")


def _learning_rate(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}")
    if not math.isfinite(v) or v < 0:       # 0 as PyTorch's optimisers: frozen weights
        raise argparse.ArgumentTypeError(f"the learning rate must be a finite number >= 0, got "
                                         f"{value!r}")
    return v


def _image_size(value: str) -> int:
    v = _positive(value)
    if v < 8:      # the CIFAR nets halve the image twice; the embedded images start at 8 pixels
        raise argparse.ArgumentTypeError(f"images must be at least 8 pixels wide, got {value!r}")
    return v


def _depth(value: str) -> int:
    from .models import is_cifar_depth
    d = _positive(value)
    if not is_cifar_depth(d):
        raise argparse.ArgumentTypeError(f"depth {d} is not 6n+2 (20, 32, 44, 56, 110, ...)")
    return d


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"minires: error: {message} (see 'minires {self.prog.split()[-1]} --help')\n"
                  if " " in self.prog else f"minires: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minires", description="minires: plain vs residual nets, from scratch.")
    parser.add_argument("--version", action="version", version=f"minires {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    d = sub.add_parser("degradation", help="train plain and residual nets at several depths "
                       "(the degradation problem, paper Figure 6 / Table 2)")
    mode = d.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the quick configuration (default): "
                      "embedded data, 12x12 images, width 8, 800 steps: minutes on a CPU")
    mode.add_argument("--long", action="store_true", help="the quick set-up for 4,800 steps "
                      "with the paper's step schedule (/10 at 50%% and 75%%): the depth sweep's "
                      "setting where ResNet-56 ends below ResNet-20 (docs/paper-results.md has "
                      "its committed runs and times; mpiexec spreads its nets)")
    mode.add_argument("--full", action="store_true", help="the paper's CIFAR-10 recipe "
                      "(64k iterations, depths 20-56: a GPU job)")
    d.add_argument("--depths", type=_depth, nargs="+", help="depths 6n+2 (default 20 56)")
    d.add_argument("--steps", type=_positive)
    d.add_argument("--image-size", type=_image_size)
    d.add_argument("--width", type=_positive, help="filters of the first stage (16 in the paper)")
    d.add_argument("--batch-size", type=_positive)
    d.add_argument("--lr", type=_learning_rate)
    d.add_argument("--warmup-steps", type=_nonnegative,
                   help="linear learning-rate warm-up (quick: 100)")
    d.add_argument("--dataset", choices=("embedded", "cifar10"))
    d.add_argument("--data-dir", help="folder holding (or to hold) cifar-10-python.tar.gz")
    d.add_argument("--num-train", type=_positive)
    d.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N")
    d.add_argument("--seed", type=_nonnegative, default=0)
    d.add_argument("--eval-every", type=_positive)
    d.add_argument("--out", default="minires-out/degradation")
    _add_resume_flags(d, "skip the runs OUT/results.json lists and continue the interrupted one "
                      "from its checkpoint (same flags as the first time)")
    d.add_argument("--no-progress", action="store_true")

    g = sub.add_parser("gradflow", help="gradient flow per layer and block, plain vs residual")
    g.add_argument("--model", default="plain56")
    g.add_argument("--compare", nargs="*", default=["resnet56"], help="more models to measure")
    g.add_argument("--batch-size", type=_positive, default=128)
    g.add_argument("--image-size", type=_image_size, default=32)
    g.add_argument("--width", type=_positive, default=16)
    g.add_argument("--after-steps", type=_nonnegative, default=0, help="train K steps first "
                   "(default 0: at initialisation)")
    g.add_argument("--device", default=None)
    g.add_argument("--seed", type=_nonnegative, default=0)
    g.add_argument("--out", default="minires-out/gradflow")
    g.add_argument("--overwrite", action="store_true", help="replace the results in OUT")
    g.add_argument("--no-progress", action="store_true")

    r = sub.add_parser("responses", help="std of each 3x3 layer's response of the nets a "
                       "degradation run trained (paper Figure 7)")
    r.add_argument("--from", dest="source", required=True,
                   help="the --out folder of a finished `minires degradation` run")
    r.add_argument("--models", nargs="+", help="which of its models (default: all it saved)")
    r.add_argument("--device", default=None)
    r.add_argument("--out", help="where to write (default: FROM/responses)")
    r.add_argument("--overwrite", action="store_true", help="replace the results in OUT")

    t = sub.add_parser("train", help="train one model")
    t.add_argument("--model", default="resnet20")
    t.add_argument("--dataset", choices=("embedded", "cifar10"), default="embedded")
    t.add_argument("--data-dir")
    t.add_argument("--image-size", type=_image_size, default=32)
    t.add_argument("--width", type=_positive, default=16)
    t.add_argument("--epochs", type=_positive)
    t.add_argument("--steps", type=_positive)
    t.add_argument("--batch-size", type=_positive, default=128)
    t.add_argument("--lr", type=_learning_rate, default=0.1)
    t.add_argument("--warmup-steps", type=_nonnegative, default=0)
    t.add_argument("--num-train", type=_positive, default=20000)
    t.add_argument("--augment", action="store_true", help="pad-4 random crop + horizontal flip")
    t.add_argument("--device", default=None)
    t.add_argument("--seed", type=_nonnegative, default=0)
    t.add_argument("--sync-bn", action="store_true", help="under mpiexec: batch norm over the "
                   "global batch (SyncBatchNorm) instead of each rank's share")
    t.add_argument("--out", default="minires-out/train")
    _add_resume_flags(t, "continue from OUT/checkpoint.npz (same flags as the first time)")
    t.add_argument("--no-progress", action="store_true")

    from .course.cli import add_parsers as add_course_parsers   # minires check, minires release
    add_course_parsers(sub)
    _add_study_parsers(sub)
    return parser


def _add_resume_flags(parser, resume_help: str) -> None:
    flags = parser.add_mutually_exclusive_group()
    flags.add_argument("--resume", action="store_true", help=resume_help)
    flags.add_argument("--overwrite", action="store_true", help="replace the results in OUT")


# what each command writes into --out (folders: their .npz files); --overwrite removes these
_OUTPUTS = {
    "degradation": ("results.json", "checkpoints", "models", "training_error.png",
                    "test_error.png", "gradient_norms_at_init.png"),
    "gradflow": ("gradflow.json", "gradient_norms.png", "response_std.png",
                 "shortcut_vs_branch_*.png"),
    "train": ("checkpoint.npz", "history.json", "training_error.png"),
    "responses": ("responses.json", "response_std.png"),
}


def _prepare_out(args, resume_from: str | None = None) -> str:
    """Check ``--out`` against ``--resume``/``--overwrite`` (nothing is written before the check
    passes), clear it for ``--overwrite``, and create it. ``resume_from``: the file whose presence
    means "there is something to resume"."""
    out = args.out
    found = sorted(n for pattern in _OUTPUTS[args.command]
                   for n in glob.glob(os.path.join(glob.escape(out), pattern))
                   if not os.path.isdir(n) or glob.glob(os.path.join(glob.escape(n), "*.npz")))
    resume = getattr(args, "resume", False)
    if resume and not os.path.exists(os.path.join(out, resume_from)):
        raise NothingToResumeError(
            f"nothing to resume: {os.path.join(out, resume_from)} does not exist (a mistyped "
            f"--out?); run without --resume to start")
    if found and not resume and not args.overwrite:
        names = ", ".join(os.path.basename(n) for n in found)
        raise ResultsExistError(
            f"{out} already holds results ({names}); pass "
            + ("--resume to continue them or " if resume_from else "")
            + "--overwrite to replace them, or choose another --out")
    args.created_out = not os.path.exists(out)
    out = _writable_dir(out)
    if args.overwrite:
        for path in found:
            for f in (glob.glob(os.path.join(glob.escape(path), "*.npz"))
                      if os.path.isdir(path) else [path]):
                os.remove(f)
    return out


# --- minires lesion / minires landscape (the work is in minires.experiments) ---
def _add_study_parsers(sub) -> None:
    for command, text in (("lesion", "delete blocks of trained nets at test time (Veit et al. "
                           "2016): writes lesion.json and figures"),
                          ("landscape", "the loss around trained weights along two random "
                           "filter-normalised directions (Li et al. 2018)")):
        p = sub.add_parser(command, help=text)
        p.add_argument("--model", default="resnet56")
        p.add_argument("--compare", nargs="*", default=["plain56"], help="more models")
        p.add_argument("--from", dest="source", help="a `minires degradation --out` folder "
                       "holding the trained models (default: train them with the quick preset "
                       "into OUT/trained)")
        p.add_argument("--out", default=f"minires-out/{command}")
        if command == "lesion":
            p.add_argument("--images", type=_positive, help="the first M test images "
                           "(default: all)")
            p.add_argument("--ks", type=_positive, nargs="+", help="numbers of blocks to delete "
                           "at random (default: up to half the blocks)")
            p.add_argument("--draws", type=_positive, default=3, help="draws per k (default 3)")
        else:
            p.add_argument("--grid", type=_positive, default=11, help="points per side (11)")
            p.add_argument("--range", type=float, default=1.0, dest="span",
                           help="alpha, beta in [-R, R] (1.0)")
            p.add_argument("--images", type=_positive, default=256,
                           help="the first M training images (256)")
            p.add_argument("--curve-points", type=_positive, help="points of each 1-D curve "
                           "(default 2 * grid + 1)")
        p.add_argument("--batch-size", type=_positive, default=256)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None)
        p.add_argument("--data-dir", help="CIFAR-10 folder, for models trained on cifar10")
        p.add_argument("--overwrite", action="store_true", help="replace an existing result")
        p.add_argument("--no-progress", action="store_true")


def cmd_study(args) -> int:
    from .experiments import landscape, lesion
    names = [_model_name(args.model)] + [_model_name(n) for n in (args.compare or [])]
    device = _device(args.device)
    if args.command == "landscape" and (args.grid < 2 or not 0 < args.span < float("inf")):
        raise CLIError("--grid must be >= 2 and --range a positive number")
    if args.source and not os.path.isdir(args.source):
        raise CLIError(f"--from {args.source!r} is not a folder (a `minires degradation --out`)")
    out = _writable_dir(args.out)
    common = dict(out=out, source=args.source, seed=args.seed, batch_size=args.batch_size,
                  device=device, data_dir=args.data_dir, overwrite=args.overwrite,
                  progress=not args.no_progress)
    try:
        if args.command == "lesion":
            results = lesion.run_lesion(names, images=args.images, ks=args.ks, draws=args.draws,
                                        **common)
            print(lesion.lesion_table(results))
        else:
            results = landscape.run_landscape(names, grid=args.grid, span=args.span,
                                              images=args.images, curve_points=args.curve_points,
                                              **common)
            print(landscape.landscape_table(results))
    except (FileExistsError, ValueError) as exc:
        raise CLIError(str(exc))
    print(f"wrote {os.path.join(out, args.command + '.json')} and figures to {out}/")
    return 0


def degradation_config(args):
    """The :class:`DegradationConfig` the parsed ``args`` ask for (quick unless ``--full``)."""
    from .experiments import DegradationConfig
    overrides = {}
    for key in ("steps", "image_size", "width", "batch_size", "lr", "warmup_steps", "dataset",
                "data_dir", "num_train", "eval_every"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.depths:
        overrides["depths"] = tuple(args.depths)
    overrides["seed"] = args.seed
    overrides["device"] = _device(args.device)
    preset = (DegradationConfig.full if args.full else
              DegradationConfig.long if args.long else DegradationConfig.quick)
    config = preset(**overrides)
    if config.dataset == "cifar10" and config.image_size != 32:
        raise CLIError("CIFAR-10 images are 32x32: use --image-size 32 with --dataset cifar10")
    return config


def cmd_degradation(args) -> int:
    from .experiments import degradation_table, run_degradation
    config = degradation_config(args)
    if config.dataset == "embedded" and config.batch_size > config.num_train:
        raise CLIError(f"--batch-size {config.batch_size} is larger than the training set "
                       f"(--num-train {config.num_train}): lower one or raise the other")
    out = _on_rank_0(lambda: _prepare_out(args, resume_from="results.json"))
    ranks = f", {_world_size()} ranks" if _world_size() > 1 else ""
    print(f"minires degradation{ranks}: depths {list(config.depths)}, {config.steps} steps, "
          f"{config.dataset} {config.image_size}x{config.image_size}, width {config.width}, "
          f"device {config.device}", flush=True)
    results = run_degradation(config, out=out, progress=not args.no_progress, resume=args.resume)
    print(degradation_table(results))
    print(f"wrote {os.path.join(out, 'results.json')} and figures to {out}/")
    diverged = [r for r in results["runs"] if r.get("diverged")]
    if diverged:
        raise TrainingDiverged(
            ", ".join(f"{r['model']} diverged at step {r.get('diverged_step')}" for r in diverged)
            + " (the loss or the weights stopped being finite; results.json marks it diverged); "
            "try a smaller --lr or a longer --warmup-steps")
    return 0


def cmd_gradflow(args) -> int:
    from .experiments import gradflow_table, run_gradflow
    names = [_model_name(args.model)] + [_model_name(n) for n in (args.compare or [])]
    device = _device(args.device)
    out = _prepare_out(args)
    results = run_gradflow(names, batch_size=args.batch_size, image_size=args.image_size,
                           device=device, seed=args.seed, after_steps=args.after_steps, out=out,
                           width=args.width, progress=not args.no_progress)
    print(gradflow_table(results))
    print(f"wrote {os.path.join(out, 'gradflow.json')} and figures to {out}/")
    return 0


def cmd_responses(args) -> int:
    from .experiments import run_responses
    device = _device(args.device)
    if not os.path.exists(os.path.join(args.source, "results.json")):      # before any folder
        raise CLIError(f"{os.path.join(args.source, 'results.json')} not found: run `minires "
                       f"degradation --out {args.source}` first")
    args.out = args.out or os.path.join(args.source, "responses")
    out = _prepare_out(args)
    results = run_responses(args.source, [_model_name(n) for n in args.models or []], out=out,
                            device=device)
    for depth, twin in results["comparison"]["twins"].items():
        print(f"depth {depth}: ResNet response std below the plain net's in "
              f"{twin['layers_resnet_smaller']} of {twin['layers']} layers (mean "
              f"{twin['resnet_mean']:.3f} vs {twin['plain_mean']:.3f})")
    for pair, c in results["comparison"]["deeper_resnet"].items():
        print(f"{pair}: mean std {c['deeper_mean']:.3f} vs {c['shallower_mean']:.3f}, median "
              f"{c['deeper_median']:.3f} vs {c['shallower_median']:.3f}")
    print(f"wrote {os.path.join(out, 'responses.json')} and response_std.png to {out}/")
    return 0


def cmd_train(args) -> int:
    from .experiments.train import run_train
    name = _model_name(args.model)
    device = _device(args.device)
    if args.dataset == "cifar10" and args.image_size != 32:
        raise CLIError("CIFAR-10 images are 32x32: use --image-size 32 with --dataset cifar10")
    if args.epochs is None and args.steps is None:
        args.epochs = 1
    if args.epochs is not None and args.steps is not None:
        raise CLIError("give --epochs or --steps, not both")
    if args.dataset == "embedded" and args.batch_size > args.num_train:
        raise CLIError(f"--batch-size {args.batch_size} is larger than the training set "
                       f"(--num-train {args.num_train}): lower one or raise the other")
    size = _world_size()
    if args.batch_size % size:
        raise CLIError(f"--batch-size {args.batch_size} does not split over {size} ranks: give a "
                       f"multiple of {size} (each rank takes batch / ranks)")
    out = _on_rank_0(lambda: _prepare_out(args, resume_from="checkpoint.npz"))
    history = run_train(name, out, dataset=args.dataset, data_dir=args.data_dir,
                        image_size=args.image_size, width=args.width, epochs=args.epochs,
                        steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        warmup_steps=args.warmup_steps, num_train=args.num_train,
                        augment=args.augment, device=device, seed=args.seed,
                        sync_bn=args.sync_bn, resume=args.resume,
                        progress=not args.no_progress, log=print)
    if _rank() != 0:
        return 0
    print(f"{name}: final training error {history.final_train_error:.1f}%, test error "
          f"{history.final_test_error:.1f}% after {history.steps[-1] if history.steps else 0} "
          f"steps ({history.seconds:.0f} s)")
    print(f"wrote {out}/history.json, {out}/checkpoint.npz")
    return 0


# --- spread over the ranks of an MPI launch ---
_SPREAD_COMMANDS = ("degradation", "train")


def _rank() -> int:
    from . import distributed as dist
    return dist.get_rank() if dist.is_initialized() else 0


def _world_size() -> int:
    from . import distributed as dist
    return dist.get_world_size() if dist.is_initialized() else 1


def _join_ranks(args) -> bool:
    """Under ``mpiexec -n N`` (N > 1): give each rank its BLAS threads and, for ``--device
    cuda``, its GPU (LOCAL_RANK / the MPI local rank), then join the process group. Returns
    whether a group was made. Ranks other than 0 print nothing to stdout."""
    from .distributed import launch
    rank, world, local_rank, local_size = launch.launched_ranks()
    if world <= 1 or not launch.launched_by_mpi():
        return False
    if args.command not in _SPREAD_COMMANDS:
        raise CLIError(f"minires {args.command} runs in one process; launch it without mpiexec "
                       f"(minires {' and '.join(_SPREAD_COMMANDS)} spread over ranks)")
    if local_size > 1 and not any(v in os.environ for v in ("OMP_NUM_THREADS",
                                                            "OPENBLAS_NUM_THREADS")):
        launch.limit_blas_threads(launch.blas_threads_per_rank())
    device = getattr(args, "device", None) or configuration.env("MINIRES_DEVICE") or "cpu"
    if device == "cuda" and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank)     # one GPU per rank
    import datetime
    from . import distributed as dist
    backend_name = "nccl" if args.command == "train" and device.startswith("cuda") else "mpi"
    # a farm's ranks wait for each other's nets (hours): the deadline is for a rank that hangs
    dist.init_process_group(backend_name, timeout=datetime.timedelta(days=7))
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return True


def _on_rank_0(work):
    """Run ``work`` on rank 0 only (checking and preparing --out) and share its result or its
    error with every rank, so all ranks go on, or all stop with the same line."""
    from . import distributed as dist
    if _world_size() == 1:
        return work()
    outcome = [None]
    if dist.get_rank() == 0:
        try:
            outcome = [("ok", work())]
        except MiniresError as exc:
            outcome = [("error", exc)]
    dist.broadcast_object_list(outcome, src=0)
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def _end_job(status: int) -> None:
    """A rank that fails while others run ends the whole MPI job (they would wait for it)."""
    if _world_size() > 1:
        from mpi4py import MPI
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(status)


class _Stopped(BaseException):
    """SIGTERM or SIGHUP (a dropped SSH session) arrived: stop as Ctrl-C does."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise _Stopped(signum)


def _remove_new_empty_out(args) -> None:
    """A run that failed before writing anything leaves no empty --out folder behind."""
    if getattr(args, "created_out", False):
        try:
            os.rmdir(args.out)          # only if empty
        except OSError:
            pass


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    tune_host_allocator()   # recycle host memory between training steps (minires.host_allocator)
    handler = getattr(args, "run", None) or {"degradation": cmd_degradation,
                                             "gradflow": cmd_gradflow,
                                             "responses": cmd_responses,
                                             "train": cmd_train,
                                             "lesion": cmd_study,
                                             "landscape": cmd_study}[args.command]
    stops = [s for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s)] \
        if threading.current_thread() is threading.main_thread() else []
    previous = {s: signal.signal(getattr(signal, s), _stop) for s in stops}
    spread = False
    try:
        spread = _join_ranks(args)
        # overflow and 0/0 in a diverging run: the loop notices and says so in one line
        with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return handler(args)
    except MiniresError as exc:
        if _rank() == 0:
            _remove_new_empty_out(args)
        where = f" (rank {_rank()})" if _world_size() > 1 else ""
        print(f"minires {args.command}{where}: error: {exc}", file=sys.stderr)
        _end_job(1)
        return 1
    except OSError as exc:          # the file system said no (a full disk, a read-only folder)
        _remove_new_empty_out(args)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"minires {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        _end_job(1)
        return 1
    except (KeyboardInterrupt, _Stopped) as exc:
        signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
        kept = f"; what was finished and the last checkpoint are kept in {args.out}: continue " \
            f"with --resume" if hasattr(args, "resume") else ""
        print(f"minires {args.command}: stopped by {signal.Signals(signum).name}{kept}",
              file=sys.stderr)
        _end_job(128 + signum)
        return 128 + signum
    finally:
        for s, handler_before in previous.items():
            signal.signal(getattr(signal, s), handler_before)
        if spread:
            from . import distributed as dist
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
