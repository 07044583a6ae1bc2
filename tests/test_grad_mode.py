"""Grad mode and anomaly mode: per thread, re-entrant, safe as decorators (one context object
serves every call, recursive ones and other threads' included), restored after an exception."""
import threading

import pytest

import minires as mr

MODES = {
    "no_grad": (mr.no_grad, mr.is_grad_enabled, False, True),
    "enable_grad": (mr.enable_grad, mr.is_grad_enabled, True, False),
    "set_grad_enabled(False)": (lambda: mr.set_grad_enabled(False), mr.is_grad_enabled, False,
                                True),
    "detect_anomaly": (mr.autograd.detect_anomaly, mr.autograd.is_anomaly_enabled, True, False),
    "inference_mode": (mr.inference_mode, mr.is_grad_enabled, False, True),
    "inference_mode flag": (mr.inference_mode, mr.is_inference_mode_enabled, True, False),
}


def _outside(name):
    """A context where the mode has its `outside` value (enable_grad needs grad off around)."""
    return mr.no_grad() if name == "enable_grad" else mr.enable_grad()


@pytest.mark.parametrize("name", sorted(MODES))
def test_decorated_recursive_function_restores_the_mode(name):
    make, read, inside, outside = MODES[name]
    seen = []

    @make()
    def depth(n):
        seen.append(read())
        return 0 if n == 0 else 1 + depth(n - 1)

    with _outside(name):
        assert read() is outside
        assert depth(4) == 4
        assert read() is outside            # the recursive calls did not leave it switched
        assert depth(2) == 2
        assert read() is outside
    assert seen == [inside] * 8
    assert mr.is_grad_enabled() and not mr.autograd.is_anomaly_enabled()


@pytest.mark.parametrize("name", sorted(MODES))
def test_one_context_object_nested(name):
    make, read, inside, outside = MODES[name]
    with _outside(name):
        ctx = make()
        with ctx:
            with ctx:
                assert read() is inside
            assert read() is inside
        assert read() is outside


@pytest.mark.parametrize("name", sorted(MODES))
def test_exception_restores_the_mode(name):
    make, read, inside, outside = MODES[name]

    @make()
    def fails():
        assert read() is inside
        raise ValueError("boom")

    with _outside(name):
        with pytest.raises(ValueError):
            fails()
        assert read() is outside
        with pytest.raises(KeyError):
            with make():
                raise KeyError("x")
        assert read() is outside


@pytest.mark.parametrize("name", sorted(MODES))
def test_two_threads_share_a_decorated_function(name):
    make, read, inside, outside = MODES[name]
    barrier = threading.Barrier(2)
    results, errors = {}, []

    @make()
    def work(tag):
        barrier.wait(timeout=10)        # both threads inside at once
        results[tag] = read()
        barrier.wait(timeout=10)

    def run(tag):
        # thread "a" calls from the outside mode, thread "b" from the inside one: a context that
        # kept the mode it replaced on itself would hand one thread's mode to the other
        try:
            with _outside(name) if tag == "a" else make():
                work(tag)
                results[tag + " after"] = read()
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert results == {"a": inside, "b": inside, "a after": outside, "b after": inside}


def test_grad_mode_is_per_thread():
    seen = []
    with mr.no_grad():
        t = threading.Thread(target=lambda: seen.append(mr.is_grad_enabled()))
        t.start()
        t.join()
        assert not mr.is_grad_enabled()
    assert seen == [True]


def test_set_grad_enabled_as_a_plain_call_and_as_a_context():
    assert mr.is_grad_enabled()
    try:
        mr.set_grad_enabled(False)          # as torch.set_grad_enabled: switches at once
        assert not mr.is_grad_enabled()
        with mr.set_grad_enabled(True):
            assert mr.is_grad_enabled()
        assert not mr.is_grad_enabled()
    finally:
        mr.set_grad_enabled(True)
    assert mr.is_grad_enabled()


def test_no_grad_decorator_records_no_graph():
    w = mr.ones(2, requires_grad=True)

    @mr.no_grad()
    def f(x):
        return x * 2

    assert not f(w).requires_grad
    assert (w * 2).requires_grad


def test_inference_mode_false_keeps_the_graph():
    w = mr.ones(2, requires_grad=True)
    with mr.inference_mode():
        assert not (w * 2).requires_grad
        with mr.inference_mode(False):
            assert (w * 2).requires_grad and not mr.is_inference_mode_enabled()
    assert (w * 2).requires_grad and not mr.is_inference_mode_enabled()
