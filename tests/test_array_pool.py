"""The caching array pool (minires.kernels.array_pool): blocks are reused, two live arrays never
share memory, and a network's results are bit-identical with and without it."""
import gc

import numpy as np
import pytest

import minires as mr
import minires.nn.functional as F
from minires import backend, models, optim
from minires.kernels import array_pool, conv
from minires.kernels.array_pool import ArrayPool

BIG = (512, 1024)          # 2 MiB of float32: above the pool's threshold


def address(a):
    return a.__array_interface__["data"][0]


def test_a_freed_block_is_reused():
    pool = ArrayPool()
    a = pool.empty(BIG, np.float32)
    where = address(a)
    del a
    gc.collect()
    b = pool.empty(BIG, np.float32)
    assert address(b) == where
    assert (pool.hits, pool.misses) == (1, 1)
    assert pool.in_use_bytes >= b.nbytes and pool.cached_bytes == 0


@pytest.mark.parametrize("make_view", [lambda a: a.reshape(-1), lambda a: a.T, lambda a: a[1:],
                                       lambda a: a.reshape(2, -1)[::2], lambda a: a[...]])
def test_a_block_seen_through_a_view_is_not_handed_out_again(make_view):
    pool = ArrayPool()
    a = pool.empty(BIG, np.float32)
    a.fill(1.0)
    view = make_view(a)
    del a
    gc.collect()
    b = pool.empty(BIG, np.float32)
    b.fill(2.0)
    assert not np.shares_memory(view, b)
    assert (view == 1.0).all()
    del view, b
    gc.collect()
    assert pool.in_use_bytes == 0


def test_live_arrays_never_share_memory():
    pool = ArrayPool()
    arrays = []
    for i in range(20):
        if i % 3 == 2:
            arrays.pop(0)                  # free some along the way
        arrays.append(pool.empty(BIG, np.float32))
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)
    assert pool.hits > 0


def test_small_arrays_and_a_disabled_pool_go_to_numpy():
    pool = ArrayPool()
    small = pool.empty((10, 10), np.float64)
    assert small.flags.owndata and pool.misses == 0
    pool.enabled = False
    big = pool.empty(BIG, np.float32)
    assert big.flags.owndata and pool.misses == 0


def test_empty_cache_drops_free_blocks():
    pool = ArrayPool()
    a = pool.empty(BIG, np.float32)
    del a
    gc.collect()
    assert pool.cached_bytes > 0
    pool.empty_cache()
    assert pool.cached_bytes == 0


def test_other_array_modules_are_not_pooled():
    from minires.strict_device import strict_numpy
    a = array_pool.empty(strict_numpy, BIG, np.float32)
    assert type(a).__name__ == "StrictArray"
    z = array_pool.zeros(strict_numpy, (3, 4), np.float32)
    assert type(z).__name__ == "StrictArray"


def _conv_run(x, w, b, stride, padding, dilation, dy):
    y, cache = conv.conv2d_forward(x, w, b, stride, padding, dilation)
    y = np.array(y)
    grads = conv.conv2d_backward(dy, cache)
    return [y] + [np.array(g) for g in grads]


@pytest.mark.parametrize("stride,padding,kernel", [((1, 1), (1, 1), 3), ((2, 2), (1, 1), 3),
                                                   ((2, 2), (0, 0), 1), ((1, 1), (0, 0), 1)])
def test_conv_is_bit_identical_with_and_without_the_pool(stride, padding, kernel):
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.standard_normal((8, 32, 16, 16)).astype(np.float32)
                             .transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    w = rng.standard_normal((16, 32, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    ho = conv.conv_output_size(16, kernel, stride[0], padding[0])
    dy = rng.standard_normal((8, 16, ho, ho)).astype(np.float32)
    saved = array_pool.POOL.enabled
    try:
        array_pool.POOL.enabled = False
        plain = _conv_run(x, w, b, stride, padding, (1, 1), dy)
        array_pool.POOL.enabled = True
        for _ in range(3):
            fast = _conv_run(x, w, b, stride, padding, (1, 1), dy)
            for p, f in zip(plain, fast):
                assert p.dtype == f.dtype and np.array_equal(p, f)
    finally:
        array_pool.POOL.enabled = saved


def _train_steps(steps=2):
    mr.manual_seed(0)
    model = models.get_model("resnet20")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = mr.randn(4, 3, 16, 16)
    y = mr.randint(0, 10, (4,))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.numpy().copy() for p in model.parameters()]


def test_a_training_loop_is_bit_identical_with_and_without_the_pool(monkeypatch):
    monkeypatch.setattr(array_pool.POOL, "min_bytes", 1024)   # pool this small net's arrays too
    monkeypatch.setattr(array_pool.POOL, "enabled", False)
    plain_losses, plain_params = _train_steps(3)
    monkeypatch.setattr(array_pool.POOL, "enabled", True)
    hits = array_pool.POOL.hits
    fast_losses, fast_params = _train_steps(3)
    assert array_pool.POOL.hits > hits
    assert plain_losses == fast_losses
    for p, f in zip(plain_params, fast_params):
        assert np.array_equal(p, f)


def test_a_retained_graph_backs_up_twice():
    w = mr.randn(4, 3, 3, 3, requires_grad=True)
    x = mr.randn(2, 3, 8, 8)
    out = F.conv2d(x, w, padding=1).sum()
    out.backward(retain_graph=True)
    first = w.grad.numpy().copy()
    out.backward()                                    # the patches are rebuilt from x again
    np.testing.assert_array_equal(w.grad.numpy(), 2 * first)


def test_a_larger_free_block_serves_a_smaller_request_up_to_twice_its_size():
    pool = ArrayPool()
    a = pool.empty((4, 1 << 20), np.uint8)            # 4 MiB
    where = address(a)
    del a
    gc.collect()
    small = pool.empty((1 << 20,), np.uint8)          # 1 MiB: would waste three quarters
    assert address(small) != where
    b = pool.empty((3, 1 << 20), np.uint8)            # 3 MiB: takes the 4 MiB block
    assert address(b) == where and pool.hits == 1
