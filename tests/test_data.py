"""minires.data: the embedded dataset, CIFAR-10 loading (offline, on a miniature archive in the
official format), transforms and the DataLoader. The network is never touched."""
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

import minires as mr
from minires.data import (Compose, CorruptArchiveError, DataLoader, DatasetError, Normalize,
                          PerPixelMean, RandomCrop, RandomHorizontalFlip, Subset, TensorDataset,
                          cifar10, load_cifar10, load_embedded, make_shapes_dataset,
                          train_val_split)
from minires.data.embedded import CLASSES

from .conftest import to_numpy


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to reach the network fails the test (tests that need urlopen replace it)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"test_data tried to use the network: urlopen{args}")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ---------------------------------------------------------------------------------------------
# The embedded dataset
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes16():
    return make_shapes_dataset(num_train=2000, num_test=500, image_size=16, seed=0)


@pytest.mark.parametrize("size", [16, 32])
def test_embedded_shapes_dtypes_and_range(size):
    train, test = make_shapes_dataset(num_train=60, num_test=30, image_size=size, seed=3)
    for ds, n in ((train, 60), (test, 30)):
        assert ds.images.shape == (n, 3, size, size)
        assert ds.images.dtype == np.float32
        assert ds.labels.shape == (n,) and ds.labels.dtype == np.int64
        assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
        assert ds.images.std() > 0.1                      # not a blank image
        assert len(ds) == n
        image, label = ds[7]
        assert image.shape == (3, size, size) and isinstance(label, int)
        np.testing.assert_array_equal(image, ds.images[7])
        assert label == ds.labels[7]
        assert list(ds.classes) == list(CLASSES) and len(ds.classes) == 10


def test_embedded_any_size_and_fewer_classes():
    train, _ = make_shapes_dataset(num_train=24, num_test=0, image_size=24, num_classes=4)
    assert train.images.shape == (24, 3, 24, 24)
    assert set(train.labels.tolist()) == {0, 1, 2, 3} and train.classes == list(CLASSES[:4])
    with pytest.raises(ValueError):
        make_shapes_dataset(num_train=10, num_test=0, num_classes=11)


def test_embedded_deterministic():
    a_train, a_test = make_shapes_dataset(num_train=50, num_test=20, image_size=16, seed=5)
    b_train, b_test = make_shapes_dataset(num_train=50, num_test=20, image_size=16, seed=5)
    np.testing.assert_array_equal(a_train.images, b_train.images)
    np.testing.assert_array_equal(a_train.labels, b_train.labels)
    np.testing.assert_array_equal(a_test.images, b_test.images)
    c_train, c_test = make_shapes_dataset(num_train=50, num_test=20, image_size=16, seed=6)
    assert not np.array_equal(a_train.images, c_train.images)
    assert not np.array_equal(a_test.images, c_test.images)
    # train and test are different images (independent streams), not a copy
    assert not np.allclose(a_train.images[:20], a_test.images)
    # the training set does not depend on the size of the test set
    d_train, _ = make_shapes_dataset(num_train=50, num_test=7, image_size=16, seed=5)
    np.testing.assert_array_equal(a_train.images, d_train.images)
    # load_embedded is the same thing
    e_train, _ = load_embedded(image_size=16, num_train=50, num_test=20, seed=5)
    np.testing.assert_array_equal(a_train.images, e_train.images)


