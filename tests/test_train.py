"""The training loop: the loss falls, evaluation, callbacks, checkpoints and exact resume."""
import math
import os

import numpy as np
import pytest

import minires as mr
from minires import models, optim
from minires.data import DataLoader, TensorDataset
from minires.train import History, evaluate, fit, paper_schedule, progress_enabled


def _easy_data(n=256, size=8, seed=0):
    """A separable toy problem: the class is the brightest of 4 quadrants."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32) * 0.3
    y = rng.integers(0, 4, n)
    h = size // 2
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        x[i, :, r * h:(r + 1) * h, col * h:(col + 1) * h] += 1.5
    return TensorDataset(x, y)


def test_loss_falls_on_a_tiny_problem(device):
    mr.manual_seed(0)
    model = models.cifar_resnet(8, width=4, num_classes=4)
    train, test = _easy_data(256), _easy_data(64, seed=1)
    h = fit(model, train, test, steps=40, batch_size=32, eval_every=10, progress=False,
            device=device, warmup_steps=5)
    assert isinstance(h, History)
    assert h.steps == [10, 20, 30, 40]
    assert h.train_loss[-1] < 0.7 * h.train_loss[0]
    assert h.test_error[-1] < 50.0
    assert all(0 <= e <= 100 for e in h.train_error + h.test_error)
    assert h.lr[-1] == pytest.approx(0.001)        # /10 at 50% and 75%
    assert h.seconds > 0 and not h.diverged
    loss, err = evaluate(model, test, batch_size=16)
    assert math.isfinite(loss) and 0 <= err <= 100


def test_callbacks_called(device):
    calls = []
    model = models.cifar_resnet(8, width=2, num_classes=4)
    fit(model, _easy_data(64), steps=6, batch_size=16, eval_every=3, progress=False,
        callbacks=[lambda step, m, metrics: calls.append((step, m is model, metrics["step"]))],
        device=device)
    assert calls == [(3, True, 3), (6, True, 6)]


def test_callback_hooks_run_in_order_every_step(device):
    """A Callback subclass gets on_after_backward (gradients present), on_after_step (weights
    changed) every step and the record hook every eval_every steps."""
    from minires.train import Callback

    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_after_backward(self, step, model):
            w = next(iter(model.parameters()))
            self.events.append(("backward", step, w.grad is not None))
            self.before = w.numpy().copy()

        def on_after_step(self, step, model):
            w = next(iter(model.parameters()))
            self.events.append(("step", step, not np.array_equal(w.numpy(), self.before)))

        def __call__(self, step, model, metrics):
            self.events.append(("record", step, metrics["step"] == step))

    recorder = Recorder()
    fit(models.cifar_resnet(8, width=2, num_classes=4), _easy_data(64), steps=2,
        batch_size=16, eval_every=2, progress=False, callbacks=[recorder], device=device)
    assert recorder.events == [("backward", 1, True), ("step", 1, True),
                               ("backward", 2, True), ("step", 2, True), ("record", 2, True)]


def test_evaluate_is_the_mean_loss_and_error_over_all_batches(device):
    """evaluate's bookkeeping over uneven batches equals one pass over the whole set."""
    mr.manual_seed(0)
    model = models.cifar_resnet(8, width=2, num_classes=4).to(device)
    data = _easy_data(40)
    loss, err = evaluate(model, data, batch_size=16, device=device)   # batches of 16, 16, 8
    model.eval()
    with mr.no_grad():
        x, y = mr.tensor(data.images).to(device), mr.tensor(data.labels).to(device)
        logits = model(x)
        whole = float(mr.nn.functional.cross_entropy(logits, y).item())
        wrong = int((logits.numpy().argmax(axis=1) != y.numpy()).sum())
    assert loss == pytest.approx(whole, rel=1e-4)
    assert err == pytest.approx(100.0 * wrong / len(data))


