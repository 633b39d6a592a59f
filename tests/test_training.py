"""End-to-end training on generated data: the files a run writes, resume, and failures."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import ftlab
from ftlab.cli import main
from ftlab.config import config_to_yaml
from ftlab.errors import CheckpointWriteError, ConfigError, RunDirError
from ftlab.runfiles import RunFolder
from ftlab.strategies import strategy_class
from ftlab.training.checkpoint import read_checkpoint


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as the dict on disk, read (checked and upgraded) by ftlab."""
    return read_checkpoint(path).to_dict()


TIME_COLUMNS = {"epoch_time_s", "train_time_s", "images_per_s"}


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _without_times(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


def _weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / name, weights_only=True)["model"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_run_writes_config_metrics_summary_and_checkpoints(tiny, tmp_path):
    summary = ftlab.train(None, overrides=tiny(**{"train.epochs": 3, "train.tensorboard": True,
                                                  "train.run_name": "smoke"}))
    run_dir = tmp_path / "runs" / "smoke"
    expected = {"config.yaml", "metrics.csv", "summary.json", "last.pt", "best.pt", "log.txt",
                "tensorboard"}
    assert expected <= {p.name for p in run_dir.iterdir()}
    assert not list(run_dir.glob(".*.tmp")), "no temporary files may be left behind"

    rows = _rows(run_dir)
    assert list(rows[0]) == ["epoch", "lr/lr_x1", "train_loss", "train_top1", "val_loss",
                             "val_top1", "val_top5", "epoch_time_s", "train_time_s",
                             "images_per_s", "skipped_images", "skipped_steps"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    lrs = [float(r["lr/lr_x1"]) for r in rows]
    lr = strategy_class("full").default_lr
    assert lrs == pytest.approx([lr, lr * 0.95, lr * 0.95**2])  # exponential, per epoch
    for row in rows:
        assert 0 <= float(row["val_top1"]) <= 100 and float(row["images_per_s"]) > 0

    assert json.loads((run_dir / "summary.json").read_text()) == summary
    val = [float(r["val_top1"]) for r in rows]
    assert summary["best_epoch"] == val.index(max(val)) + 1
    assert summary["best_val_top1"] == pytest.approx(max(val), abs=1e-4)
    assert summary["epochs"] == 3 and summary["status"] == "complete"
    assert summary["split_sizes"] == {"train": 32, "val": 8, "test": 16}
    assert summary["trainable_params"] == summary["total_params"] > 2_000_000
    assert 0 <= summary["test_top1"] <= summary["test_top5"] <= 100
    assert summary["wall_time_s"] >= summary["train_time_s"] > 0

    best = load_checkpoint(run_dir / "best.pt")
    assert best["epoch"] == summary["best_epoch"] and best["strategy"] == "full"
    assert best["config"]["train"]["epochs"] == 3
    assert best["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert ftlab.load_config(run_dir / "config.yaml").train.run_name == "smoke"
    assert "epoch 3/3" in (run_dir / "log.txt").read_text()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_checkpoint_loads_into_a_plain_torchvision_model(tiny, tmp_path):
    ftlab.train(None, overrides=tiny(**{"train.epochs": 1, "train.run_name": "plain"}))
    model = torchvision.models.mobilenet_v2(num_classes=4)
    model.load_state_dict(_weights(tmp_path / "runs" / "plain", "best.pt"))


def test_tensorboard_holds_the_epoch_scalars(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ftlab.train(None, overrides=tiny(**{"train.tensorboard": True, "train.run_name": "tb"}))
    events = EventAccumulator(str(tmp_path / "runs" / "tb" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/top1", "val/top5", "lr/lr_x1"} <= tags
    assert [e.step for e in events.Scalars("val/top1")] == [1, 2]


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_other_families_train_end_to_end(tiny, tmp_path, arch):
    summary = ftlab.train(None, overrides=tiny(**{"model.arch": arch, "train.epochs": 1}))
    assert summary["arch"] == arch and summary["num_classes"] == 4
    head = {"resnet18": "fc.weight", "mobilenet_v3_small": "classifier.3.weight",
            "efficientnet_b0": "classifier.1.weight"}[arch]
    state = _weights(Path(summary["run_dir"]))
    assert state[head].shape[0] == 4
    torchvision.models.get_model(arch, num_classes=4).load_state_dict(state)


def test_finished_run_trains_longer_with_more_epochs(tiny, tmp_path):
    first = ftlab.train(None, overrides=tiny(**{"train.epochs": 1, "train.run_name": "grow"}))
    longer = ftlab.train(resume=first["run_dir"], overrides=["train.epochs=2"])
    assert longer["epochs"] == 2
    straight = ftlab.train(None, overrides=tiny(**{"train.epochs": 2, "train.run_name": "two"}))
    grown = Path(first["run_dir"])
    _assert_same_weights(_weights(grown), _weights(Path(straight["run_dir"])))
    assert _without_times(_rows(grown)) == _without_times(_rows(Path(straight["run_dir"])))
    assert ftlab.load_config(grown / "config.yaml").train.epochs == 2
    again = ftlab.train(resume=grown)  # complete: nothing left to train, same result
    assert again["test_top1"] == longer["test_top1"] and again["epochs"] == 2


def test_resume_refuses_to_change_the_experiment(tiny, tmp_path):
    summary = ftlab.train(None, overrides=tiny())
    with pytest.raises(RunDirError, match="cannot change optim.lr when resuming"):
        ftlab.train(resume=summary["run_dir"], overrides=["optim.lr=0.1"])
    with pytest.raises(ConfigError, match="has already trained 2 epochs; train.epochs must be at "
                                          "least 2"):
        ftlab.train(resume=summary["run_dir"], overrides=["train.epochs=1"])
    with pytest.raises(RunDirError, match="cannot resume .*nowhere: no config.yaml there"):
        ftlab.train(resume=tmp_path / "nowhere")


def test_existing_run_folder_is_never_overwritten_by_accident(tiny, tmp_path, capsys):
    overrides = tiny(**{"train.epochs": 1, "train.run_name": "mine"})
    ftlab.train(None, overrides=overrides)
    run_dir = tmp_path / "runs" / "mine"
    before = (run_dir / "last.pt").read_bytes()
    assert main(["train", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ftlab: error: run folder {run_dir} already exists; pass --resume")
    assert (run_dir / "last.pt").read_bytes() == before
    (run_dir / "notes.txt").write_text("keep?")
    assert main(["train", *overrides, "--overwrite"]) == 0
    assert not (run_dir / "notes.txt").exists() and (run_dir / "summary.json").exists()
    foreign = tmp_path / "runs" / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    overrides = tiny(**{"train.epochs": 1, "train.run_name": "foreign"})
    assert main(["train", *overrides, "--overwrite"]) == 2
    assert "not an ftlab run folder" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_a_run_folder_prepared_with_its_config_alone_starts_from_it(tiny, tmp_path, capsys):
    """`ftlab suite` writes each run's config.yaml before any run starts, then runs
    `ftlab train RUN/config.yaml`: that folder is the run's own, not an existing run."""
    config = ftlab.load_config(None, tiny(**{"train.epochs": 1, "train.run_name": "prepared"}))
    run_dir = tmp_path / "runs" / "prepared"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(config))
    (run_dir / ".lock").touch()  # left by a process killed before it wrote anything
    copy = tmp_path / "copy.yaml"
    copy.write_text((run_dir / "config.yaml").read_text())
    assert main(["train", str(copy)]) == 2  # another file naming the folder: as before
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert main(["train", str(run_dir / "config.yaml")]) == 0
    assert RunFolder(run_dir).summary["epochs"] == 1
    before = (run_dir / "last.pt").read_bytes()
    assert main(["train", str(run_dir / "config.yaml")]) == 2  # now it has trained
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert (run_dir / "last.pt").read_bytes() == before
    busy = tmp_path / "runs" / "busy"
    busy.mkdir()
    (busy / "config.yaml").write_text(config_to_yaml(
        ftlab.load_config(None, tiny(**{"train.run_name": "busy"}))))
    (busy / "notes.txt").write_text("keep")
    assert main(["train", str(busy / "config.yaml")]) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert sorted(p.name for p in busy.iterdir()) == ["config.yaml", "notes.txt"]


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tiny, tmp_path, monkeypatch):
    first = ftlab.train(None, overrides=tiny(**{"train.epochs": 1, "train.run_name": "full"}))
    run_dir = Path(first["run_dir"])
    real_fsync = os.fsync

    def disk_full_for_checkpoints(fd: int) -> None:
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("ftlab.fileio.os.fsync", disk_full_for_checkpoints)
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint .*last.pt \(No "
                                                   r"space left on device\); the previous "
                                                   "checkpoint is intact"):
        ftlab.train(resume=run_dir, overrides=["train.epochs=2"])
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert not list(run_dir.glob(".*.tmp"))
    monkeypatch.setattr("ftlab.fileio.os.fsync", real_fsync)
    resumed = ftlab.train(resume=run_dir, overrides=["train.epochs=2"])
    straight = ftlab.train(None, overrides=tiny(**{"train.epochs": 2, "train.run_name": "two"}))
    _assert_same_weights(_weights(run_dir), _weights(Path(straight["run_dir"])))
    assert resumed["test_top1"] == straight["test_top1"]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}

    class PoisonedLoss(nn.CrossEntropyLoss):
        def forward(self, logits, labels):
            calls["n"] += 1
            loss = super().forward(logits, labels)
            return loss * float("nan") if calls["n"] > 4 else loss  # 4 steps = epoch 1

    monkeypatch.setattr(nn, "CrossEntropyLoss", PoisonedLoss)
    overrides = tiny(**{"train.epochs": 3, "train.run_name": "nan"})
    assert main(["train", *overrides]) == 1
    err = capsys.readouterr().err.strip()
    run_dir = tmp_path / "runs" / "nan"
    assert err == (f"ftlab: error: training diverged: loss became nan by step 4 in epoch 2; "
                   f"stopped, the last good checkpoint {run_dir / 'last.pt'} (epoch 1) is kept; "
                   "lower optim.lr, set train.grad_clip_norm, or set train.nonfinite=skip to "
                   "drop such steps")
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert len(_rows(run_dir)) == 1 and not (run_dir / "summary.json").exists()
    assert all(torch.isfinite(t).all() for t in _weights(run_dir).values())


def test_plain_progress_lines_when_not_a_terminal(tiny, tmp_path):
    summary = ftlab.train(None, overrides=tiny(**{"train.progress": "plain", "train.log_every": 2,
                                                  "train.epochs": 1}))
    log = (Path(summary["run_dir"]) / "log.txt").read_text()
    assert "epoch 1/1 step 2  16/32 images  loss" in log
    assert "ftlab run summary" in log


def test_api_accepts_config_objects_mappings_and_files(tiny, tmp_path):
    config = ftlab.load_config(None, tiny(**{"train.epochs": 1, "train.run_name": "obj"}))
    assert ftlab.train(config)["run"] == "obj"
    mapping = {"train": {"run_name": "map"}}
    assert ftlab.train(mapping, overrides=tiny(**{"train.epochs": 1}))["run"] == "map"
    with pytest.raises(ConfigError, match="either a config or --resume"):
        ftlab.train(config, resume=tmp_path)


def test_without_validation_the_last_epoch_is_tested(tiny):
    summary = ftlab.train(None, overrides=tiny(**{"data.val_fraction": 0}))
    assert summary["best_val_top1"] is None and summary["best_epoch"] == 2
    assert summary["split_sizes"]["val"] == 0


def test_loop_options_reach_the_training_step(tiny):
    from ftlab.assembly.experiment import build_experiment

    config = ftlab.load_config(None, tiny(**{"train.label_smoothing": 0.1,
                                             "train.grad_clip_norm": 0.5, "train.amp": "bf16",
                                             "optim.name": "sgd", "optim.momentum": 0}))
    exp = build_experiment(config)
    assert exp.loss_fn.label_smoothing == 0.1
    assert exp.settings.grad_clip_norm == 0.5 and exp.settings.amp_dtype == torch.bfloat16
    assert exp.settings.device.type == "cpu" and not exp.settings.channels_last


def test_gradient_clipping_bounds_the_update(tiny):
    from ftlab.assembly.experiment import build_experiment
    from ftlab.training.loop import train_one_epoch
    from ftlab.training.progress import Progress

    config = ftlab.load_config(None, tiny(**{"train.grad_clip_norm": 1e-3, "optim.name": "sgd",
                                             "optim.momentum": 0, "optim.lr": 1.0,
                                             "data.synthetic.train_per_class": 2,
                                             "data.val_fraction": 0}))
    exp = build_experiment(config)
    before = torch.cat([p.detach().flatten().double() for p in exp.model.parameters()])
    exp.strategy.set_train_mode(exp.model)
    train_one_epoch(exp.train_step(exp.model), exp.train_loader, Progress("none", 8, "clip"))
    after = torch.cat([p.detach().flatten().double() for p in exp.model.parameters()])
    assert len(exp.train_loader) == 1  # the norm in float64: float32's loses 3e-4 of it
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)  # lr x clip norm


def test_bf16_autocast_trains_on_cpu(tiny):
    summary = ftlab.train(None, overrides=tiny(**{"train.amp": "bf16", "train.epochs": 1}))
    assert summary["epochs"] == 1 and 0 <= summary["test_top1"] <= 100


def test_progress_bar_on_request(tiny, capsys):
    ftlab.train(None, overrides=tiny(**{"train.progress": "bar", "train.epochs": 1}))
    assert "epoch 1/1" in capsys.readouterr().err


def test_corrupt_resume_files_are_clear_errors(tiny, capsys):
    summary = ftlab.train(None, overrides=tiny(**{"train.epochs": 1}))
    run_dir = Path(summary["run_dir"])
    last = run_dir / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    assert main(["train", "--resume", str(run_dir), "train.epochs=2"]) == 2
    assert capsys.readouterr().err == (f"ftlab: error: checkpoint {last} cannot be read: it is "
                                       "truncated, corrupt or not a PyTorch file\n")
    (run_dir / "config.yaml").write_text("train: {epochs: [\n")
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "is not valid YAML" in capsys.readouterr().err


def test_a_run_without_test_evaluation_never_reads_a_test_batch(tiny, monkeypatch):
    """train.evaluate_test=false (tuning trials): no test loader at all, and the summary says
    so instead of giving numbers."""
    from ftlab.assembly import loaders

    built = []
    original = loaders.eval_loader
    monkeypatch.setattr(loaders, "eval_loader",
                        lambda data, *a, **k: built.append(len(data)) or original(data, *a, **k))
    summary = ftlab.train(None, overrides=tiny(**{"train.evaluate_test": False}))
    assert summary["status"] == "complete" and summary["epochs"] == 2
    assert summary["test_top1"] is None and summary["test_checkpoint"] is None
    assert summary["best_val_top1"] is not None
    assert built == [8]  # the val split only (4 classes x 10 images x 0.2), no test loader


def test_an_epoch_hook_ends_a_run_early_and_sees_its_whole_history_on_resume(tiny):
    seen = []

    def prune_after_first(row):
        seen.append(row["epoch"])
        return row["epoch"] == 1

    summary = ftlab.train(None, overrides=tiny(**{"train.epochs": 3}), on_epoch=prune_after_first)
    assert summary["status"] == "pruned" and summary["epochs"] == 1
    assert summary["epochs_planned"] == 3 and summary["test_top1"] is not None
    assert seen == [1]
    seen.clear()
    resumed = ftlab.train(resume=summary["run_dir"],
                          on_epoch=lambda row: seen.append(row["epoch"]) or False)
    assert resumed["status"] == "complete" and resumed["epochs"] == 3
    assert seen == [1, 2, 3]  # epoch 1 came from the checkpoint, 2 and 3 were trained
