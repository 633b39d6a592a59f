"""Data-parallel training through torchrun on CPU (gloo): same result as one process.

`train.batch_size` is the global batch, split over processes; so two processes that each
train on half of every batch and average gradients must end with the weights one process
reaches on the whole batches. The model is a ResNet-18 (no dropout, whose masks depend on
the local batch shape) with frozen BatchNorm statistics (batch statistics of half a batch
differ from those of the whole one; SyncBatchNorm, which would fix that, needs CUDA).
The optimizer is SGD, whose step is linear in the gradient: Adam divides by the root of the
squared gradient, which turns float round-off in near-zero gradients into steps of up to lr.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torchvision
from conftest import tiny_overrides
from faults.runs import rows

import ftlab
from ftlab.data.loading import SeededShuffleSampler, ShardSampler

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is unavailable")

def _overrides(output_dir: Path, name: str, **extra: object) -> list[str]:
    values = {"model.arch": "resnet18", "strategy.norm_stats": "freeze", "train.epochs": 2,
              "optim.name": "sgd", "optim.lr": 0.01,
              "train.batch_size": 8, "data.synthetic.train_per_class": 10,
              "train.run_name": name, **extra}
    return tiny_overrides(output_dir, **values)


def _torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "ftlab", "train", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _model(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def _assert_same_rows(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    """Metrics rows of two runs whose weights agree up to round-off: the same epochs,
    learning rates and skips. Losses are compared by `_assert_equal_up_to_round_off`; top-1
    and top-5 are left out: a prediction whose two best logits nearly tie flips between
    such runs, by a whole image's share."""
    assert [row.keys() for row in a] == [row.keys() for row in b]
    for row_a, row_b in zip(a, b):
        for key in row_a:
            if "top" not in key and not key.endswith("loss"):
                assert row_a[key] == row_b[key], key


