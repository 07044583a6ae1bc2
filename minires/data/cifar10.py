"""CIFAR-10: download once, verify, extract safely, load.

``load_cifar10(root=None, download=True) -> (train, test)``, each a
:class:`~minires.data.loader.TensorDataset` with images ``(N, 3, 32, 32)`` float32 in [0, 1]
(the uint8 pixels divided by 255) and int64 labels; 50,000 training and 10,000 test images.

Where the files go: ``root`` if given, else the ``MINIRES_DATA`` environment variable, else
``~/.cache/minires``. Inside it:

* ``cifar-10-python.tar.gz``: the official archive (170 MB) from
  https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz. It is downloaded once, into a temporary
  file in the same folder that is renamed into place only after its MD5 checksum
  (``c58f30108f718f92721af3b95e74349a``) matched, so an interrupted download never leaves a
  half-written archive under the real name.
* ``cifar-10-batches-py/``: the extracted batches. Extraction is equally all-or-nothing (a
  temporary folder renamed into place) and **safe**: only regular files and folders are accepted;
  a member that is a link, a device or a FIFO, or whose path is absolute or climbs out of the
  target with ``..``, makes the whole archive refused. Once this folder is complete, later calls
  read it directly, without the network and without the archive.

Reading the batches. The official files are Python pickles (each a dict with ``b'data'``, a
``(10000, 3072)`` uint8 array, and ``b'labels'``, a list of ints). Unpickling can run arbitrary
code, so they are read with a *restricted* unpickler that resolves only the handful of globals a
pickled NumPy array needs (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``, plus ``_codecs.encode`` that Python 3 uses for bytes in protocol 2) and refuses
every other one. Plain containers (dict, list, bytes, str, int) need no globals at all. A tampered
file can therefore fail to load, but cannot execute code.

Without the network: download the archive by hand, put it at ``<root>/cifar-10-python.tar.gz``
(or extract it there), and pass ``root`` (the ``minires`` command's ``--data-dir``).
"""
from __future__ import annotations

import codecs
import gzip
import hashlib
import os
import pickle
import posixpath
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy

from .. import configuration
from ..errors import MiniresError
from .loader import TensorDataset