def test_embedded_class_balance(shapes16):
    train, test = shapes16
    assert np.bincount(train.labels, minlength=10).tolist() == [200] * 10
    assert np.bincount(test.labels, minlength=10).tolist() == [50] * 10
    odd, _ = make_shapes_dataset(num_train=57, num_test=0, image_size=16)
    counts = np.bincount(odd.labels, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 57
    # labels are shuffled, not in blocks
    assert (np.diff(train.labels[:100]) != 1).any()


def test_embedded_colour_carries_no_label(shapes16):
    """Every class has the same mean colour and the same mean image, up to sampling noise."""
    train, _ = shapes16
    overall_rgb = train.images.mean(axis=(0, 2, 3))
    overall_img = train.images.mean(axis=0)
    for c in range(10):
        imgs = train.images[train.labels == c]
        assert np.abs(imgs.mean(axis=(0, 2, 3)) - overall_rgb).max() < 0.04, c
        # the class-mean image is flat: no class has a brighter/darker centre
        assert np.abs(imgs.mean(axis=0) - overall_img).mean() < 0.05, c


def _standardise(train_x, test_x):
    """Pixels -> standardised features (float32) plus a bias column."""
    a = train_x.reshape(len(train_x), -1)
    b = test_x.reshape(len(test_x), -1)
    mu, sd = a.mean(0), a.std(0) + np.float32(1e-6)
    one = np.float32(1.0)
    return (np.hstack([(a - mu) / sd, np.full((len(a), 1), one)]),
            np.hstack([(b - mu) / sd, np.full((len(b), 1), one)]))


@pytest.mark.parametrize("image_size", [12, 16])
def test_embedded_least_squares_linear_classifier_near_chance(image_size):
    """The best linear classifier in closed form (ridge regression on one-hot targets) fits the
    training images but is at chance on the test images: the classes are not linearly separable
    on pixels (3000 images: at 12x12, the quick run's size, about 44% train and 11% test
    accuracy; at 16x16 about 60% and 10%)."""
    train, test = make_shapes_dataset(num_train=3000, num_test=2000, image_size=image_size,
                                      seed=0)
    a, b = _standardise(train.images, test.images)
    y = np.eye(10, dtype=np.float32)[train.labels]
    w = np.linalg.solve((a.T @ a).astype(np.float64) + 10.0 * np.eye(a.shape[1]),
                        (a.T @ y).astype(np.float64))
    train_acc = ((a @ w).argmax(1) == train.labels).mean()
    test_acc = ((b @ w).argmax(1) == test.labels).mean()
    assert train_acc > 0.3             # the model does fit (so the check below can fail)
    assert test_acc < 0.2, f"a linear model reaches {test_acc:.1%} test accuracy"


@pytest.mark.slow
def test_embedded_softmax_regression_near_chance():
    """Softmax regression, 300 full-batch Adam steps on 20k images at 16x16 (measured: about 25%
    train and 11-12% test accuracy; plain gradient descent at a large step size diverges here,
    because the pixels are strongly correlated)."""
    train, test = make_shapes_dataset(num_train=20000, num_test=2000, image_size=16, seed=0)
    a, b = _standardise(train.images, test.images)
    f = np.float32
    y = np.eye(10, dtype=f)[train.labels]
    w = np.zeros((a.shape[1], 10), f)
    m, v = np.zeros_like(w), np.zeros_like(w)
    losses = []
    for t in range(1, 301):
        z = a @ w
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        losses.append(-np.log(p[np.arange(len(a)), train.labels] + 1e-12).mean())
        g = a.T @ (p - y) / f(len(a)) + f(1e-4) * w
        m = f(0.9) * m + f(0.1) * g
        v = f(0.999) * v + f(0.001) * g * g
        w -= f(0.01) * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + f(1e-8))
    assert losses[-1] < losses[0] - 0.1          # the optimiser works
    assert ((a @ w).argmax(1) == train.labels).mean() > 0.18
    test_acc = ((b @ w).argmax(1) == test.labels).mean()
    assert test_acc < 0.2, f"softmax regression reaches {test_acc:.1%} test accuracy"


@pytest.mark.slow
def test_embedded_generation_at_cifar_scale():
    """50,000 images at 32x32 (the size of CIFAR-10's training set) come out whole and balanced.
    How long that takes is measured by `minires degradation`'s log, never asserted here."""
    train, _ = make_shapes_dataset(num_train=50000, num_test=0, image_size=32, seed=0)
    assert train.images.shape == (50000, 3, 32, 32)
    assert np.isfinite(train.images).all()
    assert np.bincount(train.labels, minlength=10).tolist() == [5000] * 10


