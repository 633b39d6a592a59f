"""`ftlab arch`: the network block by block, read from the model — what trains, inserted side
paths, and the activation memory each block keeps (summing to `ftlab memory`'s totals)."""

from __future__ import annotations

import json

import pytest

import ftlab
from ftlab.cli import main
from ftlab.config import StrategyConfig
from ftlab.memory import measure_row
from ftlab.memory.blocks import architecture_record
from ftlab.models import get_adapter, skeleton
from ftlab.runfiles import read_architecture


def test_tinytl_branches_sit_on_the_residual_blocks_and_memory_adds_up():
    record = architecture_record("mobilenet_v2", StrategyConfig(name="tinytl"), 2, 32, 10)
    names = [b.name for b in record.blocks]
    assert names[0] == "features.0" and names[-1] == "classifier.1" and len(names) == 20
    adapter = get_adapter("mobilenet_v2")
    residual = set(adapter.residual_blocks(skeleton("mobilenet_v2")))
    for block in record.blocks:
        assert bool(block.branches) == (block.name in residual), block.name
        for branch in block.branches:
            assert branch["kind"] == "LiteResidual" and branch["name"] == \
                f"{block.name}.lite_residual"
            assert any(layer.startswith("conv 5x5 g=2") or layer.startswith("conv 3x3 g=2") or
                       layer.startswith("conv 1x1 g=2") for layer in branch["layers"])
        if block.name != "classifier.1":  # TinyTL L+B: biases train, weights are frozen
            assert block.params["weights"][0] == 0 and block.params["biases"][0] > 0
    second = record.blocks[2]  # 16 -> 24 channels, stride 2, expansion 6
    assert (second.in_shape, second.out_shape) == ([16, 16, 16], [24, 8, 8])
    assert (second.stride, second.expand) == (2, 6.0)
    for execution, key in (("stock", "stock_bytes"), ("efficient", "efficient_bytes")):
        row = measure_row("mobilenet_v2", "tinytl", 2, 32, execution)
        assert sum(getattr(b, key) for b in record.blocks) == row.measured.activations
    assert sum(b.analytic_bytes for b in record.blocks) == pytest.approx(
        row.analytic.activations, abs=len(record.blocks))
    total = {kind: sum(b.params[kind][0] for b in record.blocks)
             for kind in record.blocks[0].params}
    assert sum(total.values()) == row.trainable_params


def test_last_k_on_resnet_trains_only_its_top_blocks():
    record = architecture_record("resnet18", StrategyConfig(name="last_k", options={"k": 2}),
                                 2, 32, 5)
    trains = {b.name: b.trains for b in record.blocks}
    assert [name for name, t in trains.items() if t] == ["layer4.0", "layer4.1", "fc"]
    assert record.blocks[0].name == "conv1+bn1" and record.blocks[0].kind == "Conv2d+BatchNorm2d"
    # Nothing before the first trainable block needs to keep anything for backward.
    assert all(b.stock_bytes == b.efficient_bytes == 0 for b in record.blocks[:-3])
    assert all(b.analytic_bytes > 0 for b in record.blocks[-3:])


def test_arch_command_for_a_strategy_and_for_a_run(tiny, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["arch", "--strategy", "tinytl", "data.resolution=32", "train.batch_size=2",
                 "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mobilenet_v2 · tinytl · batch 2 at 32 px" in printed
    assert "LiteResidual (13,408 params; avg pool 2, conv 5x5 g=2 32->32" in printed
    record = read_architecture(out / "architecture.json")
    assert record.strategy["name"] == "tinytl" and record.num_classes == 10
    for name in ("architecture.png", "architecture.svg", "architecture.md"):
        assert (out / name).stat().st_size > 0
    summary = ftlab.train(None, overrides=tiny(**{"strategy.name": "bias",
                                                  "train.run_name": "b"}))
    assert main(["arch", summary["run_dir"], "--output-dir", str(tmp_path / "r")]) == 0
    saved = json.loads((tmp_path / "r" / "architecture.json").read_text())
    assert (saved["batch_size"], saved["resolution"], saved["num_classes"]) == (8, 32, 4)
    capsys.readouterr()
    assert main(["arch", str(tmp_path), "--output-dir", str(tmp_path / "x")]) == 2
    assert "is not an ftlab run folder" in capsys.readouterr().err
    assert main(["arch", "--strategy", "nope"]) == 2
    assert main(["arch", "--model", "mobilenet_v2", "--output-dir", str(tmp_path)]) == 2
    assert "already holds other files" in capsys.readouterr().err
