"""train.frozen_weights=int8: frozen conv / linear weights stored per-channel in 8 bits,
gradients equal to stock autograd on the same (dequantised) weights, standard checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ftlab.assembly import store_frozen_weights
from ftlab.cli import main
from ftlab.efficient import apply_memory_plan, int8_bytes
from ftlab.efficient.int8 import Int8Conv2d, Int8Linear, dequantize, quantize
from ftlab.errors import ConfigError
from extras import needs_extra
from test_memory import _gradients, _prepared


def test_quantisation_is_per_channel_symmetric_and_a_fixed_point():
    weight = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    weight[3] = 0.0  # an all-zero channel keeps scale 1 and values 0
    values, scale = quantize(weight)
    assert values.dtype == torch.int8 and values.abs().max() == 127 and scale[3] == 1.0
    error = (dequantize(values, scale) - weight).abs()
    assert (error <= scale.view(-1, 1, 1, 1) / 2 + 1e-7).all()  # half a step at most
    again, again_scale = quantize(dequantize(values, scale))
    assert torch.equal(again, values) and torch.equal(again_scale, scale)


@pytest.mark.parametrize("name, arch", [("bias", "mobilenet_v2"), ("tinytl", "mobilenet_v2"),
                                        ("linear_probe", "resnet18"), ("lora", "mobilenet_v2"),
                                        ("norm_last", "mobilenet_v3_small")])
def test_gradients_equal_stock_autograd_on_the_dequantised_weights_float64(name, arch):
    """The reference is the quantised network itself under stock autograd: plain modules
    holding the dequantised weights (what `state_dict` gives back)."""
    needs_extra(name, arch)
    model, strategy = _prepared(name, arch, torch.float64)
    from ftlab.models import get_adapter

    count = store_frozen_weights(model, strategy, get_adapter(arch), "int8", quiet=True)
    assert count > 0
    stock, _ = _prepared(name, arch, torch.float64)
    stock.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(0))
    stock_out, stock_grads, _ = _gradients(stock, x)
    apply_memory_plan(model)
    out, grads, saved = _gradients(model, x)
    assert torch.allclose(out, stock_out)
    assert grads.keys() == stock_grads.keys() and grads
    for key in grads:
        assert torch.allclose(grads[key], stock_grads[key]), key
    assert not any(isinstance(m, (nn.Conv2d, nn.Linear)) and type(m) in (nn.Conv2d, nn.Linear)
                   and not m.weight.requires_grad for m in model.modules())


def test_depthwise_convolutions_in_batch_chunks_give_the_same_gradients_float64(monkeypatch):
    """The chunked depthwise forward (`DEPTHWISE_CHUNK_BYTES`), made to chunk at test
    sizes: the same outputs and gradients as the quantised network under stock autograd."""
    import ftlab.efficient.int8 as int8

    monkeypatch.setattr(int8, "DEPTHWISE_CHUNK_BYTES", 4096)
    test_gradients_equal_stock_autograd_on_the_dequantised_weights_float64("bias",
                                                                           "mobilenet_v2")
    x = torch.randn(4, 8, 16, 16, dtype=torch.float64)
    assert int8._depthwise_chunks(x, 8) == 4 and int8._depthwise_chunks(x, 1) == 1


def test_int8_holds_a_quarter_of_the_frozen_weights_and_checkpoints_stay_standard():
    model, strategy = _prepared("bias", "mobilenet_v2", torch.float32)
    from ftlab.models import get_adapter

    before = sum(p.numel() * 4 for p in model.parameters() if not p.requires_grad)
    keys = list(model.state_dict().keys())
    store_frozen_weights(model, strategy, get_adapter("mobilenet_v2"), "int8", quiet=True)
    after = sum(p.numel() * 4 for p in model.parameters() if not p.requires_grad)
    assert int8_bytes(model) < 0.26 * (before - after)  # a byte each, plus channel scales
    assert sorted(model.state_dict().keys()) == sorted(keys)
    assert any(isinstance(m, Int8Conv2d) for m in model.modules())
    assert any(isinstance(m, Int8Linear) for m in model.modules()) is False  # head trains


@pytest.mark.parametrize("name", ["full", "gradual_unfreeze", "l2sp"])
def test_strategies_that_train_every_weight_are_refused(name):
    model, strategy = _prepared(name, "mobilenet_v2", torch.float32)
    from ftlab.models import get_adapter

    with pytest.raises(ConfigError, match="no weight is frozen to store in 8 bits"):
        store_frozen_weights(model, strategy, get_adapter("mobilenet_v2"), "int8")


def test_an_int8_run_trains_resumes_bit_identically_and_evaluates(tiny, tmp_path):
    from pathlib import Path

    from ftlab.training import train

    def run(name: str, epochs: int) -> dict:
        return train(None, overrides=tiny(**{"strategy.name": "bias", "train.epochs": epochs,
                                             "train.frozen_weights": "int8",
                                             "train.run_name": name}))

    run("resumed", 1)
    resumed = train(resume=tmp_path / "runs" / "resumed", overrides=["train.epochs=2"])
    straight = run("straight", 2)
    a = torch.load(tmp_path / "runs" / "resumed" / "last.pt", weights_only=True)["model"]
    b = torch.load(Path(straight["run_dir"]) / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_top1"] == straight["test_top1"]
    assert a["features.1.conv.0.0.weight"].dtype == torch.float32  # standard keys and dtypes
    values, scale = quantize(a["features.1.conv.0.0.weight"])  # ... holding int8 weights
    assert torch.equal(dequantize(values, scale), a["features.1.conv.0.0.weight"])
    assert "frozen_weights: int8" in (Path(straight["run_dir"]) / "config.yaml").read_text()
    assert main(["eval", straight["run_dir"], "--output-dir", str(tmp_path / "eval")]) == 0
    evaluated = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert evaluated["top1"] == pytest.approx(straight["test_top1"])


@pytest.mark.parametrize("overrides, message", [
    (["strategy.name=full"], "no weight is frozen to store in 8 bits"),
    (["strategy.name=bias", "train.memory_efficient=false"],
     "set train.memory_efficient=true"),
    (["strategy.name=bias", "train.frozen_weights=int4"], "one of fp32, int8"),
])
def test_bad_int8_settings_are_one_line_and_write_nothing(tiny, tmp_path, capsys, overrides,
                                                          message):
    extra = dict(item.split("=", 1) for item in overrides)
    assert main(["train", *tiny(**{"train.frozen_weights": "int8", **extra})]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_runs_step_memory_is_measured_with_its_frozen_weights(tiny):
    """train_memory.csv of a suite run (`run_memory`) measures the run as it trained."""
    from ftlab.config import load_config
    from ftlab.memory import run_memory

    efficient = {}
    for storage in ("fp32", "int8"):
        config = load_config(None, tiny(**{"strategy.name": "bias",
                                           "train.frozen_weights": storage}))
        rows = run_memory(config, 32, 4)
        efficient[storage] = next(r for r in rows if r.execution == "efficient")
    assert efficient["int8"].frozen_weights_bytes < efficient["fp32"].frozen_weights_bytes / 3
    assert efficient["int8"].peak_bytes < efficient["fp32"].peak_bytes
