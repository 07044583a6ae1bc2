"""The convolution worked a block of images at a time, on several threads
(minires.kernels.workers): the same numbers as the naive reference whatever the block size and
thread count; BLAS's own thread count restored after every split; errors and nesting; fork."""
import multiprocessing
import threading

import numpy as np
import pytest

import minires as mr
from minires.backend import strict_numpy, to_device, to_host
from minires.configuration import NUM_THREADS
from minires.devices.blas import get_blas_threads, set_blas_threads
from minires.kernels import conv, workers
from minires.kernels import reference as ref

CASES = [   # x shape, w shape, stride, padding, dilation
    ((5, 3, 9, 7), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((5, 3, 9, 7), (4, 3, 3, 3), (2, 2), (1, 1), (1, 1)),
    ((5, 3, 9, 8), (4, 3, 3, 2), (2, 3), (0, 1), (1, 1)),     # rows under no window
    ((5, 3, 9, 7), (4, 3, 1, 1), (1, 1), (0, 0), (1, 1)),     # the image is the patch matrix
    ((5, 3, 9, 7), (4, 3, 1, 1), (2, 2), (0, 0), (1, 1)),
    ((5, 3, 9, 7), (4, 3, 3, 3), (1, 1), (2, 2), (2, 2)),     # dilated
]


@pytest.fixture
def restore_threads():
    before, blas_before = NUM_THREADS.value, get_blas_threads()
    yield
    NUM_THREADS.value = before
    if blas_before is not None:
        set_blas_threads(blas_before)


def _check_against_reference(device, case, rng):
    xs, ws, stride, padding, dilation = case
    x, w, b = (to_device(a, device) for a in (rng.standard_normal(xs), rng.standard_normal(ws),
                                                rng.standard_normal(ws[0])))
    y, cache = conv.conv2d_forward(x, w, b, stride, padding, dilation)
    y_ref, cache_ref = ref.conv2d_forward(x, w, b, stride, padding, dilation)
    np.testing.assert_allclose(to_host(y), to_host(y_ref), rtol=1e-10, atol=1e-12)
    dy = to_device(rng.standard_normal(y_ref.shape), device)
    for name, got, want in zip("dx dw db".split(), conv.conv2d_backward(dy, cache),
                               ref.conv2d_backward(dy, cache_ref)):
        np.testing.assert_allclose(to_host(got), to_host(want), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("block_bytes", [1, 3000, 1 << 20])   # one image a block .. one block
@pytest.mark.parametrize("case", CASES)
def test_blocks_and_threads_give_the_reference_numbers(device, case, threads, block_bytes,
                                                      monkeypatch, restore_threads):
    monkeypatch.setattr(workers, "BLOCK_BYTES", block_bytes)
    workers.set_num_threads(threads)
    _check_against_reference(device, case, np.random.default_rng(threads))


def test_blocks_cover_the_range_in_order():
    blocks = list(workers.image_blocks(np, 3, 20, bytes_per_image=workers.BLOCK_BYTES // 4))
    assert blocks == [(3, 7), (7, 11), (11, 15), (15, 19), (19, 20)]
    assert list(workers.image_blocks(np, 0, 5, bytes_per_image=10 * workers.BLOCK_BYTES)) == \
        [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]                 # at least one image a block
    assert list(workers.image_blocks(strict_numpy, 0, 5, 10 * workers.BLOCK_BYTES)) == \
        [(0, 5)]                                                 # a device: the whole batch


def test_every_block_is_worked_once_and_results_come_back_in_block_order(restore_threads,
                                                                           monkeypatch):
    monkeypatch.setattr(workers, "BLOCK_BYTES", 1)            # one image a block
    workers.set_num_threads(3)
    seen = []
    got = workers.map_blocks(np, 10, 1, lambda lo, hi, scratch: seen.append(lo) or (lo, hi))
    assert got == [(i, i + 1) for i in range(10)] and sorted(seen) == list(range(10))
    assert workers.map_blocks(strict_numpy, 10, 1, lambda lo, hi, s: (lo, hi)) == [(0, 10)]


def test_a_thread_reuses_its_scratch_from_block_to_block(restore_threads, monkeypatch):
    monkeypatch.setattr(workers, "BLOCK_BYTES", 1)
    workers.set_num_threads(2)
    scratches = workers.map_blocks(np, 8, 1, lambda lo, hi, scratch: id(scratch))
    assert 1 <= len(set(scratches)) <= 2                       # one dict per thread


def test_blas_threads_are_restored_after_a_split(restore_threads):
    workers.set_num_threads(2)
    before = get_blas_threads()
    seen = workers.map_blocks(np, 4, workers.BLOCK_BYTES, lambda lo, hi, s: get_blas_threads())
    if before is not None:                      # OpenBLAS found: one thread inside, as before after
        assert seen == [1, 1, 1, 1]
        assert get_blas_threads() == before == 2


def test_an_error_in_a_block_reaches_the_caller_and_blas_is_restored(restore_threads):
    workers.set_num_threads(2)
    before = get_blas_threads()

    def block(lo, hi, scratch):
        if lo > 0:
            raise ValueError("block failed")
        return lo
    with pytest.raises(ValueError, match="block failed"):
        workers.map_blocks(np, 4, workers.BLOCK_BYTES, block)
    assert get_blas_threads() == before


def test_blocks_inside_a_block_run_in_that_thread(restore_threads):
    workers.set_num_threads(2)
    size = workers.BLOCK_BYTES
    inner = workers.map_blocks(np, 2, size, lambda lo, hi, s: workers.map_blocks(
        np, 2, size, lambda a, b, t: threading.current_thread().name))
    assert len(inner) == 2 and all(len(set(names)) == 1 for names in inner)   # no deadlock


def test_user_threads_running_convolutions_at_once(restore_threads):
    workers.set_num_threads(2)
    before = get_blas_threads()
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((6, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    want = ref.conv2d_forward(x, w, None, (1, 1), (1, 1))[0]
    errors = []

    def run():
        for _ in range(5):
            y = conv.conv2d_forward(x, w, None, (1, 1), (1, 1))[0]
            if not np.allclose(y, want, rtol=1e-10, atol=1e-12):
                errors.append("wrong result")
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and get_blas_threads() == before


def _conv_in_child(queue):
    x, w = np.ones((4, 2, 5, 5)), np.ones((3, 2, 3, 3))
    queue.put(float(conv.conv2d_forward(x, w, None, (1, 1), (0, 0))[0].sum()))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_makes_its_own_threads(restore_threads):
    workers.set_num_threads(2)
    conv.conv2d_forward(np.ones((4, 2, 5, 5)), np.ones((3, 2, 3, 3)), None)   # parent's pool
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_conv_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0 and queue.get(timeout=5) == 4 * 3 * 3 * 3 * 18.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_refuses_bad_counts_in_one_line(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: expected a whole number >= 1") as info:
        mr.set_num_threads(bad)
    assert "\n" not in str(info.value)


def test_set_and_get_num_threads_as_in_pytorch(restore_threads):
    mr.set_num_threads(1)
    assert mr.get_num_threads() == 1
    if get_blas_threads() is not None:
        assert get_blas_threads() == 1          # BLAS follows outside the kernels' splits
    mr.set_num_threads(2)
    assert mr.get_num_threads() == 2
    assert mr.config.num_threads == 2 and "num_threads           2" in mr.config.describe()


def test_by_default_the_kernels_use_as_many_threads_as_blas(restore_threads):
    NUM_THREADS.value = None
    blas = get_blas_threads()
    assert mr.get_num_threads() == (1 if blas is None else blas)
    assert "None (as many as BLAS may use)" in mr.config.describe()
    if blas is not None:
        set_blas_threads(1)                     # a limit set on BLAS elsewhere holds here too
        assert mr.get_num_threads() == 1


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("block_bytes", [1, 5000, 1 << 20])
@pytest.mark.parametrize("shape", [(6, 3, 5, 7), (9, 4)])
def test_batch_norm_in_blocks_gives_the_reference_numbers(device, shape, threads, block_bytes,
                                                         monkeypatch, restore_threads):
    from minires.kernels import norm
    monkeypatch.setattr(workers, "BLOCK_BYTES", block_bytes)
    workers.set_num_threads(threads)
    rng = np.random.default_rng(threads)
    c = shape[1]
    x, gamma, beta, dy = (to_device(a, device) for a in (
        rng.standard_normal(shape) * 3 + 1, rng.standard_normal(c), rng.standard_normal(c),
        rng.standard_normal(shape)))
    running_mean, running_var = to_device(np.zeros(c), device), to_device(np.ones(c), device)
    y, cache = norm.batch_norm_forward(x, running_mean, running_var, gamma, beta, True)
    y_ref, cache_ref = ref.batch_norm_forward(x, gamma, beta)
    np.testing.assert_allclose(to_host(y), to_host(y_ref), rtol=1e-10, atol=1e-12)
    mean_ref, var_ref = ref.batch_norm_update_running(np.zeros(c), np.ones(c), to_host(x))
    np.testing.assert_allclose(to_host(running_mean), mean_ref, rtol=1e-12)
    np.testing.assert_allclose(to_host(running_var), var_ref, rtol=1e-12)
    for name, got, want in zip("dx dgamma dbeta".split(), norm.batch_norm_backward(dy, cache),
                               ref.batch_norm_backward(dy, cache_ref)):
        np.testing.assert_allclose(to_host(got), to_host(want), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_results_do_not_depend_on_the_thread_count(restore_threads, monkeypatch):
    """Blocks' partial sums are added in block order: 1 and 3 threads give the same bits."""
    from minires.kernels import norm
    monkeypatch.setattr(workers, "BLOCK_BYTES", 4096)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((16, 8, 12, 12)).astype(np.float32)
    runs = []
    for threads in (1, 3):
        workers.set_num_threads(threads)
        y, cache = conv.conv2d_forward(x, w, None, (1, 1), (1, 1))
        dx, dw, _ = conv.conv2d_backward(dy, cache)
        z, bn_cache = norm.batch_norm_forward(y, None, None, None, None, True)
        dz = norm.batch_norm_backward(dy, bn_cache)[0]
        runs.append([np.array(a) for a in (y, dx, dw, z, dz)])
    for one, three in zip(*runs):
        assert np.array_equal(one, three)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("block_bytes", [1, 1 << 20])
@pytest.mark.parametrize("shape", [(7, 3, 4, 5), (5,)])
def test_relu_in_blocks_gives_the_reference_numbers(device, shape, threads, block_bytes,
                                                   monkeypatch, restore_threads):
    from minires.kernels import relu
    monkeypatch.setattr(workers, "BLOCK_BYTES", block_bytes)
    workers.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x, dy = (to_device(np.asarray(rng.standard_normal(shape)), device) for _ in range(2))
    y = relu.relu_forward(x)
    y_ref, cache_ref = ref.relu_forward(x)
    np.testing.assert_array_equal(to_host(y), to_host(y_ref))
    np.testing.assert_array_equal(to_host(relu.relu_backward(dy, y)),
                                  to_host(ref.relu_backward(dy, cache_ref)))


def test_relu_of_a_scalar_tensor(device):
    x = mr.tensor(-2.0, device=device, requires_grad=True)
    y = mr.relu(x)
    y.backward()
    assert y.item() == 0.0 and x.grad.item() == 0.0
    x = mr.tensor(3.0, device=device, requires_grad=True)
    mr.relu(x).backward()
    assert x.grad.item() == 1.0


def test_relu_keeps_the_channels_last_layout_of_its_input():
    from minires.kernels import array_pool, relu
    x = np.ascontiguousarray(np.random.default_rng(0).standard_normal((64, 8, 32, 32))
                             .transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y = relu.relu_forward(x)
    assert y.strides == x.strides and array_pool.POOL.in_use_bytes > 0
    dx = relu.relu_backward(np.ascontiguousarray(x), y)     # dy in the other layout
    assert dx.strides == y.strides


def test_col2im_makes_the_padded_gradient_or_adds_into_a_given_one():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 7))
    cols = ref.im2col(x, 3, 3, 2, 1)                          # (N*Ho*Wo, C*kh*kw), the course's
    dcols = rng.standard_normal(cols.shape)
    want = ref.col2im(dcols, x.shape, 3, 3, 2, 1)             # (N, C, H, W)
    dcol = dcols.reshape(2, 4, 4, 3, 3, 3).transpose(0, 1, 2, 4, 5, 3)   # (N, Ho, Wo, kh, kw, C)
    made = conv.col2im(dcol, (2, 9, 9, 3), (2, 2), (1, 1))
    np.testing.assert_allclose(made[:, 1:8, 1:8].transpose(0, 3, 1, 2), want, atol=1e-12)
    into = np.ones((2, 9, 9, 3))
    assert conv.col2im(dcol, None, (2, 2), (1, 1), out=into) is into
    np.testing.assert_allclose(into - 1, made, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("block_bytes", [1, 1 << 20])
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_in_blocks_gives_the_reference_numbers(device, kernel, stride, padding, threads,
                                                       block_bytes, monkeypatch, restore_threads):
    from minires.kernels import pool
    monkeypatch.setattr(workers, "BLOCK_BYTES", block_bytes)
    workers.set_num_threads(threads)
    rng = np.random.default_rng(0)
    shape = (5, 3, 9, 8)
    x = to_device(rng.permutation(int(np.prod(shape))).reshape(shape) * 0.37 - 5.0, device)
    y, cache = pool.max_pool2d_forward(x, (kernel, kernel), (stride, stride), (padding, padding))
    y_ref, cache_ref = ref.max_pool_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(to_host(y), to_host(y_ref))
    dy = to_device(rng.standard_normal(y_ref.shape), device)
    np.testing.assert_allclose(to_host(pool.max_pool2d_backward(dy, cache)),
                               to_host(ref.max_pool_backward(dy, cache_ref)), rtol=1e-12)
