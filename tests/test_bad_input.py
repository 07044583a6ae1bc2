"""Bad calls raise a clear ValueError/TypeError/RuntimeError that names the op and the shapes,
instead of a broadcasting accident or an IndexError deep in a kernel."""
import re

import numpy as np
import pytest

import minires as mr


def t(*shape, device="cpu", dtype=mr.float32, requires_grad=False):
    return mr.zeros(*shape, device=device, dtype=dtype, requires_grad=requires_grad)


def shape_re(*shapes):
    """A regex that finds the op's shapes in order, e.g. '\\(2, 3\\).*\\(4, 5\\)'."""
    return ".*".join(re.escape(str(tuple(s))) for s in shapes)


# --- rank ---

@pytest.mark.parametrize("op, call", [
    ("conv2d", lambda x: mr.ops.conv2d(x, t(2, 3, 3, 3))),
    ("max_pool2d", lambda x: mr.ops.max_pool2d(x, 2)),
    ("avg_pool2d", lambda x: mr.ops.avg_pool2d(x, 2)),
    ("adaptive_avg_pool2d", lambda x: mr.ops.adaptive_avg_pool2d(x, 1)),
    ("batch_norm", lambda x: mr.ops.batch_norm(x, t(3), t(3), None, None, True)),
    ("zero_pad_shortcut", lambda x: mr.ops.zero_pad_shortcut(x, 6, 2)),
])
@pytest.mark.parametrize("shape", [(3, 5, 5), (2, 3, 5, 5, 1), (3,)])
def test_wrong_rank(op, call, shape):
    if op == "batch_norm" and len(shape) == 1:
        shape = (3, 5, 5)
    with pytest.raises(ValueError, match=f"{op}.*{shape_re(shape)}"):
        call(t(*shape))


def test_missing_batch_dimension_hint(device):
    with pytest.raises(ValueError, match=r"conv2d.*\(3, 5, 5\).*unsqueeze\(0\)"):
        mr.ops.conv2d(t(3, 5, 5, device=device), t(2, 3, 3, 3, device=device))


def test_conv2d_weight_rank_and_bias_shape(device):
    with pytest.raises(ValueError, match=r"conv2d.*weight.*\(3, 3, 3\)"):
        mr.ops.conv2d(t(1, 3, 5, 5, device=device), t(3, 3, 3, device=device))
    with pytest.raises(ValueError, match=r"conv2d.*bias.*\(3,\).*\(2,\)"):
        mr.ops.conv2d(t(1, 3, 5, 5, device=device), t(2, 3, 3, 3, device=device),
                      t(3, device=device))


# --- channels, kernel sizes ---

def test_conv2d_channel_mismatch(device):
    with pytest.raises(ValueError, match=r"conv2d.*3 channels.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        mr.ops.conv2d(t(2, 3, 5, 5, device=device), t(4, 2, 3, 3, device=device))


@pytest.mark.parametrize("x_shape, w_shape, padding, dilation", [
    ((1, 1, 4, 4), (1, 1, 5, 5), 0, 1), ((1, 1, 4, 4), (1, 1, 7, 3), 1, 1),
    ((1, 1, 4, 6), (1, 1, 3, 3), 0, 2), ((1, 1, 8, 3), (1, 1, 2, 4), 0, 1)])
def test_conv2d_kernel_larger_than_padded_input(device, x_shape, w_shape, padding, dilation):
    with pytest.raises(ValueError, match=f"conv2d.*larger than the padded input.*"
                                         f"{shape_re(x_shape)}"):
        mr.ops.conv2d(t(*x_shape, device=device), t(*w_shape, device=device),
                      padding=padding, dilation=dilation)


def test_conv2d_bad_stride_padding(device):
    x, w = t(1, 1, 5, 5, device=device), t(1, 1, 3, 3, device=device)
    with pytest.raises(ValueError, match=r"conv2d.*stride=0"):
        mr.ops.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"conv2d.*padding=-1"):
        mr.ops.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"conv2d.*stride.*\(1, 2, 3\)"):
        mr.ops.conv2d(x, w, stride=(1, 2, 3))


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_kernel_larger_than_padded_input(device, op):
    with pytest.raises(ValueError, match=rf"{op}.*\(5, 5\).*larger.*\(3, 3\)"):
        getattr(mr.ops, op)(t(1, 1, 3, 3, device=device), 5, 1, 0)
    with pytest.raises(ValueError, match=rf"{op}.*padding \(2, 2\).*half.*\(3, 3\)"):
        getattr(mr.ops, op)(t(1, 1, 6, 6, device=device), 3, 1, 2)


def test_adaptive_pool_bad_output_size(device):
    with pytest.raises(ValueError, match="adaptive_avg_pool2d.*>= 1"):
        mr.ops.adaptive_avg_pool2d(t(1, 1, 4, 4, device=device), 0)


