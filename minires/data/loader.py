"""Datasets on the host and the ``DataLoader`` that moves their batches to a device.

Data lives on the host as NumPy arrays: images ``(N, C, H, W)`` float32, labels ``(N,)`` int64.
Only the loader crosses to the device, one batch at a time, through ``backend.to_device``.

Randomness is explicit and reproducible. Epoch ``k`` of a loader seeded with ``seed`` shuffles with
a generator made from ``(seed, k)`` alone, and batch ``b`` of that epoch is augmented with a
generator made from ``(seed, k, b)`` alone. So a training run that is stopped and resumed from
``loader.state_dict()`` sees exactly the batches (and the same random crops and flips) that an
uninterrupted run would have seen.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy

from ..devices import backend
from ..autograd import Tensor
from ..dtypes import as_dtype, float32

# Every random stream of the pipeline is seeded from the user's seed: shuffling with
# [seed, epoch]. A salt of its own keeps each other stream apart from those: NumPy's SeedSequence
# ignores trailing zeros, so the split drawn from [seed] alone would be epoch 0's shuffle order.
# Arbitrary values, fixed for good: changing one changes every split or augmentation of a seed.
_SPLIT_SALT = 0x5B117            # train_val_split
_AUGMENTATION_SALT = 0xA06       # the generator handed to a transform, per (epoch, batch)

__all__ = ["Dataset", "TensorDataset", "Subset", "DataLoader", "train_val_split", "get_batch"]


class Dataset:
    """The base class of map-style datasets (PyTorch's): define ``__getitem__(i)`` and
    ``__len__``."""

    def __getitem__(self, index):  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class TensorDataset(Dataset):
    """Fields that share their first dim; sample ``i`` is ``tuple(field[i] for each field)``.

    Two forms, one class:

    * PyTorch's, ``TensorDataset(*tensors)``: ``ds.tensors``; a field given as a minires
      :class:`~minires.autograd.Tensor` is indexed as a tensor (it stays where it is);
    * minires's, ``TensorDataset(images, labels, classes=None)`` with host arrays: ``ds.images``
      ``(N, C, H, W)``, ``ds.labels`` ``(N,)`` int64 (checked: 1-D integers), ``ds.classes`` (class
      names, ``0 .. max label`` if not given); ``ds[i] -> (image, label int)``, ``ds[array_or_slice]
      -> (images, labels)``.

    A field that is not a tensor is kept on the host as a NumPy array, and a scalar of it comes
    out as a Python number. ``classes`` may be given as the third argument (a list of names), as
    minires's datasets always could.
    """

    def __init__(self, *tensors, classes: Sequence[str] | None = None):
        if len(tensors) == 3 and classes is None and _are_names(tensors[2]):
            *tensors, classes = tensors              # minires's (images, labels, classes)
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        fields = [t if isinstance(t, Tensor) else numpy.asarray(t) for t in tensors]
        if any(f.ndim == 0 for f in fields):
            raise ValueError(f"TensorDataset: every tensor needs a first dim, got shapes "
                             f"{[tuple(f.shape) for f in fields]}")
        self._images_and_labels = len(fields) == 2 and not any(isinstance(f, Tensor)
                                                               for f in fields)
        if self._images_and_labels:          # minires's form: integer labels, named classes
            images, labels = fields
            if labels.ndim != 1:
                raise ValueError(f"TensorDataset: labels must be 1-D, got shape {labels.shape}")
            if len(images) != len(labels):
                raise ValueError(f"TensorDataset: {len(images)} images but {len(labels)} labels")
            if labels.dtype.kind not in "iu":
                raise TypeError(f"TensorDataset: labels must be integers, got {labels.dtype}")
            fields[1] = labels.astype(numpy.int64, copy=False)
            if classes is None:
                classes = [str(c) for c in range(int(fields[1].max()) + 1)] if len(labels) else []
        elif len({f.shape[0] for f in fields}) > 1:
            raise ValueError(f"TensorDataset: the tensors' first dims differ: "
                             f"{[tuple(f.shape) for f in fields]}")
        self._fields = fields
        self.classes = list(classes or [])

    @property
    def tensors(self) -> tuple:
        """The fields, in the order given (PyTorch's attribute)."""
        return tuple(self._fields)

    @property
    def images(self):
        return self._fields[0]

    @images.setter
    def images(self, value):
        self._fields[0] = value

    @property
    def labels(self):
        return self._fields[1]

    @labels.setter
    def labels(self, value):
        self._fields[1] = value

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return int(self._fields[0].shape[0])

    def __getitem__(self, index):
        return tuple(_item(f[index]) if not isinstance(f, Tensor) else f[index]
                     for f in self._fields)

    def get_batch(self, indices) -> tuple:
        """``(images, labels)`` of the samples at ``indices`` as host arrays (a new array, safe to
        modify): what minires's :class:`DataLoader` uses."""
        indices = numpy.asarray(indices, dtype=numpy.int64)
        return tuple(backend.to_host(f.array)[indices] if isinstance(f, Tensor) else f[indices]
                     for f in self._fields)

    def get_items(self, indices) -> tuple:
        """A whole batch at once as tensors, one indexing copy per field (what
        :class:`minires.utils.data.DataLoader` uses); a tensor's batch stays on its device."""
        out = []
        for f in self._fields:
            if isinstance(f, Tensor):
                out.append(Tensor._wrap(f.array[backend.to_device(numpy.asarray(indices),
                                                                  f.device)]))
            else:
                out.append(Tensor(f[numpy.asarray(indices, dtype=numpy.int64)]))
        return tuple(out)

    def __repr__(self):
        if not self._images_and_labels:
            return (f"{type(self).__name__}({len(self)} samples, tensors of shapes "
                    f"{[tuple(f.shape) for f in self._fields]})")
        return (f"{type(self).__name__}({len(self)} images of shape "
                f"{tuple(self.images.shape[1:])}, "
                f"{self.images.dtype}, {self.num_classes} classes)")


def _are_names(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _item(value):
    """A scalar of a host array as a Python number (an int label stays an int)."""
    return value.item() if isinstance(value, numpy.generic) else value


class Subset:
    """A view on some samples of a dataset (no copy until ``.images`` is asked for)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = numpy.asarray(indices, dtype=numpy.int64)
        if self.indices.ndim != 1:
            raise ValueError("Subset: indices must be 1-D")
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices out of range for a dataset of {len(dataset)}")

    @property
    def classes(self) -> list:
        return list(getattr(self.dataset, "classes", []))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def images(self) -> numpy.ndarray:
        """The subset's images as one array (a copy)."""
        return get_batch(self.dataset, self.indices)[0]

    @property
    def labels(self) -> numpy.ndarray:
        return numpy.asarray(self.dataset.labels)[self.indices] if hasattr(self.dataset, "labels") \
            else get_batch(self.dataset, self.indices)[1]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, (int, numpy.integer)):
            return self.dataset[int(self.indices[index])]
        return get_batch(self.dataset, self.indices[index])

    def get_batch(self, indices):
        return get_batch(self.dataset, self.indices[numpy.asarray(indices, dtype=numpy.int64)])

    def __repr__(self):
        return f"Subset({len(self)} of {self.dataset!r})"


def get_batch(dataset, indices) -> tuple[numpy.ndarray, numpy.ndarray]:
    """``(images, labels)`` of ``dataset`` at ``indices``: the dataset's own ``get_batch`` where it
    has one (one fancy-indexing copy), else ``dataset[i]`` sample by sample, stacked."""
    if hasattr(dataset, "get_batch"):
        images, labels = dataset.get_batch(indices)
        return numpy.asarray(images), numpy.asarray(labels, dtype=numpy.int64)
    samples = [dataset[int(i)] for i in indices]
    if not samples:
        raise ValueError("get_batch: no indices")
    images = numpy.stack([numpy.asarray(s[0]) for s in samples])
    labels = numpy.asarray([int(s[1]) for s in samples], dtype=numpy.int64)
    return images, labels


def train_val_split(dataset, val_fraction: float = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """Split a dataset at random into ``(train, val)`` subsets (the paper's 45k/5k is
    ``train_val_split(cifar_train, 0.1)``). ``val_fraction`` is a fraction in (0, 1) or a count."""
    n = len(dataset)
    if isinstance(val_fraction, (int, numpy.integer)) and not isinstance(val_fraction, bool) \
            and val_fraction >= 1:
        n_val = int(val_fraction)
    elif 0.0 < float(val_fraction) < 1.0:
        n_val = int(round(n * float(val_fraction)))
    else:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1) or a count >= 1, "
                         f"got {val_fraction!r}")
    if not 0 < n_val < n:
        raise ValueError(f"train_val_split: {n_val} validation samples out of {n} leaves an "
                         "empty split")
    order = numpy.random.default_rng([int(seed), _SPLIT_SALT]).permutation(n)
    return Subset(dataset, numpy.sort(order[n_val:])), Subset(dataset, numpy.sort(order[:n_val]))


class DataLoader:
    """Batches of ``(images, labels)`` as minires Tensors on ``device``.

    ``DataLoader(dataset, batch_size=128, shuffle=False, drop_last=False, seed=0, transform=None,
    device=None, dtype=float32)``

    * each ``for batch in loader`` is one epoch; epochs count up from 0 (``set_epoch(k)`` picks
      one);
    * with ``shuffle=True`` epoch ``k`` visits the samples in the order
      ``default_rng([seed, k]).permutation(N)``: the same seed gives the same epochs on any machine;
    * ``transform(images, rng)`` runs on the host batch (NumPy, ``(B, C, H, W)``) with a generator
      that depends only on ``(seed, epoch, batch index)`` (see :mod:`minires.data.transforms`);
    * images are cast to ``dtype`` (float32) on the host, labels are int64; both are moved to
      ``device`` (None: the default device, ``MINIRES_DEVICE`` or "cpu");
    * ``state_dict()`` records where the loader is (epoch, batches already served); a new loader
      given it with ``load_state_dict()`` continues with the very next batch.
    """

    def __init__(self, dataset, batch_size: int = 128, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0,
                 transform: Callable[[numpy.ndarray, numpy.random.Generator], numpy.ndarray]
                 | None = None, device=None, dtype=float32):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.transform = transform
        self.device = backend.normalize_device(device) if device is not None else None
        self.dtype = as_dtype(dtype)
        self._next_epoch = 0        # the epoch the next `iter()` starts
        self._resume_batch = 0      # ... and the batch it starts at (after load_state_dict)
        self._epoch = None          # the epoch being served (None: none started)
        self._served = 0            # batches of self._epoch already served (including skipped)
        self._iteration = 0         # which `iter()` owns the bookkeeping (the latest one)
        if len(self) == 0:
            raise ValueError(f"DataLoader: {len(dataset)} samples make no batch of "
                             f"{self.batch_size} with drop_last=True")

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # --- epochs and resumption ---
    @property
    def epoch(self) -> int:
        """The epoch being served, or the one the next iteration will serve."""
        return self._epoch if self._epoch is not None else self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration serve epoch ``epoch`` from its first batch."""
        if int(epoch) < 0:
            raise ValueError(f"set_epoch: epoch must be >= 0, got {epoch}")
        self._next_epoch = int(epoch)
        self._resume_batch = 0
        self._epoch = None
        self._served = 0
        self._iteration += 1

    def state_dict(self) -> dict:
        """``{"epoch", "batch", "seed", "batch_size", "shuffle", "drop_last", "num_samples"}``: the
        next batch to serve is batch ``batch`` of epoch ``epoch``."""
        if self._epoch is not None and self._served < len(self):
            epoch, batch = self._epoch, self._served
        elif self._epoch is not None:
            epoch, batch = self._epoch + 1, 0
        else:
            epoch, batch = self._next_epoch, self._resume_batch
        return {"epoch": int(epoch), "batch": int(batch), "seed": self.seed,
                "batch_size": self.batch_size, "shuffle": self.shuffle,
                "drop_last": self.drop_last, "num_samples": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration starts at the
        batch it names."""
        for key in ("seed", "batch_size", "shuffle", "drop_last", "num_samples"):
            mine = len(self.dataset) if key == "num_samples" else getattr(self, key)
            if key in state and state[key] != mine:
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}={state[key]!r} "
                                 f"but this loader has {key}={mine!r}; resuming would not "
                                 "reproduce the same batches")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch <= len(self):
            raise ValueError(f"DataLoader.load_state_dict: bad position epoch={epoch}, "
                             f"batch={batch} (the loader has {len(self)} batches)")
        if batch == len(self):
            epoch, batch = epoch + 1, 0
        self._next_epoch, self._resume_batch = epoch, batch
        self._epoch, self._served = None, 0
        self._iteration += 1

    # --- the order of an epoch ---
    def epoch_order(self, epoch: int) -> numpy.ndarray:
        """The sample indices of epoch ``epoch`` in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(n, dtype=numpy.int64)
        return numpy.random.default_rng([self.seed, int(epoch)]).permutation(n).astype(numpy.int64)

    def batch_generator(self, epoch: int, batch: int) -> numpy.random.Generator:
        """The generator handed to ``transform`` for batch ``batch`` of epoch ``epoch``."""
        return numpy.random.default_rng([self.seed, int(epoch), int(batch), _AUGMENTATION_SALT])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch, start = self._next_epoch, self._resume_batch
        self._next_epoch, self._resume_batch = epoch + 1, 0
        self._epoch, self._served = epoch, start
        self._iteration += 1
        order = self.epoch_order(epoch)
        device = self.device if self.device is not None else backend.default_device()
        return self._serve(epoch, start, order, device, self._iteration)

    def peek(self) -> tuple[Tensor, Tensor]:
        """The first batch of the epoch the next iteration serves, without moving the loader (a
        dry run: ``fit`` uses it to create the parameters of lazy modules)."""
        epoch = self._next_epoch
        device = self.device if self.device is not None else backend.default_device()
        return next(self._serve(epoch, 0, self.epoch_order(epoch), device, iteration=None))

    def _serve(self, epoch, start, order, device, iteration):
        for b in range(start, len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            images, labels = get_batch(self.dataset, indices)
            if self.transform is not None:
                images = self.transform(images, self.batch_generator(epoch, b))
            images = numpy.ascontiguousarray(images, dtype=self.dtype)
            labels = numpy.ascontiguousarray(labels, dtype=numpy.int64)
            if self._iteration == iteration:   # a newer `iter()` takes over the bookkeeping
                self._served = b + 1
            yield (Tensor(backend.to_device(images, device)),
                   Tensor(backend.to_device(labels, device)))

    def __repr__(self):
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, "
                f"device={self.device or 'default'})")

