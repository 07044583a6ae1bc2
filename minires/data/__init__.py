"""Datasets, transforms and the DataLoader (host-side NumPy; the loader moves batches to a device).

* :func:`make_shapes_dataset` / :func:`load_embedded`: the embedded, procedurally drawn
  10-class "shapes and textures" images (no download, any size, deterministic from a seed);
* :func:`load_cifar10`: CIFAR-10, downloaded once, checksummed, extracted safely, cached;
* :mod:`~minires.data.transforms`: per-pixel mean, per-channel normalisation, random crop with
  zero padding, random horizontal flip, :class:`Compose`;
* :class:`DataLoader`: ``(images, labels)`` minires Tensors on a device, reproducible shuffles,
  resumable mid-epoch; :class:`TensorDataset`, :class:`Subset`, :func:`train_val_split`.

This package builds on ``minires.backend``/``autograd``/``random`` only (never on ``nn``).
"""
from .cifar10 import CLASSES as CIFAR10_CLASSES  # noqa: F401
from .cifar10 import CorruptArchiveError, DatasetError, load_cifar10  # noqa: F401
from .embedded import CLASSES as SHAPES_CLASSES  # noqa: F401
from .embedded import ShapesDataset, load_embedded, make_shapes_dataset  # noqa: F401
from .loader import DataLoader, Subset, TensorDataset, get_batch, train_val_split  # noqa: F401
from .transforms import (Compose, Normalize, PerPixelMean, RandomCrop,  # noqa: F401
                         RandomHorizontalFlip, Transform)

__all__ = ["load_cifar10", "DatasetError", "CorruptArchiveError", "CIFAR10_CLASSES",
           "SHAPES_CLASSES", "ShapesDataset",
           "load_embedded", "make_shapes_dataset", "DataLoader", "Subset", "TensorDataset",
           "get_batch", "train_val_split", "Compose", "Normalize", "PerPixelMean", "RandomCrop",
           "RandomHorizontalFlip", "Transform"]
