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


def test_the_knapsack_finds_the_best_choice_of_one_fraction_per_layer():
    import itertools

    from ftlab.memory.scheme import COST_UNIT, Item, knapsack

    generator = torch.Generator().manual_seed(5)
    items = [Item(f"l{i}", f, float(torch.rand(1, generator=generator)) * f ** 0.5,
                  int(COST_UNIT * (1 + 9 * float(torch.rand(1, generator=generator))) * f * 4))
             for i in range(5) for f in (0.25, 0.5, 1.0)]
    capacity = 20 * COST_UNIT

    def units(item):
        return -(-item.cost // COST_UNIT)

    best = 0.0
    per_layer = [[None, *[i for i in items if i.layer == f"l{n}"]] for n in range(5)]
    for choice in itertools.product(*per_layer):
        picked = [i for i in choice if i is not None]
        if sum(units(i) for i in picked) <= capacity // COST_UNIT:
            best = max(best, sum(i.gain for i in picked))
    chosen = knapsack(items, capacity)
    assert len({i.layer for i in chosen}) == len(chosen)
    assert sum(units(i) for i in chosen) <= capacity // COST_UNIT
    assert sum(i.gain for i in chosen) == pytest.approx(best)


def test_the_chosen_scheme_fits_its_budget_measured_and_trains(tiny, tmp_path, monkeypatch):
    """Gains are stubbed (the short runs are real training, tested elsewhere; here random
    weights gain nothing): the choice must follow them within the measured budget, which
    leaves room for part of the last layer's channels, not all of them."""
    import ftlab.memory.scheme as scheme_module
    from ftlab.config import load_config
    from ftlab.memory.scheme import choose_scheme, save_scheme

    monkeypatch.setattr(scheme_module, "_short_run", lambda config, options, folder, epochs:
                        50.0 + 4.0 * ("features.18.0:1.0" in options["weights"]))
    config = load_config(None, tiny(**{"strategy.name": "bias"}))
    base_options = {"bias_blocks": 2, "weight_blocks": 0, "weights": []}
    base = scheme_module._peak(config, base_options)
    whole = scheme_module._peak(config, {**base_options, "weights": ["features.18.0:1.0"]})
    budget = base + (whole - base) // 2
    scheme = choose_scheme(config, budget, tmp_path / "candidates", bias_blocks=2,
                           search_blocks=1)
    assert set(scheme.gains) == {"features.18.0"} and scheme.gains["features.18.0"] == 4.0
    chosen, = scheme.chosen
    room = budget - scheme.base_peak
    largest = max(i.fraction for i in scheme.items if i.cost <= room - room % 16384)
    assert chosen.layer == "features.18.0" and chosen.fraction == largest < 1.0
    assert scheme.peak <= budget
    assert scheme_module._peak(config, {**base_options, "weights": scheme.weights}) <= budget
    paths = save_scheme(scheme, config, tmp_path / "out")
    assert main(["train", str(paths[2]), f"train.output_dir={tmp_path / 'runs'}",
                 "train.run_name=chosen"]) == 0
    written = (tmp_path / "runs" / "chosen" / "config.yaml").read_text()
    assert scheme.weights[0] in written
    with pytest.raises(ConfigError, match="the sparse-update base .* needs"):
        choose_scheme(config, base // 2, tmp_path / "c2", bias_blocks=2, search_blocks=1)


def test_sparse_scheme_command_refuses_what_it_cannot_do(tmp_path, capsys):
    assert main(["sparse-scheme", "data.name=synthetic", "--output-dir",
                 str(tmp_path / "a")]) == 2
    assert "--memory-budget is required" in capsys.readouterr().err
    assert main(["sparse-scheme", "data.name=synthetic", "--memory-budget", "64MB",
                 "--output-dir", str(tmp_path / "a")]) == 2
    assert "is not a memory size" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
