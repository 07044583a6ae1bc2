"""The gradient-flow numbers must be the gradients: checked against .grad and against each other."""
import numpy as np
import pytest

import minires as mr
from minires import diagnostics as D
from minires import models, nn
from minires.diagnostics import plots


def _batch(device, n=6, size=8, dtype=mr.float32):
    x = mr.randn(n, 3, size, size, device=device, dtype=dtype)
    y = mr.randint(0, 10, (n,), device=device)
    return x, y


def test_param_norms_equal_direct_grad_norms(device):
    model = models.cifar_resnet(8, width=4).to(device)
    x, y = _batch(device)
    flow = D.measure_gradient_flow(model, x, y)
    # the same batch again, by hand
    model.zero_grad()
    mr.nn.functional.cross_entropy(model(x), y).backward()
    direct = {name: float(np.linalg.norm(w.grad.numpy().astype(np.float64)))
              for name, w in D.weight_layers(model)}
    assert [p.name for p in flow.params] == list(direct)
    for p in flow.params:
        assert p.grad_norm == pytest.approx(direct[p.name], rel=1e-4)
        assert p.grad_norm > 0
    assert [p.depth for p in flow.params] == list(range(1, len(flow.params) + 1))


def test_shortcut_plus_branch_is_the_input_gradient(device):
    model = models.cifar_resnet(8, width=4, shortcut="A").double().to(device)
    x, y = _batch(device, dtype=mr.float64)
    for index in range(len(model.blocks)):
        g = D.path_gradients(model, x, y, index)
        assert g["shortcut"] is not None
        np.testing.assert_allclose(g["branch"] + g["shortcut"], g["total"], rtol=1e-12,
                                   atol=1e-15)
        # each path really is measured on its own: neither equals the total alone
        assert np.abs(g["branch"]).sum() > 0 and np.abs(g["shortcut"]).sum() > 0


def test_block_records_are_consistent(device):
    model = models.cifar_resnet(14, width=4).double().to(device)
    x, y = _batch(device, dtype=mr.float64)
    flow = D.measure_gradient_flow(model, x, y)
    assert len(flow.blocks) == len(model.blocks) == 6
    for prev, block in zip(flow.blocks, flow.blocks[1:]):
        # a block's input is the previous block's output
        assert block.in_grad_norm == pytest.approx(prev.out_grad_norm, rel=1e-10)
    for b in flow.blocks:
        # triangle inequality on the two paths
        assert b.in_grad_norm <= b.branch_grad_norm + b.shortcut_grad_norm + 1e-12
        assert b.response_std is not None and b.response_std > 0


def test_plain_blocks_have_no_shortcut(device):
    model = models.cifar_resnet(8, residual=False, width=4).to(device)
    x, y = _batch(device)
    flow = D.measure_gradient_flow(model, x, y)
    for b in flow.blocks:
        assert b.shortcut_grad_norm is None
        assert b.branch_grad_norm == pytest.approx(b.in_grad_norm, rel=1e-5)


def test_hooks_removed_and_model_unchanged(device):
    model = models.cifar_resnet(8, width=4).to(device)
    x, y = _batch(device)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.grad = mr.zeros(*p.shape, device=device) + 7.0
    model.eval()
    D.measure_gradient_flow(model, x, y)
    assert not model.training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    for p in model.parameters():
        assert np.all(p.grad.numpy() == 7.0)          # gradients restored
    after = model.state_dict()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v)
    # the output afterwards has no hook left in the graph
    out = model(x)
    assert out.shape == (6, 10)


def test_plain_explodes_residual_stays_flat():
    """The science in one assertion: at initialisation with BN and He init, the conv gradient
    norms of a deep plain net spread over orders of magnitude; a ResNet's stay within ~1 order."""
    x, y = mr.randn(32, 3, 16, 16), mr.randint(0, 10, (32,))
    mr.manual_seed(0)
    plain = D.measure_gradient_flow(models.plain56(width=8), x, y)
    mr.manual_seed(0)
    res = D.measure_gradient_flow(models.resnet56(width=8), x, y)
    assert plain.spread() > 100
    assert res.spread() < 50
    assert plain.spread() > 10 * res.spread()


