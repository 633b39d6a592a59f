"""The sparse_update strategy: its scheme, channel-wise weight updates whose gradients equal
stock autograd's, memory it keeps, and a run's whole life (train, mid-epoch resume, eval,
export)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from ftlab.cli import main
from ftlab.config import StrategyConfig
from ftlab.efficient import apply_memory_plan
from ftlab.efficient.partial import EfficientPartialConv2d
from ftlab.errors import ConfigError
from ftlab.memory import saved_activation_bytes
from ftlab.models import build_model
from ftlab.models.partial import DELTA, PartialConv2d
from ftlab.strategies import get_strategy
from test_memory import _gradients

SCHEME = ["features.17.conv.2:0.25", "features.16.conv.0.0:0.5", "features.18.0:1.0",
          "features.15.conv.1.0:0.3"]
"""Two pointwise convs by fraction, the last 1x1 conv whole, a depthwise conv (grouped: all
of its channels train, whatever the fraction)."""


def _sparse(options: dict, dtype=torch.float64, arch="mobilenet_v2"):
    built = build_model(arch, None, 5, pretrained=False, seed=0)
    strategy = get_strategy(StrategyConfig(name="sparse_update", options=options))
    strategy.prepare(built.model, built.adapter, input_size=64)
    model = built.model.to(dtype)
    strategy.set_train_mode(model)
    return model, strategy


def test_the_scheme_names_layers_and_channels():
    model, strategy = _sparse({"weights": SCHEME, "bias_blocks": 2})
    assert strategy.scheme == {"features.17.conv.2": 80, "features.16.conv.0.0": 480,
                               "features.18.0": 1280, "features.15.conv.1.0": 960}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n for n in trainable if n.endswith(DELTA)} == {f"{name}.{DELTA}"
                                                           for name in strategy.scheme}
    assert getattr(model.get_submodule("features.17.conv.2"), DELTA).shape == (80, 960, 1, 1)
    assert not any(n.endswith(".weight") for n in trainable if not n.startswith("classifier"))
    biases = {n for n in trainable if n.endswith(".bias") and not n.startswith("classifier")}
    assert biases and all(n.startswith(("features.17.", "features.18.")) for n in biases)


def test_the_default_rule_updates_a_quarter_of_the_last_blocks_ungrouped_layers():
    _, strategy = _sparse({})
    assert set(strategy.scheme) == {"features.17.conv.0.0", "features.17.conv.2",
                                    "features.18.0"}
    assert strategy.scheme["features.17.conv.2"] == 80  # 320 output channels / 4


@pytest.mark.parametrize("weights, message", [
    (["features.99.conv.2:0.5"], "strategy.weights names 'features.99.conv.2', which is not"),
    (["classifier.1:0.5"], "which is not a conv or linear layer of the backbone"),
    (["features.17.conv.2:0"], "FRACTION in (0, 1]"),
    (["features.17.conv.2"], "entries LAYER:FRACTION"),
    (["features.17.conv.2:0.5", "features.17.conv.2:0.25"], "each layer once"),
])
def test_a_scheme_the_model_lacks_is_one_clear_error(weights, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        _sparse({"weights": weights})


def test_updated_channels_get_stock_gradients_and_the_rest_none_float64():
    """The efficient partial layers against the strategy's own stock modules, float64."""
    model, _ = _sparse({"weights": SCHEME})
    with torch.no_grad():  # non-zero updates, so the forward and input gradients use them
        generator = torch.Generator().manual_seed(3)
        for name, parameter in model.named_parameters():
            if name.endswith(DELTA):
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stock_out, stock_grads, stock_saved = _gradients(model, x)
    plan = apply_memory_plan(model)
    assert sum(isinstance(m, EfficientPartialConv2d) for m in model.modules()) == 4, plan
    out, grads, saved = _gradients(model, x)
    assert torch.allclose(out, stock_out)
    assert grads.keys() == stock_grads.keys()
    for key in grads:
        assert torch.allclose(grads[key], stock_grads[key]), key
    assert saved < stock_saved
    layer = model.get_submodule("features.17.conv.2")
    assert layer.weight.grad is None and getattr(layer, DELTA).grad.shape[0] == 80


