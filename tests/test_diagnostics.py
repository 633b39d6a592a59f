"""Warnings for runs that train without learning: degenerate pretrained features, and a
first-epoch loss still at ln(C)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import ftlab
from ftlab.training.diagnostics import check_features, still_loss_warning


def test_zero_or_constant_features_are_degenerate():
    generator = torch.Generator().manual_seed(0)
    varied = torch.rand(16, 1280, generator=generator)
    assert not check_features(varied, 64, 224).degenerate
    zeros = torch.zeros(16, 1280)
    zeros[3, 7] = 0.5  # one image, one feature: 0.08 % of the features vary
    check = check_features(zeros, 32, 224)
    assert check.degenerate and check.zero_share == pytest.approx(1 - 1 / (16 * 1280))
    warning = check.warning()
    assert warning is not None and "\n" not in warning
    assert "at 32 px" in warning and "trained on 224 px inputs" in warning
    assert "raise data.resolution" in warning
    same_for_all = torch.rand(1, 1280, generator=generator).expand(16, 1280)
    assert check_features(same_for_all, 32, 224).degenerate
    assert check_features(varied, 64, 224).warning() is None


def test_a_loss_still_at_ln_c_after_the_first_epoch_is_reported():
    chance = math.log(10)
    warning = still_loss_warning(10, train_loss=2.31, val_loss=chance)
    assert warning is not None and "validation loss has not moved" in warning
    assert "ln(10) = 2.303" in warning and "optim.lr" in warning
    assert still_loss_warning(10, train_loss=2.0, val_loss=1.2) is None
    assert "training loss" in still_loss_warning(10, train_loss=2.5, val_loss=None)
    assert still_loss_warning(10, train_loss=1.9, val_loss=None) is None
    assert still_loss_warning(10, train_loss=math.nan, val_loss=None) is None


def test_a_run_without_pretrained_weights_skips_the_feature_check(tiny):
    summary = ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))
    assert summary["feature_check"] is None
    assert isinstance(summary["warnings"], list)


@pytest.mark.mirror
@pytest.mark.parametrize("resolution, degenerate", [(32, True), (64, False)])
def test_pretrained_features_are_checked_on_real_images(mirror, tmp_path, resolution,
                                                        degenerate):
    """Measured on cifar10-mini with the mirror's weights: at 32 px 0.1 % of the 1280 pooled
    features vary across images (99.9 % are zero), at 64 px 91 %."""
    summary = ftlab.train(None, overrides=[
        "data.name=imagefolder", f"data.root={mirror / 'cifar10-mini'}",
        f"data.resolution={resolution}", "data.label_fraction=0.02", "data.val_fraction=0.02",
        f"model.weights={mirror / 'weights' / 'mobilenet_v2_imagenet.pth'}",
        "strategy.name=linear_probe", "train.epochs=1", "train.batch_size=32",
        f"train.output_dir={tmp_path}", "train.progress=none", "train.tensorboard=false"])
    check = summary["feature_check"]
    assert check["degenerate"] is degenerate and check["expected_resolution"] == 224
    assert (check["varying_share"] < 0.01) if degenerate else (check["varying_share"] > 0.5)
    feature_warnings = [w for w in summary["warnings"] if "degenerate pretrained" in w]
    assert len(feature_warnings) == int(degenerate)
    log = (Path(summary["run_dir"]) / "log.txt").read_text(encoding="utf-8")
    assert ("warning: degenerate pretrained features at 32 px" in log) is degenerate
    if degenerate:
        assert any("has not moved from its starting value" in w for w in summary["warnings"])
    saved = torch.load(Path(summary["run_dir"]) / "last.pt", weights_only=True)
    assert saved["diagnostics"]["warnings"] == summary["warnings"]
