"""The lesion study (Veit et al. 2016): deleting blocks at test time, and `minires lesion`."""
import json
import os

import numpy as np
import pytest

import minires as mr
from minires import cli
from minires.autograd import no_grad
from minires.diagnostics import block_lesions, deleted_blocks, lesion
from minires.train import evaluate

from .conftest import to_numpy


def tiny(residual, device="cpu"):
    mr.manual_seed(0)
    model = mr.models.cifar_resnet(8, residual=residual, width=4).to(device).eval()
    # non-trivial batch-norm statistics, so that eval mode does not hide mistakes
    for m in model.modules():
        if isinstance(m, mr.nn.BatchNorm2d):
            rng = np.random.default_rng(m.num_features)
            m.running_mean.array[...] = mr.backend.to_device(
                rng.normal(0, 0.1, m.num_features).astype(np.float32), device)
    return model


def images(device, n=6, seed=1):
    x = np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)
    return mr.tensor(x, device=device)


def manual_forward(model, x, skip_branch=(), skip_block=()):
    """The net written out by hand: block i with its branch removed is relu(shortcut(x));
    a block in skip_block is left out altogether."""
    x = model.stem(x)
    for i, block in enumerate(model.blocks):
        if i in skip_block:
            continue
        x = block.relu(block.shortcut(x)) if i in skip_branch else block(x)
    return model.fc(model.flatten(model.pool(x)))