# ---------------------------------------------------------------------------------------------
# CIFAR-10 on a miniature archive in the official format
# ---------------------------------------------------------------------------------------------

def _py2_pickle(obj) -> bytes:
    """A protocol-2 pickle as Python 2's cPickle wrote the official batches: str (bytes) with
    U/T opcodes, the array via numpy.core.multiarray._reconstruct + BUILD."""
    out = [b"\x80\x02"]

    def w(o):
        if isinstance(o, bool):
            out.append(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.append(b"K" + bytes([o]))
            elif 0 <= o < 65536:
                out.append(b"M" + struct.pack("<H", o))
            else:
                out.append(b"J" + struct.pack("<i", o))
        elif o is None:
            out.append(b"N")
        elif isinstance(o, bytes):
            out.append(b"U" + bytes([len(o)]) + o if len(o) < 256
                       else b"T" + struct.pack("<I", len(o)) + o)
        elif isinstance(o, tuple):
            out.append(b"(")
            for x in o:
                w(x)
            out.append(b"t")
        elif isinstance(o, list):
            out.append(b"](")
            for x in o:
                w(x)
            out.append(b"e")
        elif isinstance(o, dict):
            out.append(b"}(")
            for k, v in o.items():
                w(k)
                w(v)
            out.append(b"u")
        elif isinstance(o, np.ndarray):
            out.append(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            w((0,))
            w(b"b")
            out.append(b"\x87R(")
            w(1)
            w(tuple(o.shape))
            out.append(b"cnumpy\ndtype\n")
            w(o.dtype.str[1:].encode())
            w(0)
            w(1)
            out.append(b"\x87R")
            w((3, b"|", None, None, None, -1, -1, 0))
            out.append(b"b")
            w(False)
            w(np.ascontiguousarray(o).tobytes())
            out.append(b"tb")
        else:
            raise TypeError(type(o))
    w(obj)
    out.append(b".")
    return b"".join(out)


def _mini_batches(per_batch=4, n_test=3):
    rng = np.random.default_rng(0)
    files = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        files[name] = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                       b"filenames": [f"img_{k}.png".encode() for k in range(n)]}
    meta = {b"num_cases_per_batch": per_batch,
            b"label_names": [c.encode() for c in cifar10.CLASSES], b"num_vis": 3072}
    return files, meta


def _tar_bytes(entries) -> bytes:
    """entries: [(name, bytes or a TarInfo type, link target)] -> a .tar.gz archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload, kind in entries:
            info = tarfile.TarInfo(name)
            if kind is None:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.type = kind
                info.linkname = payload
                tar.addfile(info)
    return buf.getvalue()


def _official_entries(files, meta):
    entries = [("cifar-10-batches-py", "", tarfile.DIRTYPE)]
    entries += [(f"cifar-10-batches-py/{k}", _py2_pickle(v), None) for k, v in files.items()]
    entries.append(("cifar-10-batches-py/batches.meta", _py2_pickle(meta), None))
    entries.append(("cifar-10-batches-py/readme.html", b"<html></html>", None))
    return entries


@pytest.fixture
def mini_cifar(monkeypatch):
    files, meta = _mini_batches()
    archive = _tar_bytes(_official_entries(files, meta))
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    monkeypatch.setattr(cifar10, "CIFAR10_URL", "https://example.invalid/cifar-10-python.tar.gz")
    return files, archive


def _expected(files, names):
    data = np.concatenate([files[n][b"data"] for n in names])
    labels = np.concatenate([files[n][b"labels"] for n in names])
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def test_cifar_happy_path_from_archive(tmp_path, mini_cifar):
    files, archive = mini_cifar
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    train, test = load_cifar10(root=tmp_path, download=False)
    x_train, y_train = _expected(files, [f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = _expected(files, ["test_batch"])
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    np.testing.assert_allclose(train.images, x_train, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_allclose(test.images, x_test, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(test.labels, y_test)
    # the 3072 values of a row are the red plane, then green, then blue
    row = files["data_batch_1"][b"data"][0]
    np.testing.assert_allclose(train.images[0, 1, 0, :], row[1024:1056] / 255.0, atol=1e-7)
    assert train.classes == list(cifar10.CLASSES)
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == sorted(
        list(files) + ["batches.meta", "readme.html"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp leftovers
    # later calls read the extracted folder: the archive is no longer needed
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    train2, _ = load_cifar10(root=tmp_path, download=False)
    np.testing.assert_array_equal(train2.images, train.images)


def test_cifar_download_once_into_env_root(tmp_path, mini_cifar, monkeypatch):
    files, archive = mini_cifar
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(archive)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setenv("MINIRES_DATA", str(tmp_path / "cache"))
    train, test = load_cifar10()
    assert calls == ["https://example.invalid/cifar-10-python.tar.gz"]
    assert (tmp_path / "cache" / "cifar-10-python.tar.gz").read_bytes() == archive
    assert len(train) == 20 and len(test) == 3
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []
    load_cifar10()                                 # cached: no second download
    assert len(calls) == 1


def test_cifar_offline_error_says_what_to_do(tmp_path, mini_cifar, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as info:
        load_cifar10(root=tmp_path)
    assert isinstance(info.value, DatasetError)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-python.tar.gz") in message and "--data-dir" in message
    assert list(tmp_path.iterdir()) == []          # the partial download was removed


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(DatasetError, match="download=False"):
        load_cifar10(root=tmp_path, download=False)


def test_cifar_corrupt_download_is_not_kept(tmp_path, mini_cifar, monkeypatch):
    _, archive = mini_cifar
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: io.BytesIO(archive[:len(archive) // 2]))
    with pytest.raises(ValueError, match="md5") as info:
        load_cifar10(root=tmp_path)
    assert isinstance(info.value, CorruptArchiveError)
    assert list(tmp_path.iterdir()) == []


def test_cifar_corrupt_archive_on_disk(tmp_path, mini_cifar):
    _, archive = mini_cifar
    damaged = bytearray(archive)
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(bytes(damaged))
    with pytest.raises(CorruptArchiveError, match="delete it"):
        load_cifar10(root=tmp_path, download=False)
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cifar_truncated_archive_with_matching_checksum(tmp_path, mini_cifar, monkeypatch):
    """Past the checksum (e.g. a mirror with md5 verification off), a truncated tar is still a
    clear error and leaves no half-extracted folder."""
    _, archive = mini_cifar
    truncated = archive[:len(archive) * 2 // 3]
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(truncated).hexdigest())
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(truncated)
    with pytest.raises(CorruptArchiveError, match="damaged or truncated"):
        load_cifar10(root=tmp_path, download=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize("bad", [
    ("../escaped.txt", b"pwned", None),
    ("cifar-10-batches-py/../../escaped.txt", b"pwned", None),
    ("/tmp/minires-test-absolute-escape.txt", b"pwned", None),
    ("cifar-10-batches-py/link", "/etc/passwd", tarfile.SYMTYPE),
    ("cifar-10-batches-py/hard", "/etc/passwd", tarfile.LNKTYPE),
    ("cifar-10-batches-py/dev", "", tarfile.CHRTYPE),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "device"])
def test_cifar_unsafe_member_is_refused(tmp_path, mini_cifar, monkeypatch, bad):
    files, meta = _mini_batches()
    archive = _tar_bytes(_official_entries(files, meta) + [bad])
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    root = tmp_path / "root"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(archive)
    with pytest.raises(CorruptArchiveError, match="unsafe archive"):
        load_cifar10(root=root, download=False)
    assert not (tmp_path / "escaped.txt").exists()
    assert not os.path.exists("/tmp/minires-test-absolute-escape.txt")
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo minires-pickle-was-executed",))


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path, mini_cifar, monkeypatch):
    files, meta = _mini_batches()
    entries = _official_entries(files, meta)
    evil = pickle.dumps({b"data": _Boom(), b"labels": [0]}, protocol=2)
    entries = [(n, evil if n.endswith("data_batch_3") else p, k) for n, p, k in entries]
    archive = _tar_bytes(entries)
    monkeypatch.setattr(cifar10, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    called = []
    monkeypatch.setattr(os, "system", lambda cmd: called.append(cmd) or 0)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    with pytest.raises(CorruptArchiveError, match="refusing to load the global"):
        load_cifar10(root=tmp_path, download=False)
    assert called == []


def test_cifar_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIRES_DATA", str(tmp_path))
    assert cifar10.default_root() == tmp_path
    monkeypatch.delenv("MINIRES_DATA")
    assert cifar10.default_root() == cifar10.Path("~/.cache/minires").expanduser()


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------

def _unique_batch(n=16, c=3, h=8, w=8):
    """Images whose every value is unique and positive (so a crop's origin can be read back)."""
    return (np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w) + 1.0)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = _unique_batch()
    out = RandomCrop(8, padding=4)(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
    offsets = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if np.array_equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(matches) == 1, i
        offsets.add(matches[0])
    assert len(offsets) > 4                        # independent offsets per image
    assert (out == 0).any()                        # padding zeros appear ...
    assert (out[:, :, :, :] != 0).any(axis=(1, 2, 3)).all()   # ... but never a blank crop


def test_random_crop_deterministic_and_no_padding():
    x = _unique_batch()
    a = RandomCrop(8, padding=4)(x, np.random.default_rng(1))
    b = RandomCrop(8, padding=4)(x, np.random.default_rng(1))
    c = RandomCrop(8, padding=4)(x, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(RandomCrop(8, padding=0)(x, np.random.default_rng(0)), x)
    small = RandomCrop(6, padding=0)(x, np.random.default_rng(0))
    assert small.shape == (16, 3, 6, 6) and not (small == 0).any()
    with pytest.raises(ValueError):
        RandomCrop(20, padding=4)(x, np.random.default_rng(0))


def test_random_horizontal_flip():
    x = _unique_batch(n=64)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, np.random.default_rng(0)),
                                  x[:, :, :, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, np.random.default_rng(0)), x)
    out = RandomHorizontalFlip(0.5)(x, np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (flipped ^ kept).all()                  # every image is either flipped or untouched
    assert 10 < flipped.sum() < 54                 # about half are flipped
    assert x[0, 0, 0, 0] == 1.0                    # the input was not modified


def test_per_pixel_mean_is_zero_on_train(shapes16):
    train, test = shapes16
    mean = PerPixelMean().fit(train)
    assert mean.mean.shape == (3, 16, 16) and mean.mean.dtype == np.float32
    out = mean(train.images)
    assert out.dtype == np.float32
    assert np.abs(out.mean(axis=0)).max() < 1e-5
    assert np.abs(mean(test.images).mean(axis=0)).max() > 1e-4   # fitted on train, not on test
    # fitting on a dataset or on the array is the same; a Subset works too
    np.testing.assert_allclose(PerPixelMean().fit(train.images).mean, mean.mean, atol=1e-6)
    sub = Subset(train, np.arange(0, 2000, 2))
    np.testing.assert_allclose(PerPixelMean().fit(sub).mean, train.images[::2].mean(0), atol=1e-6)
    with pytest.raises(RuntimeError, match="fit"):
        PerPixelMean()(train.images)
    with pytest.raises(ValueError):
        mean(np.zeros((2, 3, 8, 8), np.float32))


def test_normalize_per_channel(shapes16):
    train, _ = shapes16
    norm = Normalize.fit(train)
    out = norm(train.images)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    fixed = Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(np.full((1, 3, 2, 2), 1.0, np.float32))
    np.testing.assert_allclose(fixed, 2.0)


def test_compose_applies_in_order_with_one_generator():
    x = _unique_batch()
    pipeline = Compose([PerPixelMean(np.ones((3, 8, 8), np.float32)), RandomCrop(8, padding=2),
                        RandomHorizontalFlip()])
    a = pipeline(x, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    b = RandomHorizontalFlip()(RandomCrop(8, padding=2)(x - 1.0, rng), rng)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------------------------

def _id_dataset(n=103, size=4):
    """Sample i has label i % 10 and an image filled with the value i (so it can be identified)."""
    images = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None],
                             (n, 3, size, size)).copy()
    return TensorDataset(images, np.arange(n) % 10)


def _ids(images):
    return to_numpy(images)[:, 0, 0, 0].astype(int).tolist()


def test_loader_batch_count_and_last_batch():
    ds = _id_dataset(103)
    loader = DataLoader(ds, batch_size=10)
    assert len(loader) == 11
    sizes = [len(_ids(x)) for x, _ in loader]
    assert sizes == [10] * 10 + [3]
    dropping = DataLoader(ds, batch_size=10, drop_last=True)
    assert len(dropping) == 10
    assert [len(_ids(x)) for x, _ in dropping] == [10] * 10
    assert len(DataLoader(ds, batch_size=103, drop_last=True)) == 1
    with pytest.raises(ValueError):
        DataLoader(ds, batch_size=200, drop_last=True)


def test_loader_without_shuffle_is_in_order():
    ds = _id_dataset(25)
    ids = sum((_ids(x) for x, _ in DataLoader(ds, batch_size=8)), [])
    assert ids == list(range(25))


def test_loader_every_sample_once_per_epoch_and_labels_match():
    ds = _id_dataset(103)
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=4)
    for _ in range(2):
        seen = []
        for x, y in loader:
            ids = _ids(x)
            assert to_numpy(y).tolist() == [i % 10 for i in ids]
            seen += ids
        assert sorted(seen) == list(range(103))
        assert seen != list(range(103))


