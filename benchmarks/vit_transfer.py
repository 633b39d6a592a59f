"""A tuned comparison of strategies on a Vision Transformer, with weights made here.

The offline mirror has no ViT weights and the hubs are out of reach, so this benchmark makes
its own transfer task from cifar10-mini: a ViT-Tiny/16 (timm, random init) is trained from
scratch on five of its classes (airplane, automobile, bird, cat, deer; the *source*), and its
best checkpoint becomes the pretrained weights that `ftlab tune` transfers to the other five
(dog, frog, horse, ship, truck; the *target*): each strategy's learning rate searched on
validation data, its best setting trained with seeds and tested, test top-1 against the
training step's memory (ftlab's execution and stock autograd), all from the suite report.
The source run is cached in `--cache`, so a second run only tunes. What it measures is how
the strategies rank when the backbone is a transformer whose features come from a related
task, at a small scale; the absolute accuracies are those of a ViT trained on 2,500 images.

    python benchmarks/vit_transfer.py                      # BENCHMARKS.md's figures
    python benchmarks/vit_transfer.py --strategies full,linear_probe,bias,lora,ssf,vpt \
        --trials 6 --seeds 0,1,2                           # a wider comparison
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

MIRROR = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror")).resolve()
ARCH = "timm:vit_tiny_patch16_224"
SOURCE = ("airplane", "automobile", "bird", "cat", "deer")
TARGET = ("dog", "frog", "horse", "ship", "truck")
COMMON = ["data.name=imagefolder", "data.resolution=64", "data.eval_crop_fraction=1.0",
          "data.train_crop_scale=[0.35,1.0]", f"model.arch={ARCH}", "train.batch_size=64",
          "train.progress=none", "train.tensorboard=false"]
"""Overrides of both steps: 64 px is 4 x 4 patches of 16 px (plus the class token)."""


def split(folder: Path, classes: tuple[str, ...]) -> Path:
    """An ImageFolder of `classes` only: links to the mirror's class folders."""
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True, exist_ok=True)
        for name in classes:
            link = folder / part / name
            if not link.exists():
                link.symlink_to(MIRROR / "cifar10-mini" / part / name, target_is_directory=True)
    return folder


def ftlab(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "ftlab", *arguments], check=True)


def source_weights(cache: Path, epochs: int) -> Path:
    """The source run's best checkpoint, trained here unless `cache` has it."""
    weights = cache / "source" / "best.pt"
    if weights.is_file():
        print(f"source weights: {weights} (cached)")
        return weights
    data = split(cache / "data" / "source", SOURCE)
    start = time.perf_counter()
    ftlab("train", *COMMON, f"data.root={data}", "model.weights=none", "strategy.name=full",
          "optim.name=adamw", "optim.lr=0.001", "optim.weight_decay=0.05",
          "schedule.name=cosine", "schedule.warmup_epochs=2", f"train.epochs={epochs}",
          f"train.output_dir={cache}", "train.run_name=source")
    print(f"source weights: {weights} ({time.perf_counter() - start:.0f} s)")
    return weights


def suite_file(cache: Path, weights: Path, args: argparse.Namespace) -> Path:
    data = split(cache / "data" / "target", TARGET)
    suite = {
        "name": "vit_transfer", "output_dir": str(cache),
        "overrides": [*COMMON, f"data.root={data}", f"model.weights={weights}",
                      f"data.label_fraction={args.label_fraction}", "optim.name=adam",
                      "schedule.name=exponential", "schedule.gamma=0.7",
                      f"train.epochs={args.epochs}"],
        "grid": {"datasets": {"cifar5-target": []},
                 "strategies": {name: [] for name in args.strategies.split(",")}},
        "tune": {"trials": args.trials, "seeds": [int(s) for s in args.seeds.split(",")],
                 "startup_trials": min(3, args.trials), "pruner": "successive_halving"},
        "report": {"title": "ftlab tune: strategies on a ViT-Tiny/16 transferred between "
                            "halves of cifar10-mini"},
    }
    path = cache / "vit_transfer.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def results(report: Path) -> str:
    """The suite report's Results table: the lines under its heading."""
    lines = report.read_text().splitlines()
    start = lines.index("## Results") + 2
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[start:end])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("runs/vit_transfer"),
                        help="where the source run, the data links and the suite go")
    parser.add_argument("--source-epochs", type=int, default=30)
    parser.add_argument("--strategies", default="full,bias,lora,vpt")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--label-fraction", type=float, default=1.0)
    args = parser.parse_args()
    if not (MIRROR / "cifar10-mini").is_dir():
        sys.exit(f"the offline mirror is not at {MIRROR}; set FTLAB_MIRROR")
    args.cache.mkdir(parents=True, exist_ok=True)
    weights = source_weights(args.cache.resolve(), args.source_epochs)
    source = csv.DictReader((args.cache / "source" / "metrics.csv").open())
    best = max(float(row["val_top1"]) for row in source if row["val_top1"])
    print(f"source task (5 classes): best val top-1 {best:.1f} %")
    start = time.perf_counter()
    ftlab("tune", str(suite_file(args.cache.resolve(), weights, args)))
    print(f"tune: {time.perf_counter() - start:.0f} s\n")
    print(results(args.cache / "vit_transfer" / "report" / "report.md"))


if __name__ == "__main__":
    main()