__all__ = ["load_cifar10", "default_root", "CIFAR10_URL", "CIFAR10_MD5", "CLASSES",
           "DatasetError", "CorruptArchiveError", "safe_extract", "read_batch"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")


class DatasetError(MiniresError, RuntimeError):
    """The dataset could not be obtained (no network, no archive, bad files)."""


class CorruptArchiveError(DatasetError, ValueError):
    """The archive or its contents are damaged, truncated, unsafe or not the expected ones."""


def default_root() -> Path:
    """``$MINIRES_DATA`` if set, else ``~/.cache/minires``."""
    return Path(configuration.env("MINIRES_DATA")).expanduser()


def _manual_hint(root: Path) -> str:
    return (f"download {CIFAR10_URL} by hand (md5 {CIFAR10_MD5}) and put it at "
            f"{root / ARCHIVE_NAME} (or extract it there as {root / FOLDER_NAME}/), or point "
            "`root=` / MINIRES_DATA / `minires ... --data-dir` at a folder that has it; "
            "`--dataset embedded` needs no download at all")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------

def _download(url: str, dest: Path, md5: str | None, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` atomically (temp file + rename), checking ``md5`` first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp)
    try:
        h = hashlib.md5()
        print(f"minires: downloading {url} to {dest} ...", file=sys.stderr, flush=True)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DatasetError(f"could not download CIFAR-10 from {url} ({exc}). Offline? "
                               f"{_manual_hint(dest.parent)}") from exc
        if md5 is not None and h.hexdigest() != md5:
            raise CorruptArchiveError(
                f"the downloaded CIFAR-10 archive is corrupt or incomplete (md5 "
                f"{h.hexdigest()}, expected {md5}); nothing was kept. Run again, or "
                f"{_manual_hint(dest.parent)}")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------------------------
# Safe extraction
# ---------------------------------------------------------------------------------------------

def _member_path(member: tarfile.TarInfo) -> str:
    """The member's normalised relative path; raises for anything unsafe."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a device" if (member.ischr() or member.isblk()) else "a FIFO"
                if member.isfifo() else "not a regular file")
        raise CorruptArchiveError(f"unsafe archive: member {name!r} is {kind}; refusing to extract")
    if "\\" in name or "\x00" in name:
        raise CorruptArchiveError(f"unsafe archive: member {name!r} has a strange path")
    norm = posixpath.normpath(name)
    if name.startswith("/") or norm.startswith("/") or norm == ".." or norm.startswith("../") \
            or (len(name) > 1 and name[1] == ":"):
        raise CorruptArchiveError(f"unsafe archive: member {name!r} would be written outside the "
                                  "target folder; refusing to extract")
    return norm


def safe_extract(archive: Path, target: Path, keep_prefix: str | None = None) -> list[str]:
    """Extract the regular files of a tar archive into ``target`` after checking every member.

    Any link, device, FIFO, absolute path or path that escapes ``target`` makes the whole archive
    refused (:class:`CorruptArchiveError`) before anything is written. File contents are copied
    by minires itself (no permissions, owners or times are taken from the archive). Only members
    under ``keep_prefix`` are written, when it is given. Returns the written paths (relative).
    """
    target = Path(target)
    written = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            checked = [(m, _member_path(m)) for m in members]
            root = target.resolve()
            for member, rel in checked:
                dest = (target / rel).resolve()
                if dest != root and root not in dest.parents:
                    raise CorruptArchiveError(f"unsafe archive: member {member.name!r} escapes "
                                              "the target folder")
            for member, rel in checked:
                if keep_prefix is not None and not (rel == keep_prefix or
                                                     rel.startswith(keep_prefix + "/")):
                    continue
                dest = target / rel
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                written.append(rel)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptArchiveError(f"the archive {archive} is damaged or truncated ({exc}); "
                                  "delete it and run again") from exc
    return written


# ---------------------------------------------------------------------------------------------
# Reading the batches with a restricted unpickler
# ---------------------------------------------------------------------------------------------

def _numpy_globals() -> dict:
    # numpy.core.multiarray._reconstruct (numpy._core in NumPy 2), without importing the
    # deprecated module name
    reconstruct = numpy.ndarray.__reduce__(numpy.zeros(1))[0]
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = reconstruct
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "ndarray")] = numpy.ndarray
        allowed[(mod, "dtype")] = numpy.dtype
    # Python 3 writes bytes as _codecs.encode(str, 'latin1') in protocol 2 (a re-pickled copy)
    allowed[("_codecs", "encode")] = codecs.encode
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled NumPy array needs; refuses every other global."""

    _allowed = None

    def find_class(self, module, name):
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _numpy_globals()
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name} from a "
                                         "dataset file (only NumPy arrays and plain containers "
                                         "are allowed)") from None


def _unpickle(path: Path):
    with open(path, "rb") as fh:
        return _RestrictedUnpickler(fh, encoding="bytes").load()


def read_batch(path: Path) -> tuple[numpy.ndarray, numpy.ndarray]:
    """One CIFAR-10 batch file: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``."""
    try:
        batch = _unpickle(path)
    except Exception as exc:  # UnpicklingError, EOFError, ValueError ... from a damaged file
        raise CorruptArchiveError(f"could not read the CIFAR-10 batch {path} ({exc}); delete "
                                  f"{path.parent} and the archive, then run again") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise CorruptArchiveError(f"{path} is not a CIFAR-10 batch (no b'data'/b'labels')")
    data = numpy.asarray(batch[b"data"])
    labels = numpy.asarray(batch[b"labels"], dtype=numpy.int64)
    if data.dtype != numpy.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 \
            or len(data) != len(labels):
        raise CorruptArchiveError(f"{path}: unexpected data {data.dtype} {data.shape} with "
                                  f"{len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise CorruptArchiveError(f"{path}: labels outside 0..9")
    # rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    return data.reshape(-1, 3, 32, 32), labels


def _read_split(folder: Path, files) -> TensorDataset:
    parts = [read_batch(folder / name) for name in files]
    images = numpy.concatenate([p[0] for p in parts])
    labels = numpy.concatenate([p[1] for p in parts])
    images = images.astype(numpy.float32)
    images *= numpy.float32(1.0 / 255.0)
    return TensorDataset(images, labels, classes=_class_names(folder))


def _class_names(folder: Path) -> list:
    meta = folder / META_FILE
    if meta.exists():
        try:
            names = _unpickle(meta).get(b"label_names")
            if names and len(names) == 10:
                return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        except Exception:
            pass
    return list(CLASSES)


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in TRAIN_FILES + TEST_FILES)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------

def load_cifar10(root=None, download: bool = True) -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` CIFAR-10 datasets, downloading and caching the archive if needed.

    ``root``: the cache folder (else ``$MINIRES_DATA``, else ``~/.cache/minires``). With
    ``download=False`` a missing archive is an error rather than a download. Raises
    :class:`DatasetError` (a ``RuntimeError``) when the data cannot be had, and
    :class:`CorruptArchiveError` (also a ``ValueError``) for a bad checksum, a truncated or unsafe
    archive or unreadable batches; both messages say what to do.
    """
    root = Path(root).expanduser() if root is not None else default_root()
    folder = root / FOLDER_NAME
    if root.exists() and not root.is_dir():
        raise DatasetError(f"the CIFAR-10 folder {root} is a file, not a folder; give a folder "
                           f"(--data-dir or $MINIRES_DATA)")
    if not _complete(folder):
        try:
            _fetch_and_extract(root, download)
        except OSError as exc:       # a read-only or full disk: say which folder, not a traceback
            raise DatasetError(f"cannot set up CIFAR-10 in {root} ({exc.strerror or exc}: "
                               f"{exc.filename}); give a writable folder (--data-dir or "
                               f"$MINIRES_DATA)") from None
    return _read_split(folder, TRAIN_FILES), _read_split(folder, TEST_FILES)


def _fetch_and_extract(root: Path, download: bool) -> None:
    """The archive (downloaded if allowed and needed, checksum verified), extracted."""
    archive = root / ARCHIVE_NAME
    # read the module attributes at call time: tests (and mirrors) may replace them
    url, md5 = CIFAR10_URL, CIFAR10_MD5
    if archive.exists():
        actual = _md5(archive)
        if md5 is not None and actual != md5:
            raise CorruptArchiveError(
                f"{archive} is corrupt or incomplete (md5 {actual}, expected {md5}); delete it "
                f"and run again to download it anew, or {_manual_hint(root)}")
    elif download:
        _download(url, archive, md5)
    else:
        raise DatasetError(f"CIFAR-10 is not in {root} and download=False; "
                           f"{_manual_hint(root)}")
    _extract(archive, root)


def _extract(archive: Path, root: Path) -> None:
    """Extract ``cifar-10-batches-py`` from the archive into ``root``, all or nothing."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cifar-10-extract.", dir=root))
    try:
        safe_extract(archive, tmp, keep_prefix=FOLDER_NAME)
        if not _complete(tmp / FOLDER_NAME):
            missing = [n for n in TRAIN_FILES + TEST_FILES if not (tmp / FOLDER_NAME / n).is_file()]
            raise CorruptArchiveError(f"{archive} is not the CIFAR-10 python archive: "
                                      f"{FOLDER_NAME}/ lacks {', '.join(missing)}; delete it and "
                                      f"run again, or {_manual_hint(root)}")
        final = root / FOLDER_NAME
        if final.exists():                 # an incomplete earlier extraction
            shutil.rmtree(final)
        os.replace(tmp / FOLDER_NAME, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
