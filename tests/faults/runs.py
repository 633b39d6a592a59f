"""Helpers of the fault tests: a small deterministic run, starting it, finishing it, and
comparing its result with a clean run's."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

RUN = {"train.epochs": 3, "data.synthetic.train_per_class": 10, "train.eval_batch_size": 4}
"""32 training images in batches of 8: 4 steps per epoch, 12 in all; 2 validation batches
per epoch and 4 test batches; at least 8 atomic writes (config twice, metrics, checkpoints)."""
TIME_COLUMNS = {"epoch_time_s", "train_time_s", "images_per_s"}
VERIFIED = "last.pt and best.pt weights, metrics.csv, test top-1 equal to a clean run's"


def ftlab_train(*args: str, failpoints: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FTLAB_FAILPOINTS"}
    if failpoints:
        env["FTLAB_FAILPOINTS"] = failpoints
    return subprocess.run([sys.executable, "-m", "ftlab", "train", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def finish(run_dir: Path, overrides: list[str]) -> int:
    """Resume (or start again, if the run never wrote its config) until complete: in this
    process, which is a fresh one for the run folder (the interrupted one is gone)."""
    import ftlab

    attempts = 0
    while not (run_dir / "summary.json").is_file():
        attempts += 1
        assert attempts <= 3, "the run should complete after one more start"
        if (run_dir / "config.yaml").is_file():
            ftlab.train(resume=run_dir)
        else:
            ftlab.train(None, overrides=overrides)
    return attempts


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS}
                for row in csv.DictReader(handle)]


def assert_same_result(run_dir: Path, clean: Path) -> None:
    for name in ("last.pt", "best.pt"):
        got = torch.load(run_dir / name, weights_only=True)["model"]
        want = torch.load(clean / name, weights_only=True)["model"]
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), f"{name}: {key}"
    assert rows(run_dir) == rows(clean)
    got, want = (json.loads((d / "summary.json").read_text()) for d in (run_dir, clean))
    assert (got["test_top1"], got["best_epoch"]) == (want["test_top1"], want["best_epoch"])
    assert not list(run_dir.glob(".*.tmp")), "no half-written file may be left behind"
