"""Loss landscapes (Li et al. 2018): filter-normalised directions, the grid, weights restored.
(`minires landscape` end to end is in test_lesion.py, which trains the toy models once.)"""
import numpy as np
import pytest

import minires as mr
from minires.diagnostics import filter_normalized_direction, loss_landscape
from minires.diagnostics.landscape import curvature_summary
from minires.train import evaluate

from .conftest import to_numpy
from .test_lesion import dataset, tiny


def test_directions_are_filter_normalised(device):
    model = tiny(True, device)
    direction = filter_normalized_direction(model, np.random.default_rng(1))
    params = list(model.named_parameters())
    assert len(direction) == len(params)
    seen_conv = seen_fc = False
    for (name, p), d in zip(params, direction):
        d, w = mr.backend.to_host(d), to_numpy(p)
        assert d.shape == w.shape and d.dtype == w.dtype
        if w.ndim < 2:      # batch-norm weights and biases, the fc bias: left where they are
            assert not d.any(), name
            continue
        seen_conv |= w.ndim == 4
        seen_fc |= w.ndim == 2
        norms_d = np.linalg.norm(d.reshape(len(d), -1).astype(np.float64), axis=1)
        norms_w = np.linalg.norm(w.reshape(len(w), -1).astype(np.float64), axis=1)
        np.testing.assert_allclose(norms_d, norms_w, rtol=1e-5)
        assert not np.allclose(d, w)        # a random direction, not the weights themselves
    assert seen_conv and seen_fc


def test_grid_shapes_centre_and_curves(device):
    model = tiny(True, device)
    data = dataset(40)
    land = loss_landscape(model, data, grid=5, span=0.5, num_images=24, curve_points=7,
                          batch_size=10, progress=False)
    assert land.num_images == 24
    assert land.coords == pytest.approx(np.linspace(-0.5, 0.5, 5).tolist())
    assert np.asarray(land.loss).shape == (5, 5) and np.asarray(land.error).shape == (5, 5)
    assert len(land.curves["alpha"]["loss"]) == 7 and len(land.curves["beta"]["error"]) == 7
    first = mr.data.Subset(data, np.arange(24))
    loss, error = evaluate(model, first)
    assert land.center_loss == pytest.approx(loss, rel=1e-5) and land.center_error == error
    assert land.loss[2][2] == pytest.approx(land.center_loss, rel=1e-6)
    assert land.curves["beta"]["loss"][3] == pytest.approx(land.center_loss, rel=1e-6)
    # the loss away from the weights is not the loss at them
    assert max(max(row) for row in land.loss) > land.center_loss
    summary = land.to_dict()["summary"]
    assert set(summary) == {"nonconvex_fraction", "curvature_ratio", "local_minima", "rise"}


def test_a_point_of_the_grid_is_the_loss_at_those_weights():
    model = tiny(False)
    data = dataset(16)
    d1, d2 = (filter_normalized_direction(model, np.random.default_rng(i)) for i in (5, 6))
    land = loss_landscape(model, data, grid=3, span=0.4, directions=(d1, d2), progress=False)
    # by hand: move the weights to alpha = 0.4, beta = -0.4 and evaluate
    for p, a, b in zip(model.parameters(), d1, d2):
        p.array[...] = p.array + 0.4 * a - 0.4 * b
    assert land.loss[0][2] == pytest.approx(evaluate(model, data)[0], rel=1e-5)


def test_weights_restored_bit_for_bit_even_after_an_error(device):
    model = tiny(True, device)
    before = {k: to_numpy(v).copy() for k, v in model.state_dict().items()}
    loss_landscape(model, dataset(16), grid=3, progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(v), before[k], err_msg=k)

    class Failing:
        """A dataset whose batches fail after a few grid points."""
        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __len__(self):
            return len(self.inner)

        def get_batch(self, indices):
            self.calls += 1
            if self.calls > 3:
                raise KeyboardInterrupt
            return self.inner.get_batch(indices)

    with pytest.raises(KeyboardInterrupt):
        loss_landscape(model, Failing(dataset(16)), grid=3, progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(v), before[k], err_msg=k)


def test_curvature_summary_tells_a_bowl_from_a_rough_surface():
    c = np.linspace(-1, 1, 9)
    a, b = np.meshgrid(c, c)
    bowl = curvature_summary(1 + a ** 2 + 2 * b ** 2, c)
    assert bowl["nonconvex_fraction"] == 0 and bowl["local_minima"] == 1
    assert bowl["rise"] > 0
    rough = curvature_summary(1 + a ** 2 + 0.3 * np.sin(9 * a) * np.cos(9 * b), c)
    assert rough["nonconvex_fraction"] > 0.2 and rough["local_minima"] > 1


def test_landscape_bad_input_is_one_line():
    model = tiny(True)
    with pytest.raises(ValueError, match="grid must be >= 2"):
        loss_landscape(model, dataset(8), grid=1)
    with pytest.raises(ValueError, match="span must be a positive number"):
        loss_landscape(model, dataset(8), span=0)
    loader = mr.data.DataLoader(dataset(8), shuffle=True)
    with pytest.raises(ValueError, match="shuffles"):
        loss_landscape(model, loader)
