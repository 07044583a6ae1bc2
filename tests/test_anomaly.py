"""`mr.autograd.detect_anomaly()` names the first operation, forward or backward, that made a NaN
or an infinity, with its shapes; off, nothing is checked."""
import numpy as np
import pytest

import minires as mr
from minires.errors import AnomalyError, MiniresError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the NaNs are the point


def test_forward_names_the_operation_and_its_shapes(device):
    x = mr.tensor(np.array([[1.0, -1.0, 2.0]], dtype=np.float32), device=device,
                  requires_grad=True)
    w = mr.ones(3, 2, device=device)
    with mr.autograd.detect_anomaly():
        y = (x @ w).relu()              # finite: passes
        with pytest.raises(AnomalyError, match=r"Log \(forward.*test_anomaly\.py:\d+\) produced "
                                               r"NaN.*shape \(1, 3\)"):
            mr.log(x)
    assert np.isfinite(y.numpy()).all()


def test_backward_names_the_operation_that_made_the_first_infinity(device):
    x = mr.tensor(np.array([0.0, 4.0], dtype=np.float32), device=device, requires_grad=True)
    with mr.autograd.detect_anomaly():
        loss = (mr.sqrt(x) * 3.0).sum()             # forward finite: sqrt(0) = 0
        with pytest.raises(AnomalyError, match=r"Sqrt \(backward, of the call at "
                                               r".*test_anomaly\.py:\d+\) returned infinity.*"
                                               r"input 0 of shape \(2,\)"):
            loss.backward()


def test_a_non_finite_parameter_is_reported_as_given_not_produced(device):
    w = mr.tensor(np.array([1.0, np.nan], dtype=np.float32), device=device, requires_grad=True)
    with mr.autograd.detect_anomaly():
        with pytest.raises(AnomalyError, match=r"Mul .*was given NaN in its input 0 of shape "
                                               r"\(2,\)"):
            w * 2.0


def test_off_by_default_and_restored_also_as_decorator(device):
    assert not mr.autograd.is_anomaly_enabled()
    x = mr.tensor(np.array([-1.0], dtype=np.float32), device=device)
    assert np.isnan(mr.log(x).numpy()).all()        # off: NaN flows, as in PyTorch

    @mr.autograd.detect_anomaly()
    def checked():
        assert mr.autograd.is_anomaly_enabled()
        return mr.log(x)
    with pytest.raises(AnomalyError):
        checked()
    assert not mr.autograd.is_anomaly_enabled()     # restored after the error
    assert issubclass(AnomalyError, MiniresError) and issubclass(AnomalyError, RuntimeError)


def test_finds_the_layer_in_a_model(device):
    """A Linear layer whose weight overflows float32 in the product: the error names Matmul
    (or the linear op) with the batch and weight shapes, at the model's forward."""
    mr.manual_seed(0)
    model = mr.nn.Sequential(mr.nn.Linear(4, 3), mr.nn.ReLU(), mr.nn.Linear(3, 2)).to(device)
    with mr.no_grad():
        model[0].weight.array[...] = 1.0       # positive activations reach the last layer
        model[0].bias.array[...] = 0.0
        model[2].weight.array[...] = 3e38
    x = mr.ones(5, 4, device=device)
    with mr.autograd.detect_anomaly():
        with pytest.raises(AnomalyError, match=r"\(forward.*\) produced infinity.*shape \(5, 2\)"
                                               r" from finite inputs of shapes \(5, 3\), \(2, 3\)"):
            model(x)
