"""Checkpoints: ``mr.save(obj, path)`` and ``mr.load(path)``, as ``.npz`` without pickle.

``obj`` is a (nested) dict / list of tensors, arrays, numbers, strings, booleans and None: a
model's ``state_dict()``, an optimiser's, a training loop's whole checkpoint. Arrays go into the
``.npz`` as they are (from any device, through the host); the structure around them is JSON in an
entry named ``__minires__``. Loading uses ``allow_pickle=False``, so a checkpoint cannot run code.

Writes are atomic: the file is written next to its destination under a temporary name, flushed
to disk, then renamed over the destination, so an interrupted save never leaves a half-written
checkpoint where a good one was. A process killed during a save (``kill -9``) cannot remove its
temporary file; the next save to the same destination removes such leftovers.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
import time
import zipfile

import numpy

from .devices import backend
from .autograd import Tensor
from .errors import CheckpointError

FORMAT = "minires-checkpoint"
VERSION = 1


_TMP_PREFIX = ".tmp-"
_STALE_AFTER_S = 60.0       # a temporary file this old belongs to no save still running


def _encode(obj, arrays: dict):
    if isinstance(obj, Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = backend.to_host(obj.array)
        return {"__tensor__": key}
    if isinstance(obj, numpy.ndarray) or hasattr(obj, "__cuda_array_interface__") or \
            isinstance(obj, backend.StrictArray):
        if obj.dtype.hasobject:   # numpy.savez would pickle it; load (no pickle) could not read it
            raise TypeError(f"save: cannot store an array of dtype {obj.dtype} (Python objects "
                            f"inside an array need pickle); store a list or numbers instead")
        key = f"a{len(arrays)}"
        arrays[key] = backend.to_host(obj)
        return {"__array__": key}
    if isinstance(obj, numpy.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save: cannot store an object of type {type(obj).__name__}; checkpoints "
                    f"hold tensors, arrays, numbers, strings, lists and dicts")


def _decode(obj, arrays, device):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            data = arrays[obj["__tensor__"]]
            return Tensor(backend.to_device(data, device) if device is not None else data)
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays, device) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_decode(k, arrays, device): _decode(v, arrays, device)
                    for k, v in obj["__dict__"]}
        raise CheckpointError(f"load: unknown entry {sorted(obj)} in the checkpoint structure")
    if isinstance(obj, list):
        return [_decode(v, arrays, device) for v in obj]
    return obj


def save(obj, path) -> None:
    """Write ``obj`` to ``path`` (``.npz``) atomically."""
    path = os.fspath(path)
    arrays: dict[str, numpy.ndarray] = {}
    structure = {"format": FORMAT, "version": VERSION, "object": _encode(obj, arrays)}
    meta = numpy.frombuffer(json.dumps(structure).encode("utf-8"), dtype=numpy.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(folder, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.path.basename(path)}.", suffix=".npz",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, __minires__=meta, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Remove what a killed save to ``folder/name`` left behind: its temporary files, once they
    are old enough that no save still running can own them."""
    now = time.time()
    pattern = os.path.join(glob.escape(folder), f"{_TMP_PREFIX}{glob.escape(name)}.*.npz")
    for tmp in glob.glob(pattern):
        try:
            if now - os.path.getmtime(tmp) > _STALE_AFTER_S:
                os.remove(tmp)
        except OSError:          # gone already, or not ours to remove: leave it
            pass


def load(path, map_location=None):
    """Read a checkpoint written by :func:`save`. Tensors come back on ``map_location`` (a device
    name; default "cpu"), arrays as NumPy arrays. Pickle is never used."""
    path = os.fspath(path)
    device = backend.normalize_device(map_location) if map_location is not None else None
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            if "__minires__" not in npz.files:
                raise CheckpointError(f"load: {path} is an .npz file but not a minires "
                                      f"checkpoint (no __minires__ entry)")
            structure = json.loads(npz["__minires__"].tobytes().decode("utf-8"))
            arrays = {k: npz[k] for k in npz.files if k != "__minires__"}
    except CheckpointError:
        raise
    except RecursionError:   # JSON nested deeper than any state dict: a crafted file
        raise CheckpointError(f"load: {path} is not a minires checkpoint (its structure is "
                              f"nested too deeply to be one)") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError,
            json.JSONDecodeError) as exc:
        raise CheckpointError(f"load: {path} is not a readable minires checkpoint (truncated, "
                              f"corrupt or another format): {exc}") from None
    if not isinstance(structure, dict) or structure.get("format") != FORMAT \
            or "object" not in structure:
        raise CheckpointError(f"load: {path} is not a minires checkpoint")
    version = structure.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"load: {path} was written by a newer minires (format version "
                              f"{version!r}); upgrade minires")
    try:
        return _decode(structure["object"], arrays, device)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:   # e.g. an entry naming a missing array
        raise CheckpointError(f"load: {path} is a damaged minires checkpoint (its structure "
                              f"does not match its arrays: {exc!r})") from None
    except RecursionError:   # a structure nested deeper than any state dict: a crafted file
        raise CheckpointError(f"load: {path} is not a minires checkpoint (its structure is "
                              f"nested too deeply to be one)") from None