# --- batch norm ---

def test_batch_norm_buffer_shape_mismatch(device):
    with pytest.raises(ValueError, match=r"batch_norm.*running_mean.*\(4,\).*\(2, 3, 5, 5\).*3 "
                                         r"channels"):
        mr.ops.batch_norm(t(2, 3, 5, 5, device=device), t(4, device=device), t(3, device=device),
                          None, None, True)
    with pytest.raises(ValueError, match=r"batch_norm.*weight.*\(2,\).*\(4, 3\)"):
        mr.ops.batch_norm(t(4, 3, device=device), t(3, device=device), t(3, device=device),
                          t(2, device=device), None, True)


def test_batch_norm_one_value_per_channel_in_training(device):
    with pytest.raises(ValueError, match=r"batch_norm.*more than 1 value.*\(1, 3\)"):
        mr.ops.batch_norm(t(1, 3, device=device), None, None, None, None, True)
    with pytest.raises(ValueError, match=r"batch_norm.*\(1, 3, 1, 1\)"):
        mr.ops.batch_norm(t(1, 3, 1, 1, device=device), None, None, None, None, True)
    # evaluation with one sample is fine
    y = mr.ops.batch_norm(t(1, 3, device=device), t(3, device=device), t(3, device=device) + 1,
                          None, None, False)
    assert y.shape == (1, 3)


def test_batch_norm_eval_needs_running_stats(device):
    with pytest.raises(ValueError, match="batch_norm.*running_mean and running_var"):
        mr.ops.batch_norm(t(4, 3, device=device), None, None, None, None, False)


# --- cross entropy targets ---

def test_cross_entropy_non_integer_targets(device):
    logits = t(4, 3, device=device)
    with pytest.raises(TypeError, match=r"cross_entropy.*integer.*float32"):
        mr.ops.cross_entropy(logits, mr.tensor([0.0, 1.0, 2.0, 1.0], device=device))
    with pytest.raises(TypeError, match=r"cross_entropy.*integer.*float32"):
        mr.ops.cross_entropy(logits, t(4, 3, device=device))              # one-hot
    with pytest.raises(TypeError, match=r"cross_entropy.*Tensor.*list"):
        mr.ops.cross_entropy(logits, [0, 1, 2, 1])


@pytest.mark.parametrize("target", [[0, 1, 3, 1], [0, -1, 2, 1]])
def test_cross_entropy_targets_out_of_range(device, target):
    with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 2\].*3 classes"):
        mr.ops.cross_entropy(t(4, 3, device=device), mr.tensor(target, device=device))


@pytest.mark.parametrize("target_shape", [(4, 1), (3,), (1, 4)])
def test_cross_entropy_target_shape_mismatch(device, target_shape):
    target = mr.zeros(*target_shape, dtype=mr.int64, device=device)
    with pytest.raises(ValueError, match=f"cross_entropy.*{shape_re(target_shape, (4, 3))}"):
        mr.ops.cross_entropy(t(4, 3, device=device), target)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_cross_entropy_logits_rank(device, shape):
    with pytest.raises(ValueError, match=f"cross_entropy.*{shape_re(shape)}"):
        mr.ops.cross_entropy(t(*shape, device=device), mr.tensor([0, 1], device=device))


def test_cross_entropy_bad_reduction(device):
    with pytest.raises(ValueError, match="cross_entropy.*'avg'"):
        mr.ops.cross_entropy(t(2, 3, device=device), mr.tensor([0, 1], device=device), "avg")


# --- devices, backward ---

@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a @ b, lambda a, b: mr.cat([a, b]),
    lambda a, b: mr.ops.linear(a, b), lambda a, b: mr.where(a > 0, a, b)],
    ids=["add", "matmul", "cat", "linear", "where"])
def test_mixing_devices(op):
    a, b = t(3, 3), t(3, 3, device="strict")
    with pytest.raises(RuntimeError, match=r"cpu.*strict|strict.*cpu"):
        op(a, b)


def test_mixing_devices_in_conv2d():
    with pytest.raises(RuntimeError, match=r"Conv2d.*cpu.*strict"):
        mr.ops.conv2d(t(1, 2, 5, 5), t(3, 2, 3, 3, device="strict"))


def test_backward_on_non_scalar_without_gradient(device):
    y = t(2, 3, device=device, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"backward.*scalar.*\(2, 3\)"):
        y.backward()


def test_backward_on_tensor_without_grad(device):
    with pytest.raises(RuntimeError, match="backward.*does not require grad"):
        (t(2, device=device) * 2).sum().backward()


# --- linear, matmul, shapes ---