def test_tracker_records_during_fit(device):
    from minires.data import TensorDataset
    from minires.train import fit
    rng = np.random.default_rng(0)
    data = TensorDataset(rng.standard_normal((64, 3, 8, 8)).astype(np.float32),
                         rng.integers(0, 10, 64))
    model = models.cifar_resnet(8, width=4)
    tracker = D.GradientTracker(every=2)
    fit(model, data, steps=6, batch_size=16, callbacks=[tracker], progress=False, device=device)
    assert tracker.steps == [2, 4, 6]
    assert len(tracker.names) == len(D.weight_layers(model))
    arr = tracker.as_array()
    assert arr.shape == (len(tracker.names), 3) and np.all(arr > 0)
    ratios = tracker.as_array("update_ratios")
    assert ratios.shape == arr.shape and np.all(ratios > 0) and np.all(ratios < 1)
    with pytest.raises(ValueError):
        D.GradientTracker(every=0)


def test_vanishing_gradients_sigmoid_vs_he():
    sig = D.vanishing_gradients(depth=12, activation="sigmoid", init="naive")
    he = D.vanishing_gradients(depth=12, activation="relu", init="he")
    bn = D.vanishing_gradients(depth=12, activation="sigmoid", init="naive", batch_norm=True)
    assert len(sig) == 12
    assert sig[0] < 1e-6 * sig[-1]            # naive sigmoid: the first layers get ~nothing
    assert D.decay_per_layer(sig) < 0.3
    assert he[0] > 1e-2 * he[-1]              # He + ReLU: within two orders of magnitude
    assert bn[0] > 1e-3 * bn[-1]
    with pytest.raises(ValueError):
        D.deep_mlp(activation="swish")
    with pytest.raises(ValueError):
        D.deep_mlp(init="zero")


def test_figures(tmp_path):
    x, y = mr.randn(8, 3, 8, 8), mr.randint(0, 10, (8,))
    flows = [D.measure_gradient_flow(models.get_model(n, width=4), x, y)
             for n in ("plain8", "resnet8")]
    paths = [plots.save_figure(plots.gradient_norms_figure(flows), str(tmp_path / "a.png")),
             plots.save_figure(plots.shortcut_branch_figure(flows[1]), str(tmp_path / "b.png")),
             plots.save_figure(plots.response_std_figure(flows), str(tmp_path / "c.png")),
             plots.save_figure(plots.vanishing_figure({"x": [1e-3, 1e-2, 1]}),
                               str(tmp_path / "d.png")),
             plots.save_figure(plots.training_curves_figure(
                 [{"model": "plain8", "steps": [1, 2], "train_error": [90, 80]},
                  {"model": "resnet8", "steps": [1, 2], "train_error": [90, 70]}]),
                 str(tmp_path / "e.png"))]
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_flow_summary_numbers():
    flow = D.GradientFlow(model="m", loss=1.0, params=[
        D.ParamFlow("blocks.0.branch.conv1.weight", 1, 4.0, 1.0, (4, 4, 3, 3)),
        D.ParamFlow("blocks.0.branch.conv2.weight", 2, 3.0, 1.0, (16, 4, 1, 1)),
        D.ParamFlow("blocks.1.branch.conv1.weight", 3, 1.0, 1.0, (4, 4, 3, 3)),
        D.ParamFlow("fc.weight", 4, 9.0, 1.0, (10, 4))])
    assert flow.conv_grad_norms() == [4.0, 1.0]
    assert flow.conv_grad_norms(kernel=1) == [3.0]
    assert flow.conv_grad_norms(kernel=None) == [4.0, 3.0, 1.0]
    assert flow.spread() == 4.0 and flow.first_to_last() == 4.0
    assert nn.Module  # the package imports cleanly
