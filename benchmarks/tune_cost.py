"""What tuning costs beyond training: pruning's share of the epochs, and the per-trial
overhead of the search (Optuna's ask/tell, the journal storage, locks, bookkeeping).

On the offline mirror (cifar10-mini, MobileNetV2 at 64 px, ImageNet weights):

* **pruning**: a study of `--trials` trials of `--epochs` epochs each, per pruner; the
  epochs its trials trained against `trials x epochs` (all run to the end), and the best
  validation top-1 it found.
* **overhead**: trials of a 1-epoch budget; each trial's wall time against the time spent
  inside `ftlab.train` (building the experiment, training, validating, checkpointing: what a
  plain run costs too). The rest is the search's own cost. Measured in-process, as
  `ftlab tune` runs trials with `parallel: 1`; a worker process (`parallel` > 1) also pays
  its start once, reported separately.

    python benchmarks/tune_cost.py                       # the README/BENCHMARKS figures
    python benchmarks/tune_cost.py --trials 12 --epochs 6 --strategy bias
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

MIRROR = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror"))


def suite_file(folder: Path, name: str, strategy: str, epochs: int, trials: int, pruner: str,
               label_fraction: float, space: dict | None = None) -> Path:
    mirror = MIRROR.resolve()
    suite = {
        "name": name, "output_dir": str(folder),
        "overrides": [
            "data.name=imagefolder", f"data.root={mirror / 'cifar10-mini'}",
            "data.resolution=64", "data.eval_crop_fraction=1.0",
            "data.train_crop_scale=[0.35,1.0]", f"data.label_fraction={label_fraction}",
            f"model.weights={mirror / 'weights' / 'mobilenet_v2_imagenet.pth'}",
            "schedule.gamma=0.7", f"train.epochs={epochs}", "train.batch_size=64",
            "train.progress=none", "train.tensorboard=false"],
        "grid": {"strategies": {strategy: []}},
        "tune": {"trials": trials, "seeds": [0], "pruner": pruner, "startup_trials": 3,
                 **({"space": space} if space else {})},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def search(path: Path):
    """The suite's studies searched in this process; returns their records."""
    from ftlab.suite.expand import load_suite, suite_dir
    from ftlab.tune.final import study_record
    from ftlab.tune.plan import build_plans, tune_config
    from ftlab.tune.study import open_storage, open_study
    from ftlab.tune.worker import work

    suite = load_suite(path)
    tune = tune_config(suite)
    plans = build_plans(suite, path)
    tune_dir = suite_dir(suite, path) / "tune"
    tune_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(None, tune_dir)
    work(plans, storage, tune, suite.name)
    return [study_record(open_study(p, storage, tune, suite.name, 0), p, tune) for p in plans]


def pruning(folder: Path, args: argparse.Namespace) -> list[list[str]]:
    rows = []
    for pruner in args.pruners.split(","):
        path = suite_file(folder, f"prune-{pruner}", args.strategy, args.epochs, args.trials,
                          pruner, args.label_fraction)
        start = time.perf_counter()
        record = search(path)[0]
        seconds = time.perf_counter() - start
        pruned = sum(t.state == "pruned" for t in record.trials)
        rows.append([pruner, str(len(record.trials)), str(pruned),
                     f"{record.epochs_trained} / {record.epochs_without_pruning}",
                     f"{record.epoch_ratio:.0%}", f"{record.best.value:.2f}",
                     f"{seconds:.0f}"])
    return rows


def overhead(folder: Path, args: argparse.Namespace) -> list[list[str]]:
    import ftlab.tune.worker as worker

    rows = []
    for strategy in args.overhead_strategies.split(","):
        inside: list[float] = []
        original = worker._train

        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                inside.append(time.perf_counter() - start)

        worker._train = timed
        trial_times: list[float] = []
        original_run = worker.run_trial

        def timed_trial(*a, **k):
            start = time.perf_counter()
            try:
                return original_run(*a, **k)
            finally:
                trial_times.append(time.perf_counter() - start)

        worker.run_trial = timed_trial
        try:
            path = suite_file(folder, f"overhead-{strategy}", strategy, 1, args.overhead_trials,
                              "none", args.label_fraction,
                              space={"optim.lr": {"low": 9.9e-4, "high": 1.01e-3}})
            start = time.perf_counter()
            search(path)
            total = time.perf_counter() - start
        finally:
            worker._train, worker.run_trial = original, original_run
        extra = [t - i for t, i in zip(trial_times, inside)]
        setup = total - sum(trial_times)  # opening the storage and the study, once
        rows.append([strategy, str(len(inside)), f"{sum(inside) / len(inside):.1f}",
                     f"{sum(extra) / len(extra):.3f}",
                     f"{100 * sum(extra) / sum(inside):.2f} %", f"{setup:.2f}"])
    return rows


def worker_start() -> float:
    """Seconds for a new Python process to import what a tuning worker needs."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ftlab.tune.run"], check=True)
    return time.perf_counter() - start


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="linear_probe", help="strategy of the pruning study")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--pruners", default="successive_halving,hyperband")
    parser.add_argument("--label-fraction", type=float, default=0.3)
    parser.add_argument("--overhead-strategies", default="linear_probe,full")
    parser.add_argument("--overhead-trials", type=int, default=3)
    args = parser.parse_args()
    if not (MIRROR / "cifar10-mini").is_dir():
        sys.exit(f"the offline mirror is not at {MIRROR}; set FTLAB_MIRROR")
    import logging

    logging.getLogger("ftlab").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"Pruning: {args.strategy}, {args.trials} trials of {args.epochs} epochs "
              f"(label_fraction {args.label_fraction}), optim.lr searched\n")
        print(table(["pruner", "trials", "pruned", "epochs trained / all to the end",
                     "share", "best val top-1 %", "wall s"], pruning(folder, args)))
        print(f"\nOverhead per trial: {args.overhead_trials} trials of 1 epoch each "
              f"(label_fraction {args.label_fraction})\n")
        print(table(["strategy", "trials", "s in ftlab.train per trial",
                     "s of search per trial", "overhead", "s to open the study (once)"],
                    overhead(folder, args)))
        print(f"\nA worker process's start (parallel > 1; once per worker): "
              f"{worker_start():.1f} s")


if __name__ == "__main__":
    main()