def test_loader_shuffle_determinism():
    ds = _id_dataset(60)

    def epochs(seed, k=2):
        loader = DataLoader(ds, batch_size=7, shuffle=True, seed=seed)
        return [sum((_ids(x) for x, _ in loader), []) for _ in range(k)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert a == b                                  # same seed, same epochs
    assert a[0] != a[1]                            # a new order every epoch
    assert a[0] != c[0]                            # another seed, another order
    loader = DataLoader(ds, batch_size=7, shuffle=True, seed=0)
    loader.set_epoch(1)
    assert sum((_ids(x) for x, _ in loader), []) == a[1]
    assert loader.epoch_order(1).tolist() == a[1]
    # the global minires generator does not influence the order
    mr.manual_seed(123)
    assert epochs(0) == a


def test_loader_tensors_on_device(device):
    train, _ = make_shapes_dataset(num_train=20, num_test=0, image_size=16)
    loader = DataLoader(train, batch_size=8, device=device)
    x, y = next(iter(loader))
    assert isinstance(x, mr.Tensor) and isinstance(y, mr.Tensor)
    assert x.device == mr.device(device) and y.device == mr.device(device)
    assert x.dtype == mr.float32 and y.dtype == mr.int64
    assert x.shape == (8, 3, 16, 16) and y.shape == (8,)
    np.testing.assert_array_equal(x.numpy(), train.images[:8])
    np.testing.assert_array_equal(y.numpy(), train.labels[:8])
    double = DataLoader(train, batch_size=8, device=device, dtype=mr.float64)
    assert next(iter(double))[0].dtype == mr.float64


def test_loader_default_device_follows_env(monkeypatch):
    monkeypatch.setenv("MINIRES_DEVICE", "strict")
    x, _ = next(iter(DataLoader(_id_dataset(10), batch_size=4)))
    assert x.device == mr.device("strict")


def _augmenting_loader(ds):
    return DataLoader(ds, batch_size=6, shuffle=True, seed=9,
                      transform=Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()]))