def dataset(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return mr.data.TensorDataset(rng.standard_normal((n, 3, 8, 8)).astype(np.float32),
                                 rng.integers(0, 10, n))


def test_deleting_a_residual_block_removes_its_branch(device):
    model = tiny(True, device)
    x = images(device)
    with no_grad():
        intact = to_numpy(model(x))
        for i in range(len(model.blocks)):
            expected = to_numpy(manual_forward(model, x, skip_branch={i}))
            with deleted_blocks(model, [i]):
                got = to_numpy(model(x))
            np.testing.assert_array_equal(got, expected)
            assert not np.allclose(got, intact)
            # and the block is whole again afterwards
            np.testing.assert_array_equal(to_numpy(model(x)), intact)
        # an identity shortcut after a ReLU: the deleted block is simply skipped
        with deleted_blocks(model, [0]):
            np.testing.assert_allclose(to_numpy(model(x)),
                                       to_numpy(manual_forward(model, x, skip_block={0})),
                                       rtol=1e-6, atol=1e-6)
        with deleted_blocks(model, [0, 2]):
            np.testing.assert_array_equal(
                to_numpy(model(x)), to_numpy(manual_forward(model, x, skip_branch={0, 2})))


def test_block_lesions_say_which_blocks_downsample_and_which_can_go():
    res, plain = block_lesions(tiny(True)), block_lesions(tiny(False))
    assert [b.downsampling for b in res] == [False, True, True]
    assert [b.stride for b in res] == [1, 2, 2]
    assert [(b.in_channels, b.out_channels) for b in res] == [(4, 4), (4, 8), (8, 16)]
    assert all(b.deletable for b in res)
    assert [b.deletable for b in plain] == [True, False, False]
    assert plain[0].reason is None
    assert "4->8 channels, stride 2" in plain[1].reason


def test_deleting_a_plain_block_skips_it_and_refuses_a_shape_change(device):
    model = tiny(False, device)
    x = images(device)
    with no_grad():
        with deleted_blocks(model, [0]):
            np.testing.assert_array_equal(to_numpy(model(x)),
                                          to_numpy(manual_forward(model, x, skip_block={0})))
        with pytest.raises(ValueError, match="plain8 block 1 cannot be deleted.*stride 2"):
            with deleted_blocks(model, [1]):
                pass
        with pytest.raises(IndexError, match="out of range"):
            with deleted_blocks(model, [3]):
                pass
        assert "forward" not in model.blocks[0].__dict__


def test_lesion_measures_each_deletion(device):
    model = tiny(True, device)
    data = dataset()
    result = lesion(model, data, ks=[1, 2], draws=2, seed=3, batch_size=16, progress=False)
    assert result.baseline_error == pytest.approx(evaluate(model, data)[1])
    for b in result.single:
        with deleted_blocks(model, [b.index]):
            loss, error = evaluate(model, data)
        assert b.error == pytest.approx(error) and b.loss == pytest.approx(loss, rel=1e-5)
    assert [r["k"] for r in result.random] == [1, 2]
    for r in result.random:
        assert len(r["errors"]) == 2 and all(len(d) == r["k"] for d in r["deleted"])
        with deleted_blocks(model, r["deleted"][1]):
            assert r["errors"][1] == pytest.approx(evaluate(model, data)[1])
    again = lesion(model, data, ks=[1, 2], draws=2, seed=3, progress=False)
    assert again.random == result.random
    assert result.to_dict()["single"][1]["downsampling"] is True


def test_lesion_of_a_plain_net_leaves_the_blocked_ones_out():
    result = lesion(tiny(False), dataset(), draws=2, progress=False)
    assert [b.error is None for b in result.single] == [False, True, True]
    assert all(d == [0] for r in result.random for d in r["deleted"])


def test_lesion_bad_input_is_one_line():
    with pytest.raises(ValueError, match="k must be between 1 and the 1 deletable blocks"):
        lesion(tiny(False), dataset(), ks=[2], progress=False)
    with pytest.raises(TypeError, match="expected a minires Network"):
        lesion(mr.nn.Linear(3, 2), dataset(), progress=False)


# --- the command ---

class TinyConfig:
    """Stands in for DegradationConfig in minires.experiments.degradation: its quick preset at toy
    size."""

    @staticmethod
    def quick(**overrides):
        from minires.experiments import DegradationConfig
        return DegradationConfig(**dict(dict(steps=4, image_size=8, width=4, num_train=128,
                                             num_test=40, warmup_steps=2, batch_size=32),
                                        **overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Models missing from --from are trained with the quick preset (here a toy one) into
    OUT/trained: the degradation folder the other tests use."""
    from minires import studies
    from minires.experiments import degradation
    out = str(tmp_path_factory.mktemp("study"))
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(degradation, "DegradationConfig", TinyConfig)
        models, folder = studies.trained_models(["resnet8", "plain8"], out, source=None,
                                                progress=False, log=lines.append)
    return out, folder, models, lines


@pytest.fixture(scope="module")
def degradation_dir(trained):
    return trained[1]


def strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")
    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def test_lesion_command_end_to_end(degradation_dir, tmp_path, capsys):
    out = str(tmp_path / "lesion")
    args = ["lesion", "--model", "resnet8", "--compare", "plain8", "--from", degradation_dir,
            "--out", out, "--images", "24", "--draws", "2", "--ks", "1", "2", "--no-progress"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "cannot" in printed and "wrote" in printed
    assert "plain8: 1 blocks can be deleted; k = 2 left out" in printed
    data = strict_json(os.path.join(out, "lesion.json"))
    assert set(data["models"]) == {"resnet8", "plain8"} and data["settings"]["images"] == 24
    assert data["models"]["resnet8"]["num_images"] == 24
    plain = data["models"]["plain8"]
    assert [b["deletable"] for b in plain["single"]] == [True, False, False]
    assert plain["single"][1]["error"] is None and plain["single"][1]["reason"]
    assert [r["k"] for r in plain["random"]] == [1]
    assert [r["k"] for r in data["models"]["resnet8"]["random"]] == [1, 2]
    for png in ("lesion_single.png", "lesion_random.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    # a second run does not replace the result unless asked
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err
    assert cli.main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--model", "resnet18"], "CIFAR nets"),
    (["--ks", "9"], "no k of [9] is at most its 3 deletable blocks"),
    (["--from", "/nonexistent/minires"], "is not a folder"),
])
def test_lesion_command_bad_input(degradation_dir, tmp_path, capsys, args, message):
    base = ["lesion", "--model", "resnet8", "--compare", "--from", degradation_dir, "--out",
            str(tmp_path / "x"), "--no-progress"]
    assert cli.main(base + args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_missing_models_are_trained_with_the_quick_preset(trained):
    from minires import studies
    out, folder, models, lines = trained
    assert folder == os.path.join(out, "trained")
    assert any("quick preset" in line and "--depths 8" in line for line in lines)
    assert models["resnet8"].name == "resnet8" and not models["resnet8"].training
    assert sorted(os.listdir(os.path.join(folder, "models"))) == ["plain8.npz", "resnet8.npz"]
    lines = []       # a second call finds them there and trains nothing
    studies.trained_models(["resnet8", "plain8"], out, source=os.path.join(out, "none"),
                           progress=False, log=lines.append)
    assert any("does not hold" in line for line in lines)
    assert any("using the models trained earlier" in line for line in lines)
    assert not any("quick preset" in line for line in lines)


def test_landscape_command_end_to_end(degradation_dir, tmp_path, capsys):
    out = str(tmp_path / "land")
    args = ["landscape", "--model", "resnet8", "--compare", "plain8", "--from", degradation_dir,
            "--out", out, "--grid", "3", "--range", "0.5", "--images", "16",
            "--curve-points", "5", "--no-progress"]
    assert cli.main(args) == 0
    assert "negative curvature" in capsys.readouterr().out
    data = strict_json(os.path.join(out, "landscape.json"))
    assert data["settings"]["grid"] == 3 and data["settings"]["images"] == 16
    for name in ("resnet8", "plain8"):
        m = data["models"][name]
        assert np.asarray(m["loss"]).shape == (3, 3) and len(m["curves"]["alpha"]["loss"]) == 5
        assert m["coords"] == [-0.5, 0.0, 0.5] and m["summary"]["local_minima"] is not None
    for png in ("landscape_contour.png", "landscape_surface.png", "landscape_curves.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000
    assert cli.main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(args[:-1] + ["--grid", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--grid must be >= 2" in err and "\n" not in err