def _losses(run_dir: Path) -> list[float]:
    return [float(row[key]) for row in rows(run_dir) for key in row if key.endswith("loss")]


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The norm of the difference of all floating-point tensors, in float64."""
    return math.sqrt(sum((a[key].double() - b[key].double()).square().sum().item()
                         for key in a if a[key].is_floating_point()))


def _initial(runs: Path, extra: dict[str, object]) -> dict[str, torch.Tensor]:
    """The weights a run made with `extra` starts from (its seed's initialisation)."""
    from ftlab.strategies import prepare_model

    config = ftlab.load_config(None, _overrides(runs, "initial", **extra))
    return prepare_model(config.model.arch, None, config.strategy, 4, config.data.resolution,
                         seed=config.train.seed, load_weights=False).model.state_dict()


def _assert_equal_up_to_round_off(run_dir: Path, runs: Path, name: str,
                                  extra: dict[str, object]) -> None:
    """The weights and losses of `run_dir` are those of the single-process run `name` (made
    with `extra`) up to this machine's round-off: see
    test_two_processes_reach_the_weights_of_one."""
    single, weights = _model(runs / name), _model(run_dir)
    ftlab.train(None, overrides=_overrides(runs, f"{name}-stock", **extra,
                                           **{"train.memory_efficient": False}))
    with torch.backends.mkldnn.flags(enabled=False):  # convolutions that sum in another order
        ftlab.train(None, overrides=_overrides(runs, f"{name}-reference-conv", **extra))
    noise = max(_distance(single, _model(runs / f"{name}-{variant}"))
                for variant in ("stock", "reference-conv"))
    trained = _distance(single, _initial(runs, extra))
    assert noise < 0.01 * trained, f"round-off {noise:.3g} against training's {trained:.3g}"
    distance = _distance(weights, single)
    assert distance <= 4 * noise + 1e-7 * trained, f"{distance:.3g}; round-off {noise:.3g}"
    losses = _losses(runs / name)
    spread = [max(abs(a - b) for a, b in zip(variant, losses, strict=True)) for variant in
              (_losses(runs / f"{name}-{v}") for v in ("stock", "reference-conv"))]
    for got, want in zip(_losses(run_dir), losses, strict=True):  # csv: 8 digits
        assert abs(got - want) <= 4 * max(spread) + 1e-6 * abs(want), (got, want, spread)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
@pytest.mark.parametrize("strategy", ["full", "bias"])
def test_two_processes_reach_the_weights_of_one(tmp_path, strategy):
    """Equal up to round-off, with the tolerance measured here rather than guessed: two
    processes sum each gradient in another order than one, and float32 sums that cancel,
    amplified over the steps (a ReLU whose input is near zero may flip), land further apart
    on some CPUs than on others. Its scale on this machine: how far single-process runs land
    from the single-process run that differ from it only in how they round (stock autograd
    instead of memory-efficient execution, which folds frozen BatchNorms and recomputes;
    convolutions without oneDNN, which sum in another order). A process that missed the
    gradient average, trained a batch twice or took a step of its own would move the weights
    by whole steps: training moves them 100 times further than that round-off at least
    (asserted, or the comparison would say nothing)."""
    runs = tmp_path / "runs"
    extra = {"strategy.name": strategy}
    ftlab.train(None, overrides=_overrides(runs, "single", **extra))
    result = _torchrun(*_overrides(runs, "ddp", **extra))

    single, ddp = _model(runs / "single"), _model(runs / "ddp")
    assert single.keys() == ddp.keys()
    _assert_equal_up_to_round_off(runs / "ddp", runs, "single", extra)
    single_rows = rows(runs / "single")
    assert single_rows[0]["train_loss"] != single_rows[1]["train_loss"], "the model must train"
    _assert_same_rows(rows(runs / "ddp"), rows(runs / "single"))
    summary_single = (runs / "single" / "summary.json").read_text()
    assert '"test_top1"' in summary_single and (runs / "ddp" / "summary.json").is_file()
    assert result.stdout.count("epoch 2/2") == 1, "rank 1 must not print the epoch lines"
    assert "log.txt" in {p.name for p in (runs / "ddp").iterdir()}


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_resumed_distributed_run_equals_uninterrupted(tmp_path):
    """Gradual unfreezing changes the trainable set every epoch, so DDP is rebuilt each time
    (it registers only parameters that require gradients); the resume crosses a change."""
    runs = tmp_path / "runs"
    extra = {"strategy.name": "gradual_unfreeze", "strategy.head_epochs": 1,
             "strategy.epochs_per_stage": 1, "strategy.blocks_per_stage": 2, "train.epochs": 3}
    _torchrun(*_overrides(runs, "whole", **extra))
    _torchrun(*_overrides(runs, "parts", **{**extra, "train.epochs": 1}))
    _torchrun("--resume", str(runs / "parts"), "train.epochs=3")
    ftlab.train(None, overrides=_overrides(runs, "single", **extra))

    whole, parts = _model(runs / "whole"), _model(runs / "parts")
    for key in whole:
        assert torch.equal(whole[key], parts[key]), key
    _assert_equal_up_to_round_off(runs / "whole", runs, "single", extra)
    assert rows(runs / "whole") == rows(runs / "parts")
    _assert_same_rows(rows(runs / "whole"), rows(runs / "single"))


def test_samplers_split_each_global_batch_without_overlap():
    single = list(SeededShuffleSampler(20, seed=3, global_batch=8))
    shares = [list(SeededShuffleSampler(20, 3, 8, rank, 2)) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == 8  # 2 full batches of 4 per process
    for batch in range(2):
        together = shares[0][4 * batch:4 * batch + 4] + shares[1][4 * batch:4 * batch + 4]
        assert together == single[8 * batch:8 * batch + 8]
    evaluated = [list(ShardSampler(11, rank, 2)) for rank in range(2)]
    assert sorted(evaluated[0] + evaluated[1]) == list(range(11))


def test_batch_must_divide_among_processes(tmp_path, monkeypatch, capsys):
    from ftlab.cli import main
    from ftlab.runtime.distributed import Distributed

    monkeypatch.setattr("ftlab.runtime.distributed.from_environment",
                        lambda device_type: Distributed(rank=0, world_size=3))
    code = main(["train", *_overrides(tmp_path / "runs", "odd")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train.batch_size=8 does not divide among 3" in err
    assert not (tmp_path / "runs" / "odd").exists()


def test_sync_batchnorm_needs_cuda(tmp_path, monkeypatch, capsys):
    from ftlab.cli import main
    from ftlab.runtime.distributed import Distributed

    monkeypatch.setattr("ftlab.runtime.distributed.from_environment",
                        lambda device_type: Distributed(rank=0, world_size=2))
    code = main(["train", *_overrides(tmp_path / "runs", "sync",
                                      **{"train.sync_batchnorm": True})])
    assert code == 2
    assert "train.sync_batchnorm=true needs CUDA devices" in capsys.readouterr().err


def test_compile_wraps_the_model_that_trains(tiny, monkeypatch):
    """A stand-in records what torch.compile gets (a real compile: tests/test_compile.py)."""
    compiled: list[torch.nn.Module] = []

    def fake_compile(model: torch.nn.Module) -> torch.nn.Module:
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    ftlab.train(None, overrides=tiny(**{"train.compile": True, "train.epochs": 2}))
    assert len(compiled) == 1, "compiled once, reused while the trainable set stays the same"
    assert isinstance(compiled[0], torchvision.models.MobileNetV2)