def test_loader_resume_mid_epoch_reproduces_batches_and_augmentation():
    ds = _id_dataset(40)
    ds.images[:] += np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) / 100.0   # asymmetric
    reference = []
    loader = _augmenting_loader(ds)
    for _ in range(2):
        reference += [x.numpy() for x, _ in loader]
    assert len(reference) == 14

    first = _augmenting_loader(ds)
    got = []
    for b, (x, _) in enumerate(first):
        got.append(x.numpy())
        if b == 3:
            break
    state = first.state_dict()
    assert state["epoch"] == 0 and state["batch"] == 4
    resumed = _augmenting_loader(ds)
    resumed.load_state_dict(state)
    got += [x.numpy() for x, _ in resumed]          # the rest of epoch 0
    got += [x.numpy() for x, _ in resumed]          # epoch 1
    assert len(got) == 14
    for a, b in zip(reference, got):
        np.testing.assert_array_equal(a, b)
    assert resumed.state_dict()["epoch"] == 2 and resumed.state_dict()["batch"] == 0
    # the augmentation really changes the batches (so the comparison above could fail)
    plain = DataLoader(ds, batch_size=6, shuffle=True, seed=9)
    first_plain = next(iter(plain))[0].numpy()
    assert _ids(first_plain) == [int(round(v)) for v in reference[0][:, 0, 1, 1]]  # same samples
    assert not np.array_equal(first_plain, reference[0])


