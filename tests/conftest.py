"""Shared fixtures: every test that takes ``device`` runs once per device in
MINIRES_TEST_DEVICES (default "cpu,strict", plus "cuda" where a GPU is usable)."""
import os

import numpy as np
import pytest

import minires as mr


def _test_devices():
    names = os.environ.get("MINIRES_TEST_DEVICES", "").strip()
    if names:
        return [n.strip() for n in names.split(",") if n.strip()]
    devices = ["cpu", "strict"]
    if mr.cuda.is_available():
        devices.append("cuda")
    return devices


TEST_DEVICES = _test_devices()


@pytest.fixture(params=TEST_DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    mr.manual_seed(0)
    np.random.seed(0)
    yield


def to_numpy(t):
    """Host copy of a tensor (tests compare on the host)."""
    return t.numpy() if isinstance(t, mr.Tensor) else np.asarray(t)


try:  # PyTorch is an optional oracle only
    import torch  # noqa: F401
    HAVE_TORCH = True
except Exception:  # pragma: no cover - depends on the machine
    HAVE_TORCH = False

requires_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch (the optional oracle) is "
                                    "not installed")
