"""The PEFT strategies (lora, dora, loha, lokr, ia3, oft): the layers they adapt by role,
what they refuse, merging for export, and a missing peft. The walks over every strategy
(training, resume, gradients under memory-efficient execution, timm) are in
test_strategies.py, test_memory.py and test_timm.py."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import ftlab
from ftlab.config import StrategyConfig
from ftlab.errors import ConfigError, ExportError
from ftlab.models import build_model
from ftlab.models.adapters import classify_layers
from ftlab.strategies import get_strategy
from ftlab.strategies.peft_base import PEFT_EXTRA

PEFT_METHODS = ("lora", "dora", "loha", "lokr", "ia3", "oft")


def _prepared(name: str, arch: str = "mobilenet_v2", **options):
    pytest.importorskip("peft", reason=f"needs peft ({PEFT_EXTRA})")
    built = build_model(arch, None, 5, pretrained=False, seed=0)
    strategy = get_strategy(StrategyConfig(name=name, options=options))
    trainable = strategy.prepare(built.model, built.adapter, input_size=64)
    return built, strategy, trainable


def test_roles_sort_convolutions_by_geometry_and_linears_by_their_module():
    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8),
                          nn.Conv2d(8, 8, 1), Attention(), nn.Linear(8, 16), nn.Linear(16, 4))
    roles = classify_layers(model, head="5")
    assert roles == {"pointwise": ["2"], "conv": ["0"], "depthwise": ["1"],
                     "qkv": ["3.qkv"], "proj": ["3.proj"], "mlp": ["4"]}


def test_lora_wraps_exactly_the_layers_of_its_roles_and_trains_adapters_and_head():
    built, strategy, trainable = _prepared("lora", target="pointwise", r=4)
    model, adapter = built.model, built.adapter
    pointwise = build_model("mobilenet_v2", None, 5, pretrained=False).adapter.layer_roles(
        build_model("mobilenet_v2", None, 5, pretrained=False).model)["pointwise"]
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "base_layer")]
    assert wrapped == pointwise
    head = adapter.head_name(model)
    expected = 0
    for name in wrapped:
        base = model.get_submodule(name).base_layer
        expected += 4 * (base.in_channels + base.out_channels)  # A: in -> r, B: r -> out
    adapters = [n for n in trainable if not n.startswith(head + ".")]
    assert all(".lora_A." in n or ".lora_B." in n for n in adapters)
    assert sum(p.numel() for n, p in model.named_parameters() if n in adapters) == expected
    assert {n for n in trainable if n.startswith(head + ".")} == {f"{head}.weight",
                                                                   f"{head}.bias"}


def test_bias_option_adds_bitfit_to_an_adapter():
    _, _, plain = _prepared("ia3")
    _, _, with_bias = _prepared("ia3", bias=True)
    added = set(with_bias) - set(plain)
    assert added and all(n.endswith("bias") for n in added)


@pytest.mark.parametrize("options, message", [
    ({"r": 0}, "strategy.r=0 is not allowed"),
    ({"target": "pointwise", "r": 64}, "strategy.r=64 is larger than the width of layer"),
    ({"target": "qkv"}, "MobileNetV2 has no qkv layers; it has pointwise (34), conv (1), "
                        "depthwise (17)"),
    ({"target": "pointwise+attention"}, "strategy.target='pointwise+attention' is not "
                                        "allowed: roles joined with +"),
    ({"target": "depthwise"}, "strategy lora cannot adapt the layers of "
                              "strategy.target=depthwise: peft says: Targeting a Conv2d with "
                              "groups=32 and rank 8"),
])
def test_impossible_settings_are_one_line_naming_the_option(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("+", r"\+")) as caught:
        _prepared("lora", **options)
    assert "\n" not in str(caught.value)


def test_oft_refuses_larger_kernels_named_and_leaves_them_out_of_auto(caplog):
    with pytest.raises(ConfigError, match="strategy oft adapts 1x1 convolutions and linear "
                                          "layers only, not features.0.0"):
        _prepared("oft", target="conv")
    with caplog.at_level(logging.WARNING):
        built, _, _ = _prepared("oft")
    assert "strategy oft leaves 1 of the layers strategy.target=auto selects unadapted" \
        in caplog.text
    assert not hasattr(built.model.get_submodule("features.0.0"), "base_layer")


def test_adapting_depthwise_convolutions_says_what_it_adds_against_their_weights(caplog):
    with caplog.at_level(logging.INFO, logger="ftlab.strategies.peft_base"):
        built, _, _ = _prepared("ia3", target="depthwise")
    own = added = 0
    for module in built.model.modules():
        base = getattr(module, "base_layer", None)
        if base is not None:
            own += base.weight.numel()
            added += base.out_channels  # one scale per output channel
    assert f"ia3 on depthwise convolutions adds {added:,} parameters against their own " \
        f"{own:,}" in caplog.text


def test_a_missing_peft_is_one_line_naming_the_extra(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(ConfigError, match=r"strategy.name=lora needs peft, which is not "
                                          r"installed: pip install 'ftlab\[peft\]'"):
        ftlab.train(None, overrides=tiny(**{"strategy.name": "lora", "train.epochs": 1}))
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing written


@pytest.mark.parametrize("name", ["lora", "ia3"])
def test_export_merges_adapters_into_the_architectures_own_weights(tiny, tmp_path, name):
    pytest.importorskip("peft", reason=f"needs peft ({PEFT_EXTRA})")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file
    from torchvision.models import mobilenet_v2

    run = ftlab.train(None, overrides=tiny(**{"strategy.name": name, "train.epochs": 1}))
    result = ftlab.export(run["run_dir"], "safetensors", tmp_path / "merged.safetensors")
    state = load_file(str(result.path))
    assert set(state) == set(mobilenet_v2(num_classes=4).state_dict())  # plain torchvision
    assert result.check["max_abs_logit_difference"] <= 1e-4  # against the unmerged network
    trained = torch.load(Path(run["run_dir"]) / "best.pt", weights_only=True)["model"]
    wrapped = [k[: -len(".base_layer.weight")] for k in trained if k.endswith("base_layer.weight")]
    assert wrapped and any(not torch.equal(state[f"{k}.weight"], trained[f"{k}.base_layer.weight"])
                           for k in wrapped)  # the update is in the exported weights


def test_export_refuses_in_one_line_where_peft_cannot_merge(tiny, tmp_path, monkeypatch):
    peft = pytest.importorskip("peft", reason=f"needs peft ({PEFT_EXTRA})")
    pytest.importorskip("safetensors")
    run = ftlab.train(None, overrides=tiny(**{"strategy.name": "lora", "train.epochs": 1}))

    def refuse(self, *args, **kwargs):
        raise ValueError("cannot merge this layer\nmore")

    monkeypatch.setattr(peft.tuners.lora.layer.Conv2d, "merge", refuse)
    output = tmp_path / "merged.safetensors"
    with pytest.raises(ExportError, match=r"strategy lora's adapter on features\.\S+ cannot "
                                          r"be merged into its weights \(peft: cannot merge "
                                          r"this layer\); export to onnx or torchscript"):
        ftlab.export(run["run_dir"], "safetensors", output)
    assert not output.exists()


def test_diff_compares_a_peft_run_through_its_merged_weights(tiny):
    pytest.importorskip("peft", reason=f"needs peft ({PEFT_EXTRA})")
    from ftlab.analysis.diff import diff
    from ftlab.analysis.sources import load_network
    from ftlab.config import DiffConfig

    lora = ftlab.train(None, overrides=tiny(**{"strategy.name": "lora", "train.epochs": 1,
                                               "train.run_name": "lora"}))
    bias = ftlab.train(None, overrides=tiny(**{"strategy.name": "bias", "train.epochs": 1,
                                               "train.run_name": "bias"}))
    result = diff(DiffConfig(a=lora["run_dir"], b=bias["run_dir"], probe_size=8))
    layers = {row.layer for row in result.rows}
    plain = {row.layer for row in diff(DiffConfig(a=bias["run_dir"], b=bias["run_dir"],
                                                  probe_size=8)).rows}
    assert layers == plain and not any("base_layer" in n or "lora_" in n for n in layers)
    assert result.cka is not None  # the representations were compared too
    merged = load_network(lora["run_dir"]).state
    trained = torch.load(Path(lora["run_dir"]) / "best.pt", weights_only=True)["model"]
    bases = [k.replace(".base_layer.weight", ".weight") for k in trained
             if k.endswith(".base_layer.weight")]
    assert bases and any(not torch.equal(merged[k], trained[k.replace(".weight",
                                                                      ".base_layer.weight")])
                         for k in bases)  # the update is in the weights compared


def test_dora_leaves_out_layers_with_dead_channels_which_it_would_divide_by_zero(caplog):
    pytest.importorskip("peft", reason=f"needs peft ({PEFT_EXTRA})")
    built = build_model("mobilenet_v2", None, 5, pretrained=False, seed=0)
    with torch.no_grad():
        built.model.features[0][0].weight[:2].zero_()  # two dead stem filters, as pretrained
    strategy = get_strategy(StrategyConfig(name="dora", options={"target": "conv"}))
    with pytest.raises(ConfigError, match=r"strategy dora cannot adapt layer features\.0\.0: "
                                          r"2 of its output channels have all-zero weights"):
        strategy.prepare(built.model, built.adapter, input_size=64)
    built = build_model("mobilenet_v2", None, 5, pretrained=False, seed=0)
    with torch.no_grad():
        built.model.features[0][0].weight[:2].zero_()
    with caplog.at_level(logging.WARNING):
        get_strategy(StrategyConfig(name="dora")).prepare(built.model, built.adapter, 64)
    assert "strategy dora leaves 1 of the layers strategy.target=auto selects unadapted" \
        in caplog.text
    assert torch.isfinite(built.model(torch.randn(2, 3, 64, 64))).all()


def test_arch_draws_each_adapter_as_one_side_path_with_its_rank_and_parameters():
    """`ftlab arch` on a LoRA model: one side path per adapted layer (peft's A and B
    together), named by method and rank, described by the layer it adapts, its parameters
    those of its A and B."""
    from ftlab.memory.blocks import architecture_record

    record = architecture_record("mobilenet_v2", StrategyConfig(name="lora", options={"r": 4}),
                                 2, 32, 5)
    branches = [b for block in record.blocks for b in block.branches]
    first = record.blocks[0].branches
    assert len(first) == 1 and first[0]["kind"] == "lora r=4"
    assert first[0]["layers"] == ["on conv 3x3 s2 3->32"]
    assert first[0]["params"] == 4 * 3 * 9 + 32 * 4  # A: 3x3 conv 3 -> 4, B: 1x1 4 -> 32
    model = _prepared("lora", r=4)[0].model
    adapted = [n for n, m in model.named_modules() if hasattr(m, "base_layer")]
    assert len(branches) == len(adapted)
    assert sum(b["params"] for b in branches) == sum(
        p.numel() for n, p in model.named_parameters() if "lora_" in n)