def test_loader_state_at_epoch_boundary_and_mismatch():
    ds = _id_dataset(30)
    loader = DataLoader(ds, batch_size=10, shuffle=True, seed=2)
    assert loader.state_dict()["epoch"] == 0 and loader.state_dict()["batch"] == 0
    list(loader)
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (1, 0)
    other = DataLoader(ds, batch_size=10, shuffle=True, seed=3)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(loader.state_dict())
    # a fresh `for` after a `break` starts the next epoch from its first batch (as in PyTorch)
    it = iter(loader)
    next(it)
    assert loader.state_dict()["batch"] == 1
    assert len(list(loader)) == 3


def test_train_val_split():
    ds = _id_dataset(1000)
    train, val = train_val_split(ds, 0.1, seed=0)
    assert len(train) == 900 and len(val) == 100
    t_ids = _ids(train.images)
    v_ids = _ids(val.images)
    assert sorted(t_ids + v_ids) == list(range(1000))
    train2, val2 = train_val_split(ds, 0.1, seed=0)
    np.testing.assert_array_equal(val.indices, val2.indices)
    _, val3 = train_val_split(ds, 0.1, seed=1)
    assert not np.array_equal(val.indices, val3.indices)
    assert len(train_val_split(ds, 250)[1]) == 250
    np.testing.assert_array_equal(val.labels, ds.labels[val.indices])
    image, label = val[0]
    assert int(image[0, 0, 0]) == val.indices[0] and label == val.indices[0] % 10
    # a DataLoader serves a Subset
    seen = sum((_ids(x) for x, _ in DataLoader(val, batch_size=32, shuffle=True)), [])
    assert sorted(seen) == sorted(v_ids)
    with pytest.raises(ValueError):
        train_val_split(ds, 1.5)


def test_loader_serves_a_plain_sequence_dataset():
    class Plain:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, np.float64), i

    x, y = next(iter(DataLoader(Plain(), batch_size=5)))
    assert x.dtype == mr.float32 and x.shape == (5, 1, 2, 2)
    assert y.numpy().tolist() == [0, 1, 2, 3, 4]
