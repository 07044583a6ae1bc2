"""The random state: one NumPy generator on the host.

Random values (parameter initialisation, ``randn``, dropout masks, data shuffling) are drawn on
the host from this generator and then moved to the tensor's device, so one seed gives the same
model on every device (CuPy's generator also lacks some of NumPy's methods).
"""
from __future__ import annotations

import numpy

_generator = numpy.random.default_rng(0)
_seed = 0


def manual_seed(seed: int) -> numpy.random.Generator:
    """Seed minires' random generator (like ``torch.manual_seed``)."""
    global _generator, _seed
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _seed = int(seed)
    _generator = numpy.random.default_rng(_seed)
    return _generator


def host_generator() -> numpy.random.Generator:
    """The generator used for every random draw in minires."""
    return _generator


def get_rng_state() -> dict:
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    _generator.bit_generator.state = state


def initial_seed() -> int:
    return _seed
