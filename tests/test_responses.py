"""The paper's Figure 7 measurement: layer response stds of trained nets in eval mode."""
import json
import os

import numpy as np
import pytest

import minires as mr
from minires import cli, models, nn
from minires.diagnostics.responses import compare_responses, layer_responses, response_layers


def _trained_looking(model):
    """Batch-norm running statistics and affine parameters away from their initial values, as
    training leaves them (so eval mode is not an identity on the statistics)."""
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.array[...] = rng.normal(0, 0.5, c)
            m.running_var.array[...] = rng.uniform(0.5, 2.0, c)
            m.weight.array[...] = rng.uniform(0.2, 1.5, c)
            m.bias.array[...] = rng.normal(0, 0.3, c)
    return model.eval()


def test_std_over_batches_is_the_std_of_all_outputs(device):
    model = _trained_looking(models.cifar_resnet(8, width=4)).double().to(device)
    images = mr.randn(10, 3, 8, 8, device=device, dtype=mr.float64)
    got = layer_responses(model, [images[:4], (images[4:], None)])
    # the slow way: every batch-norm output of one forward pass over all images, by hand
    outputs = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=name: outputs.__setitem__(n, o.numpy()))
               for name, m in response_layers(model)]
    with mr.no_grad():
        model(images)
    for h in handles:
        h.remove()
    assert [r.name for r in got] == list(outputs)
    assert [r.depth for r in got] == list(range(1, len(outputs) + 1))
    for r in got:
        assert r.std == pytest.approx(float(outputs[r.name].std()), rel=1e-9)


def test_only_layers_after_3x3_convs():
    names = [n for n, _ in response_layers(models.cifar_resnet(14, width=4, shortcut="B"))]
    assert names[0] == "stem.bn" and len(names) == 1 + 2 * 6
    assert not any("shortcut" in n for n in names)


def test_training_mode_is_refused():
    model = models.cifar_resnet(8, width=4)        # training mode: every std would be |gamma|
    with pytest.raises(ValueError, match="training mode.*model.eval"):
        layer_responses(model, [mr.randn(2, 3, 8, 8)])


def test_compare_responses_tests_both_claims():
    stds = {"plain8": [1.0, 2.0, 3.0], "resnet8": [0.5, 2.5, 1.0],
            "plain14": [4.0, 4.0, 4.0], "resnet14": [0.1, 0.2, 0.3]}
    c = compare_responses(stds)
    assert c["twins"]["8"]["layers_resnet_smaller"] == 2 and c["twins"]["8"]["layers"] == 3
    assert c["twins"]["8"]["resnet_mean"] == pytest.approx(4.0 / 3)
    assert c["twins"]["8"]["resnet_smaller"] is True       # mean 1.33 < 2, median 1.0 < 2
    assert c["deeper_resnet"]["resnet14_vs_resnet8"]["deeper_smaller"] is True
    c = compare_responses({"resnet8": [0.1, 0.1], "resnet14": [0.2, 0.05]})
    assert c["deeper_resnet"]["resnet14_vs_resnet8"]["deeper_smaller"] is False


def test_responses_command_on_a_tiny_degradation_run(tmp_path, capsys):
    out = str(tmp_path / "deg")
    assert cli.main(["degradation", "--depths", "8", "--steps", "4", "--image-size", "8",
                     "--width", "4", "--num-train", "256", "--batch-size", "32",
                     "--out", out, "--no-progress"]) == 0
    assert cli.main(["responses", "--from", out]) == 0
    printed = capsys.readouterr().out
    assert "depth 8: ResNet response std below the plain net's in" in printed
    data = json.load(open(os.path.join(out, "responses", "responses.json")))
    assert set(data["models"]) == {"plain8", "resnet8"}
    assert data["settings"]["mode"] == "eval" and data["settings"]["images"] == 2000
    assert all(len(v) == 7 and min(v) > 0 for v in data["models"].values())
    assert os.path.getsize(os.path.join(out, "responses", "response_std.png")) > 1000
    # results are never overwritten silently
    capsys.readouterr()
    assert cli.main(["responses", "--from", out]) == 1
    assert "--overwrite to replace them" in capsys.readouterr().err
    assert cli.main(["responses", "--from", out, "--overwrite"]) == 0
    # a folder without a degradation run: one line, exit status 1
    assert cli.main(["responses", "--from", str(tmp_path / "nothing")]) == 1
    assert "run `minires degradation" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "nothing")          # no folder left behind