def test_resume_continues_exactly(tmp_path):
    ck = str(tmp_path / "ck.npz")
    data = _easy_data(128)

    def run(steps, resume, path):
        mr.manual_seed(1)
        model = models.cifar_resnet(8, width=4, num_classes=4)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        sched = paper_schedule(opt, 8, warmup_steps=2)
        h = fit(model, data, steps=steps, batch_size=32, eval_every=2, progress=False,
                checkpoint=path, resume=resume, optimizer=opt, scheduler=sched, seed=3)
        return model, h

    full_model, full_h = run(8, False, str(tmp_path / "other.npz"))
    # interrupted after 4 steps: emulate by training 8 steps with a checkpoint at step 4
    part_model, _ = run(8, False, ck)
    state = mr.load(ck)
    assert state["step"] == 8
    # now a real interruption: train 4 steps, then resume to 8
    ck2 = str(tmp_path / "ck2.npz")
    _ = run(4, False, ck2)
    assert os.path.exists(ck2)
    # a fresh process would rebuild the same model and optimizer and resume from the file
    mr.manual_seed(1)
    model = models.cifar_resnet(8, width=4, num_classes=4)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = paper_schedule(opt, 8, warmup_steps=2)
    h = fit(model, data, steps=8, batch_size=32, eval_every=2, progress=False, checkpoint=ck2,
            resume=True, optimizer=opt, scheduler=sched, seed=3)
    assert h.steps == full_h.steps
    np.testing.assert_allclose(h.train_loss, full_h.train_loss, rtol=1e-5)
    for (k, a), (_, b) in zip(model.state_dict().items(), full_model.state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_bad_arguments():
    model = models.cifar_resnet(8, width=2)
    data = _easy_data(32)
    with pytest.raises(ValueError, match="steps= or epochs="):
        fit(model, data, progress=False)
    with pytest.raises(ValueError, match="not both"):
        fit(model, data, steps=1, epochs=1, progress=False)


def test_epochs_and_loader_input():
    model = models.cifar_resnet(8, width=2, num_classes=4)
    loader = DataLoader(_easy_data(64), batch_size=16, shuffle=True, drop_last=True)
    h = fit(model, loader, epochs=2, progress=False)
    assert h.steps[-1] == 8


def test_progress_switch(monkeypatch):
    monkeypatch.setenv("MINIRES_PROGRESS", "0")
    assert not progress_enabled(True)
    monkeypatch.setenv("MINIRES_PROGRESS", "1")
    assert progress_enabled(True) and not progress_enabled(False)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaNs are the point
def test_divergence_is_reported():
    from minires import nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))      # no BN to rescue it
    opt = optim.SGD(model.parameters(), lr=float("inf"))   # the first update makes NaNs
    h = fit(model, _easy_data(64), steps=20, batch_size=16, eval_every=1, optimizer=opt,
            scheduler=optim.lr_scheduler.MultiStepLR(opt, [1000]), progress=False)
    assert h.diverged and h.steps[-1] < 20


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_the_step_and_keeps_the_last_finite_checkpoint(tmp_path):
    """The learning rate becomes infinite after step 4: update 5 makes the weights NaN, the loss
    of step 6 is the first that is not finite; the checkpoint stays at step 4."""
    ck = str(tmp_path / "ck.npz")
    mr.manual_seed(0)
    model = models.cifar_resnet(8, width=2, num_classes=4)
    opt = optim.SGD(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.MultiStepLR(opt, [4], gamma=float("inf"))
    h = fit(model, _easy_data(64), steps=12, batch_size=16, eval_every=2, optimizer=opt,
            scheduler=sched, progress=False, checkpoint=ck)
    assert h.diverged and h.diverged_step == 6 and h.steps == [2, 4, 6]
    state = mr.load(ck)
    assert state["step"] == 4 and state["history"]["steps"] == [2, 4]
    for key, value in state["model"].items():
        assert np.isfinite(value.numpy()).all(), key


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_of_the_weights_alone_is_caught():
    """The first update makes the weights NaN while the loss of that step was finite."""
    from minires import nn
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    opt = optim.SGD(model.parameters(), lr=float("inf"))
    h = fit(model, _easy_data(16), steps=3, batch_size=16, eval_every=1, optimizer=opt,
            scheduler=optim.lr_scheduler.MultiStepLR(opt, [1000]), progress=False)
    assert h.diverged and h.diverged_step == 1 and math.isfinite(h.train_loss[0])


def test_resume_with_other_settings_or_model_is_a_checkpoint_error(tmp_path):
    from minires.errors import CheckpointError
    ck = str(tmp_path / "ck.npz")
    data = _easy_data(64)

    def resume(model, settings, batch_size=16):
        fit(model, data, steps=4, batch_size=batch_size, eval_every=2, progress=False,
            checkpoint=ck, resume=True, settings=settings)
    resume(models.cifar_resnet(8, width=2, num_classes=4), {"width": 2})     # writes it
    assert mr.load(ck)["settings"] == {"width": 2}
    with pytest.raises(CheckpointError, match=r"width=2.*width=4"):
        resume(models.cifar_resnet(8, width=4, num_classes=4), {"width": 4})
    with pytest.raises(CheckpointError, match="does not fit.*missing keys"):
        resume(models.cifar_resnet(14, width=2, num_classes=4), {"width": 2})
    with pytest.raises(CheckpointError, match="does not fit.*batch_size"):
        resume(models.cifar_resnet(8, width=2, num_classes=4), {"width": 2}, batch_size=32)


def test_history_reads_json_nulls_back_as_nan():
    h = History.from_dict({"steps": [1, 2], "train_loss": [0.5, None], "diverged": True,
                           "diverged_step": 2})
    assert h.train_loss[0] == 0.5 and math.isnan(h.train_loss[1]) and h.diverged_step == 2


# --- lazy modules ---

def _lazy_model():
    return mr.nn.Sequential(mr.nn.LazyConv2d(4, 3, padding=1), mr.nn.LazyBatchNorm2d(),
                            mr.nn.ReLU(), mr.nn.AdaptiveAvgPool2d(1), mr.nn.Flatten(),
                            mr.nn.LazyLinear(4))


def test_fit_trains_the_weights_of_lazy_modules(device):
    mr.manual_seed(0)
    model = _lazy_model()
    train = _easy_data(64)
    loader = DataLoader(train, batch_size=16, shuffle=True, seed=0, device=device)
    position = loader.state_dict()
    h = fit(model, loader, steps=4, progress=False, device=device, lr_decay=False)
    assert not h.diverged
    linear, conv = model[5], model[0]
    assert type(linear) is mr.nn.Linear and linear.in_features == 4
    assert type(conv) is mr.nn.Conv2d and conv.in_channels == 3
    # the dry forward changed nothing but the parameters' existence: train again from a copy
    # of the materialised initial weights and compare: the lazy weights moved
    mr.manual_seed(0)
    twin = _lazy_model().to(device)
    loader.load_state_dict(position)
    twin(loader.peek()[0])                       # the same initial weights as fit's dry run
    before = twin[5].weight.detach().numpy().copy()
    assert not np.allclose(before, linear.weight.detach().numpy())
    assert np.abs(model[1].running_mean.numpy()).sum() > 0      # trained in train mode


def test_fit_refuses_an_optimizer_built_before_lazy_parameters_exist():
    model = _lazy_model()
    early = optim.SGD(list(model.parameters()) or [mr.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="optimizer was built before the lazy modules"):
        fit(model, _easy_data(32), steps=1, batch_size=16, optimizer=early, progress=False)


def test_peek_does_not_move_the_loader():
    loader = DataLoader(_easy_data(64), batch_size=16, shuffle=True, seed=3)
    images, labels = loader.peek()
    first_images, first_labels = next(iter(loader))
    np.testing.assert_array_equal(images.numpy(), first_images.numpy())
    np.testing.assert_array_equal(labels.numpy(), first_labels.numpy())


def test_resume_a_lazy_model(tmp_path):
    path = str(tmp_path / "ck.npz")
    train = _easy_data(64)
    mr.manual_seed(0)
    straight = _lazy_model()
    fit(straight, train, steps=6, batch_size=16, eval_every=3, progress=False, seed=1)
    mr.manual_seed(0)
    first = _lazy_model()
    fit(first, train, steps=6, batch_size=16, eval_every=3, progress=False, seed=1,
        checkpoint=path)
    # a fresh lazy model, never run: resuming creates its parameters from the checkpoint
    h = fit(_lazy_model(), train, steps=9, batch_size=16, eval_every=3, progress=False, seed=1,
            checkpoint=path, resume=True)
    assert h.steps == [3, 6, 9]


def test_load_state_dict_materialises_lazy_modules(device):
    source = _lazy_model().to(device)
    x = mr.randn(2, 3, 6, 6, device=device)
    source.eval()
    expected = source(x).numpy()
    target = _lazy_model()
    target.load_state_dict(source.state_dict())
    target.eval()
    assert type(target[5]) is mr.nn.Linear and target[5].weight.shape == (4, 4)
    np.testing.assert_allclose(target.to(device)(x).numpy(), expected, rtol=1e-6)