def test_linear_feature_mismatch(device):
    with pytest.raises(ValueError, match=r"linear.*\(4, 5\).*5 features.*\(3, 6\).*expects 6"):
        mr.ops.linear(t(4, 5, device=device), t(3, 6, device=device))
    with pytest.raises(ValueError, match=r"linear.*\(2, 8, 4, 4\).*flatten"):
        mr.ops.linear(t(2, 8, 4, 4, device=device), t(10, 8, device=device))
    with pytest.raises(ValueError, match=r"linear.*bias.*\(4,\).*\(3,\)"):
        mr.ops.linear(t(2, 6, device=device), t(3, 6, device=device), t(4, device=device))
    with pytest.raises(ValueError, match=r"linear.*weight.*\(6,\)"):
        mr.ops.linear(t(2, 6, device=device), t(6, device=device))


def test_matmul_shape_mismatch(device):
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        t(2, 3, device=device) @ t(4, 5, device=device)
    with pytest.raises(RuntimeError, match="matmul.*dimension"):
        mr.matmul(mr.tensor(2.0, device=device), t(2, device=device))


@pytest.mark.parametrize("source, target", [((2, 3), (4, 4)), ((2, 3), (-1, 4)),
                                            ((2, 3), (-1, -1)), ((6,), (0, -1))])
def test_reshape_to_impossible_shape(device, source, target):
    with pytest.raises(RuntimeError, match=f"reshape.*{shape_re(target, source)}"):
        t(*source, device=device).reshape(*target)


def test_cat_of_mismatched_shapes(device):
    with pytest.raises(RuntimeError, match=r"cat.*\(2, 3\).*\(2, 4\)"):
        mr.cat([t(2, 3, device=device), t(2, 4, device=device)], dim=0)
    with pytest.raises(RuntimeError, match=r"cat.*\(2, 3\).*\(2, 3, 1\)"):
        mr.cat([t(2, 3, device=device), t(2, 3, 1, device=device)])
    with pytest.raises(TypeError, match=r"cat.*float32.*float64"):
        mr.cat([t(2, 3, device=device), t(2, 3, device=device, dtype=mr.float64)])
    with pytest.raises(ValueError, match="cat.*non-empty"):
        mr.cat([])
    assert mr.cat([t(2, 3, device=device), t(2, 4, device=device)], dim=1).shape == (2, 7)


def test_permute_and_reduce_dims(device):
    with pytest.raises(RuntimeError, match=r"permute.*\(0, 0, 1\).*\(2, 3, 4\)"):
        t(2, 3, 4, device=device).permute(0, 0, 1)
    with pytest.raises(IndexError, match="sum.*dim 3.*3 dimensions"):
        t(2, 3, 4, device=device).sum(dim=3)
    with pytest.raises(TypeError, match="mean.*int64.*float"):
        mr.zeros(3, dtype=mr.int64, device=device).mean()


def test_pad_and_shortcut_arguments(device):
    with pytest.raises(ValueError, match=r"pad.*\(1, 2, 3\)"):
        mr.ops.pad(t(2, 3, device=device), (1, 2, 3))
    with pytest.raises(ValueError, match="pad.*negative"):
        mr.ops.pad(t(2, 3, device=device), (-1, 0))
    with pytest.raises(ValueError, match="zero_pad_shortcut.*out_channels=2.*4 channels"):
        mr.ops.zero_pad_shortcut(t(1, 4, 4, 4, device=device), 2, 2)


def test_gradient_dtype_mismatch_message(device):
    a = t(2, device=device, dtype=mr.float32, requires_grad=True)
    with pytest.raises(TypeError, match=r"add.*float32.*\(2,\).*float64.*\(2,\).*\.float\(\)"):
        a + t(2, device=device, dtype=mr.float64)


def test_host_float64_array_meeting_float32_tensor():
    with pytest.raises(TypeError, match=r"float64.*float32.*astype"):
        t(3) + np.ones(3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_of_an_empty_batch(device, reduction):
    """No samples: the mean is NaN (0/0), as in PyTorch; sum 0; none an empty vector. The
    gradient is an empty (0, K) array, not a ZeroDivisionError."""
    logits = mr.zeros(0, 4, device=device, requires_grad=True)
    target = mr.zeros(0, device=device, dtype=mr.int64)
    loss = mr.nn.functional.cross_entropy(logits, target, reduction=reduction)
    expected = {"mean": np.nan, "sum": 0.0}.get(reduction)
    if expected is None:
        assert loss.shape == (0,)
        return
    np.testing.assert_equal(loss.item(), expected)
    loss.backward()
    assert logits.grad.shape == (0, 4)
    try:
        import torch
    except ImportError:
        return
    ref = torch.nn.functional.cross_entropy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
                                            reduction=reduction)
    np.testing.assert_equal(loss.item(), ref.item())
