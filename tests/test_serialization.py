"""Checkpoints: mr.save / mr.load round trips across devices, the .npz format without pickle,
atomic writes, and clear errors for files that are not minires checkpoints."""
import json
import math
import os
import zipfile

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import nn, optim
from minires.serialization import CheckpointError

from .conftest import to_numpy


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def _step(model, opt, device, seed=0):
    rng = np.random.default_rng(seed)
    x = mr.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32), device=device)
    y = mr.tensor(rng.integers(0, 3, 4), device=device)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(to_numpy(a[k]), to_numpy(b[k]), err_msg=k)


def test_model_state_round_trip_cpu_to_device(tmp_path, device):
    model = _net()
    _step(model, optim.SGD(model.parameters(), lr=0.1), "cpu")     # non-trivial BN buffers
    path = tmp_path / "model.npz"
    mr.save(model.state_dict(), path)
    loaded = mr.load(path, map_location=device)
    assert all(isinstance(v, mr.Tensor) and v.device == mr.device(device)
               for v in loaded.values())
    assert loaded["1.num_batches_tracked"].dtype == mr.int64
    _assert_same_state(model.state_dict(), loaded)
    target = _net().to(device)
    target.load_state_dict(loaded)
    _assert_same_state(model.state_dict(), target.state_dict())
    assert target[0].weight.device == mr.device(device)


def test_model_state_round_trip_device_to_cpu(tmp_path, device):
    model = _net().to(device)
    path = os.fspath(tmp_path / "model.npz")               # str paths as well as Path objects
    mr.save(model.state_dict(), path)
    on_cpu = mr.load(path, map_location="cpu")
    assert all(v.device == mr.device("cpu") for v in on_cpu.values())
    _assert_same_state(model.state_dict(), on_cpu)
    default = mr.load(path)                                # default: the host
    assert all(v.device == mr.device("cpu") for v in default.values())
    fresh = _net()
    fresh.load_state_dict(on_cpu)
    _assert_same_state(model.state_dict(), fresh.state_dict())


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9,
                                                       weight_decay=1e-4),
                                  lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99))],
                         ids=["sgd", "adam"])
def test_optimizer_and_training_checkpoint_round_trip(tmp_path, device, make):
    mr.manual_seed(0)
    model = _net().to(device)
    opt = make(model.parameters())
    for s in range(2):
        _step(model, opt, device, s)
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 2,
            "rng": {"seed": 0}}
    mr.save(ckpt, tmp_path / "ckpt.npz")
    _step(model, opt, device, 2)                           # the uninterrupted run goes on
    expected = [to_numpy(p) for p in model.parameters()]

    loaded = mr.load(tmp_path / "ckpt.npz", map_location=device)
    assert loaded["step"] == 2 and loaded["rng"] == {"seed": 0}
    assert sorted(loaded["optimizer"]["state"]) == [0, 1, 2, 3, 4, 5]   # int keys survive
    group = loaded["optimizer"]["param_groups"][0]
    assert group == {k: v for k, v in opt.state_dict()["param_groups"][0].items()}
    mr.manual_seed(99)
    restored = _net().to(device)
    restored.load_state_dict(loaded["model"])
    opt2 = make(restored.parameters())
    opt2.load_state_dict(loaded["optimizer"])
    _step(restored, opt2, device, 2)
    for a, b in zip(expected, restored.parameters()):
        np.testing.assert_array_equal(a, to_numpy(b))


def test_nested_python_values_round_trip(tmp_path):
    obj = {"int": 3, "neg": -7, "big": 2 ** 40, "float": 0.1, "inf": math.inf, "str": "héllo",
           "none": None, "true": True, "false": False, "list": [1, 2.5, "x", None, [3, [4]]],
           "tuple": (1, "a", (2.0, None)), "empty": {}, "empty_list": [], "empty_tuple": (),
           5: "int key", (1, 2): "tuple key", "__tensor__": "a key that looks like a marker",
           "nested": {"a": {"b": {"c": [{"d": (np.float32(1.5), np.int64(4))}]}}},
           "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
           "f64": np.array([1.0, 2.0]), "scalar": np.array(3.5, dtype=np.float32),
           "tensor": mr.tensor(np.array([[1.0, 2.0]], dtype=np.float32), requires_grad=True)}
    mr.save(obj, tmp_path / "nested.npz")
    got = mr.load(tmp_path / "nested.npz")
    for k in ("int", "neg", "big", "float", "inf", "str", "none", "true", "false", "list",
              "tuple", "empty", "empty_list", "empty_tuple", 5, (1, 2), "__tensor__"):
        assert got[k] == obj[k] and type(got[k]) is type(obj[k]), k
    assert got["true"] is True and got["none"] is None
    assert isinstance(got["tuple"][2], tuple) and isinstance(got["list"][4], list)
    d = got["nested"]["a"]["b"]["c"][0]["d"]
    assert d == (1.5, 4) and isinstance(d, tuple)
    assert isinstance(got["arr"], np.ndarray) and got["arr"].dtype == np.int32
    np.testing.assert_array_equal(got["arr"], obj["arr"])
    assert got["f64"].dtype == np.float64 and got["scalar"].shape == ()
    t = got["tensor"]
    assert isinstance(t, mr.Tensor) and t.dtype == mr.float32 and not t.requires_grad
    np.testing.assert_array_equal(to_numpy(t), [[1.0, 2.0]])