def test_a_partial_layer_keeps_its_input_once_and_frozen_layers_nothing():
    """Only the head trains: it keeps its own input. One whole 1x1 conv more: its input
    (once), plus what passing the gradient down to it costs the frozen layers after it
    (BatchNorm scales, ReLU masks: far less than a second copy)."""
    x = torch.randn(4, 3, 64, 64)
    kept = {}
    for name, weights in (("head", []), ("one", ["features.17.conv.2:1.0"])):
        model, _ = _sparse({"weights": weights, "bias_blocks": 0, "weight_blocks": 0},
                           dtype=torch.float32)
        apply_memory_plan(model)
        kept[name] = saved_activation_bytes(lambda: model(x), model)[1]
    layer_input = 4 * 960 * 2 * 2 * 4  # features.17.conv.2 reads 960 x 2 x 2 at 64 px
    assert layer_input <= kept["one"] - kept["head"] < 1.5 * layer_input


def test_export_merges_the_updates_into_plain_layers():
    model, strategy = _sparse({"weights": SCHEME}, dtype=torch.float32)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(DELTA):
                parameter.normal_(0, 0.05)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    want = model(x)
    plain = strategy.export_network(model)
    assert not any(isinstance(m, PartialConv2d) for m in plain.modules())
    assert not any(k.endswith(DELTA) for k in plain.state_dict())
    torch.testing.assert_close(plain(x), want)
    reference = build_model("mobilenet_v2", None, 5, pretrained=False).model.eval()
    reference.load_state_dict(plain.state_dict())  # torchvision's own keys, strict
    torch.testing.assert_close(reference(x), want)


def test_a_sparse_run_resumes_mid_epoch_bit_identically_evaluates_and_exports(tmp_path):
    from conftest import tiny_overrides
    from faults.runs import RUN, assert_same_result, finish, ftlab_train

    settings = {**RUN, "strategy.name": "sparse_update",
                "strategy.weights": "[features.17.conv.2:0.25,features.18.0:0.5]"}
    clean = tiny_overrides(tmp_path / "clean", **settings, **{"train.run_name": "run"})
    assert main(["train", *clean]) == 0
    overrides = tiny_overrides(tmp_path / "runs", **settings, **{"train.run_name": "run"})
    run_dir = tmp_path / "runs" / "run"
    first = ftlab_train(*overrides, failpoints="train_step=6:TERM")  # epoch 2, step 2 of 4
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-2000:]
    assert torch.load(run_dir / "last.pt", weights_only=True)["partial"] is not None
    finish(run_dir, overrides)
    assert "resuming in epoch 2 after step 2" in (run_dir / "log.txt").read_text()
    assert_same_result(run_dir, tmp_path / "clean" / "run")
    config = (run_dir / "config.yaml").read_text()
    assert "features.17.conv.2:0.25" in config
    assert main(["eval", str(run_dir), "--output-dir", str(tmp_path / "eval")]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluated = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert evaluated["top1"] == pytest.approx(summary["test_top1"])
    out = tmp_path / "model.ts"  # torchscript traces the partial layers as they are
    assert main(["export", str(run_dir), "--format", "torchscript", "--output", str(out)]) == 0
    pytest.importorskip("safetensors", reason="safetensors export needs the export extra")
    merged = tmp_path / "model.safetensors"  # merged into torchvision's own layers
    assert main(["export", str(run_dir), "--format", "safetensors", "--output",
                 str(merged)]) == 0
    from safetensors.torch import load_file

    state = load_file(str(merged))
    assert not any(key.endswith(DELTA) for key in state)
    assert state["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
