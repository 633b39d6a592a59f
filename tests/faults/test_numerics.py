"""NaN and inf: a poisoned step stops the run (last good checkpoint kept) or is skipped."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ftlab
from faults.runs import rows
from ftlab.errors import TrainingDiverged
from ftlab.assembly import StepSettings, TrainStep
from ftlab.data import LoaderBatches
from ftlab.training.checkpoint import read_checkpoint
from ftlab.training.loop import train_one_epoch
from ftlab.training.progress import Progress


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as the dict on disk, read (checked and upgraded) by ftlab."""
    return read_checkpoint(path).to_dict()


class GradientPoison(nn.CrossEntropyLoss):
    """The loss value stays finite; its gradient is NaN on the chosen calls (sqrt'(0) * 0)."""

    poisoned: set[int] = set()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = super().forward(logits, labels)
        if self.calls in self.poisoned:
            loss = loss + torch.sqrt((logits * 0).sum())
        return loss


def test_nan_gradient_with_a_finite_loss_stops_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch, reliability):
    monkeypatch.setattr(GradientPoison, "poisoned", {6})  # epoch 2, step 2
    monkeypatch.setattr(nn, "CrossEntropyLoss", GradientPoison)
    with pytest.raises(TrainingDiverged, match=r"training diverged: .* in epoch 2; stopped, the "
                                               r"last good checkpoint .*last.pt \(epoch 1\)"):
        ftlab.train(None, overrides=tiny_overrides(tmp_path, **{"train.epochs": 3,
                                                                "train.run_name": "nan"}))
    run_dir = tmp_path / "nan"
    state = load_checkpoint(run_dir / "last.pt")
    assert state["epoch"] == 1 and len(rows(run_dir)) == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    reliability.fault("NaN gradient, finite loss (train.nonfinite=stop)", "epoch 2, step 2",
                      "exit 1, one line; run stopped", "last.pt = epoch 1, all weights finite")


def test_skip_mode_drops_poisoned_steps_and_counts_them(tmp_path, monkeypatch, reliability):
    monkeypatch.setattr(GradientPoison, "poisoned", {6, 7})
    monkeypatch.setattr(nn, "CrossEntropyLoss", GradientPoison)
    summary = ftlab.train(None, overrides=tiny_overrides(tmp_path, **{
        "train.epochs": 3, "train.run_name": "skip", "train.nonfinite": "skip"}))
    run_dir = Path(summary["run_dir"])
    assert [int(r["skipped_steps"]) for r in rows(run_dir)] == [0, 2, 0]
    assert [int(r["skipped_images"]) for r in rows(run_dir)] == [0, 0, 0]
    assert "epoch 2: skipped 2 step(s) whose gradients were not finite" in \
        (run_dir / "log.txt").read_text()
    state = load_checkpoint(run_dir / "last.pt")
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert all(math.isfinite(float(r["train_loss"])) for r in rows(run_dir))
    reliability.fault("NaN gradients (train.nonfinite=skip)", "epoch 2, steps 2 and 3",
                      "steps dropped, counted in metrics.csv skipped_steps; run completed",
                      "every weight finite, losses finite")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_gradient_scaler_absorbs_overflow(reliability):
    """fp16 training's scaler: an overflowing scaled gradient skips the step and lowers the
    scale; the loop neither stops nor lets inf reach the weights."""
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)
    images = torch.randn(16, 8) * 1e3
    loader = DataLoader(TensorDataset(images, torch.randint(0, 3, (16,))), batch_size=8)
    settings = StepSettings(device=torch.device("cpu"), amp_dtype=None, channels_last=False,
                            grad_clip_norm=None, log_every=1)
    step = TrainStep(model, optimizer, scheduler, scaler, nn.CrossEntropyLoss(), settings)
    stats = train_one_epoch(step, LoaderBatches(loader), Progress("none", 16, "overflow"))
    assert math.isfinite(stats.loss) and stats.images == 16
    assert scaler.get_scale() == 2.0**125, "each overflowing step halves the scale"
    for old, new in zip(before, model.parameters()):
        assert torch.equal(old, new), "skipped steps leave the weights alone"
    reliability.fault("fp16 gradient overflow (scale 2^127)", "every step of an epoch",
                      "steps skipped by the GradScaler, scale halved each time; no stop",
                      "weights unchanged and finite")