def test_file_is_a_plain_npz_without_pickle(tmp_path):
    model = _net()
    path = tmp_path / "model.npz"
    mr.save(model.state_dict(), path)
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as npz:
        assert "__minires__" in npz.files
        structure = json.loads(npz["__minires__"].tobytes().decode("utf-8"))
        assert structure["format"] == "minires-checkpoint" and structure["version"] == 1
        arrays = [npz[k] for k in npz.files if k != "__minires__"]
    assert len(arrays) == len(model.state_dict())
    assert all(a.dtype != object for a in arrays)
    assert sorted(a.size for a in arrays) == sorted(v.numel() for v in model.state_dict().values())


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "runs" / "a" / "ckpt.npz"
    mr.save({"x": 1}, path)
    assert mr.load(path) == {"x": 1}


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["oserror", "interrupt"])
def test_interrupted_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, error):
    path = tmp_path / "ckpt.npz"
    mr.save({"version": "old", "w": np.ones(3)}, path)
    old_bytes = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")        # some bytes reach the disk, then...
        raise error

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(type(error)):
        mr.save({"version": "new", "w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    assert mr.load(path)["version"] == "old"


def test_overwrite_replaces_atomically(tmp_path):
    path = tmp_path / "ckpt.npz"
    mr.save({"v": 1}, path)
    mr.save({"v": 2}, path)
    assert mr.load(path) == {"v": 2}
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_truncated_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    mr.save(_net().state_dict(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|corrupt|not a"):
            mr.load(path)
    assert issubclass(CheckpointError, ValueError)


def test_foreign_npz_raises_checkpoint_error(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="__minires__"):
        mr.load(path)


@pytest.mark.parametrize("meta", [b"[1, 2]", b'"text"', b"{not json",
                                  b'{"format": "other", "version": 1, "object": 1}',
                                  b'{"format": "minires-checkpoint", "version": 99, "object": 1}',
                                  b'{"format": "minires-checkpoint", "version": 1, '
                                  b'"object": {"__tensor__": "a7"}}',
                                  b'{"format": "minires-checkpoint", "version": 1, '
                                  b'"object": {"__what__": 1}}'],
                         ids=["list", "string", "badjson", "format", "newer", "missingarray",
                              "unknown"])
def test_damaged_structure_raises_checkpoint_error(tmp_path, meta):
    path = tmp_path / "odd.npz"
    np.savez(path, __minires__=np.frombuffer(meta, dtype=np.uint8))
    with pytest.raises(CheckpointError):
        mr.load(path)


def test_random_bytes_raise_checkpoint_error(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError):
        mr.load(path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError):
        mr.load(empty)


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, __minires__=np.frombuffer(b"{}", dtype=np.uint8),
             a0=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError):
        mr.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mr.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("bad", [lambda x: x, object(), {1, 2}, {"ok": [1, print]},
                                 {"w": np.array([{"a": 1}], dtype=object)}],
                         ids=["lambda", "object", "set", "nested-builtin", "object-array"])
def test_unsupported_objects_raise_type_error(tmp_path, bad):
    path = tmp_path / "bad.npz"
    with pytest.raises(TypeError, match="cannot store"):
        mr.save(bad, path)
    assert os.listdir(tmp_path) == []                      # nothing written, no temp file


@pytest.mark.parametrize("meta", [b"[" * 100000 + b"]" * 100000,
                                  b'{"format": "minires-checkpoint", "version": 1, "object": '
                                  + b"[" * 700 + b"]" * 700 + b"}"],
                         ids=["json", "structure"])
def test_deeply_nested_file_raises_checkpoint_error(tmp_path, meta):
    """Too deep for the JSON parser, or parsed but too deep to rebuild: no RecursionError."""
    path = tmp_path / "deep.npz"
    np.savez(path, __minires__=np.frombuffer(meta, dtype=np.uint8))
    with pytest.raises(CheckpointError, match="nested too deeply|not a"):
        mr.load(path)


def test_next_save_clears_what_a_killed_save_left(tmp_path):
    path = tmp_path / "ckpt.npz"
    mr.save({"v": 1}, path)
    stale = tmp_path / ".tmp-ckpt.npz.abc123.npz"            # as a `kill -9` mid-save leaves it
    stale.write_bytes(b"PK half")
    os.utime(stale, (0, 0))
    running = tmp_path / ".tmp-ckpt.npz.def456.npz"          # a save that may still be going on
    running.write_bytes(b"PK half")
    other = tmp_path / ".tmp-other.npz.abc123.npz"           # another file's: not this save's
    other.write_bytes(b"PK half")
    os.utime(other, (0, 0))
    mr.save({"v": 2}, path)
    assert sorted(os.listdir(tmp_path)) == sorted([".tmp-ckpt.npz.def456.npz",
                                                   ".tmp-other.npz.abc123.npz", "ckpt.npz"])
    assert mr.load(path) == {"v": 2}
