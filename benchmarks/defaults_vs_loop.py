"""ftlab's defaults against three plain PyTorch loops, at two budgets, on the offline mirror.

ImageNet MobileNetV2 on cifar10-mini (5,000 real CIFAR-10 training images, 1,000 test
images) at 64 px, batch 64, tested on the test split, for `full`, `bias` and `tinytl`:

* **plain loops**, as a tutorial writes them: an ImageFolder of all 5,000 images, resized
  to 64 px (test images too, whole), ImageNet normalisation, Adam at a learning rate of
  `--lrs`, exponential decay 0.9 per epoch, cross-entropy, `model.train()` throughout, the
  last epoch's weights tested. Three augmentations (`--loops`): `flip` (horizontal flips
  only), `padcrop` (random 64 px crop of the image padded by 8 px, + flips: the CIFAR
  recipe) and `rrc` (torchvision's RandomResizedCrop at its default area [0.08, 1], +
  flips: the ImageNet recipe). The trainable set is the strategy's: everything (full);
  every bias, BatchNorm beta included, and the head (bias); TinyTL's lite-residual
  branches and the head, built by ftlab's own `prepare_model` so that the modules are the
  same (tinytl).
* **ftlab defaults**: `ftlab train` with only what names the data, weights, resolution,
  budget, batch size, strategy and seed set; every other setting (learning rate, schedule,
  augmentation `data.augment=auto` and the evaluation crop that goes with it) is ftlab's
  default. Twice: as `ftlab train` runs by default, holding 10 % of the training images out
  for validation and testing the best validation checkpoint (`holdout`), and on every
  labelled image as the loops train, testing the last checkpoint (`all`:
  `data.val_fraction=0`, what `ftlab tune`'s final runs do with `tune.refit=train+val`).

A loop's per-epoch schedule does not depend on the number of epochs, so one 10-epoch loop
run is tested after epoch 3 and epoch 10: both budgets from one run. Each loop is reported
at its best learning rate, chosen *on the test split* at `--lr-seed` (an oracle choice that
favours the loops); the other seeds run that learning rate only. Results are kept, cell by
cell, in `--results` (JSON), so a run interrupted or split across sessions goes on where it
stopped; loop states between budgets are kept in `--states`.

    python benchmarks/defaults_vs_loop.py                     # the whole grid (hours on CPU)
    python benchmarks/defaults_vs_loop.py --strategies full --epochs 3 --only loops
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, models
from torchvision.transforms import v2

MIRROR = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror"))
WEIGHTS = MIRROR / "weights" / "mobilenet_v2_imagenet.pth"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LOOPS = ("flip", "padcrop", "rrc")
DECAY = 0.9


def loop_augmentation(name: str, resolution: int) -> list[Any]:
    if name == "flip":
        return [v2.Resize(resolution, antialias=True), v2.RandomHorizontalFlip()]
    if name == "padcrop":
        return [v2.Resize(resolution, antialias=True),
                v2.RandomCrop(resolution, padding=resolution // 8), v2.RandomHorizontalFlip()]
    return [v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip()]


def loop_model(strategy: str, num_classes: int, resolution: int) -> nn.Module:
    """MobileNetV2 from the mirror's weights, with a new head, training `strategy`'s set."""
    if strategy == "tinytl":
        from ftlab.config.schema import StrategyConfig
        from ftlab.strategies import prepare_model

        return prepare_model("mobilenet_v2", str(WEIGHTS), StrategyConfig(name="tinytl"),
                             num_classes, resolution).built.model
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(WEIGHTS, weights_only=True))
    model.classifier[1] = nn.Linear(model.last_channel, num_classes)
    if strategy == "bias":
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.endswith("bias") or name.startswith("classifier"))
    return model


def test_top1(model: nn.Module, test: datasets.ImageFolder, workers: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test, batch_size=256, num_workers=workers):
            correct += (model(images).argmax(1) == labels).sum().item()
    return round(100.0 * correct / len(test), 2)


def plain_loop(strategy: str, augmentation: str, lr: float, seed: int, budgets: list[int],
               args: argparse.Namespace, state_file: Path) -> dict[int, float]:
    """Test top-1 after each epoch count in `budgets`; goes on from `state_file` if there."""
    torch.manual_seed(seed)
    root = MIRROR / "cifar10-mini"
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    train = datasets.ImageFolder(root / "train", v2.Compose(
        [v2.ToImage(), *loop_augmentation(augmentation, args.resolution), *tail]))
    test = datasets.ImageFolder(root / "test", v2.Compose(
        [v2.ToImage(), v2.Resize(args.resolution, antialias=True), *tail]))
    model = loop_model(strategy, len(train.classes), args.resolution)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, DECAY)
    done = 0
    if state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        done = state["epoch"]
    results = {}
    for epoch in range(done + 1, max(budgets) + 1):
        model.train()
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, generator=generator)
        for images, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
        scheduler.step()
        if epoch in budgets:
            results[epoch] = test_top1(model, test, args.workers)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                    "epoch": epoch}, state_file)
    return results


VARIANTS = {"holdout": [], "all": ["data.val_fraction=0"]}
"""ftlab's defaults as run (10 % held out for validation) and on every labelled image."""


def ftlab_defaults(strategy: str, variant: str, epochs: int, seed: int,
                   args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import ftlab

    summary = ftlab.train(None, overrides=[*VARIANTS[variant],
        "data.name=imagefolder", f"data.root={MIRROR / 'cifar10-mini'}",
        f"data.resolution={args.resolution}", f"model.weights={WEIGHTS}",
        f"strategy.name={strategy}", f"train.epochs={epochs}",
        f"train.batch_size={args.batch_size}", f"train.seed={seed}",
        f"data.split_seed={seed}", f"train.output_dir={folder}",
        f"train.run_name={strategy}-{variant}-e{epochs}-s{seed}", "train.progress=none",
        "train.tensorboard=false"])
    config = ftlab.load_config(Path(summary["run_dir"]) / "config.yaml")
    return {"top1": summary["test_top1"], "lr": config.optim.lr,
            "augment": config.data.augment, "eval_crop": config.data.eval_crop_fraction}


class Results:
    """Finished cells, written after each one: the file is read again before each write, so
    cells another process finished meanwhile are kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cells: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str) -> Any:
        return self.cells.get(key)

    def put(self, key: str, value: Any) -> None:
        self.cells = {**self._read(), key: value}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.cells, indent=1, sort_keys=True) + "\n")
        partial.replace(self.path)


def loop_key(strategy: str, augmentation: str, lr: float, seed: int, epochs: int) -> str:
    return f"loop/{strategy}/{augmentation}/lr{lr:g}/s{seed}/e{epochs}"


def run_loops(strategy: str, args: argparse.Namespace, results: Results) -> None:
    """Every lr at the lr seed, then the other seeds at the lr the first chose per budget."""
    for augmentation in args.loops:
        for seed in args.seeds:
            if seed == args.lr_seed:
                wanted = {lr: args.epochs for lr in args.lrs}
            else:
                wanted = {}
                for epochs in args.epochs:
                    best = best_lr(strategy, augmentation, epochs, args, results)
                    if best is not None:
                        wanted.setdefault(best, []).append(epochs)
            for lr, budgets in wanted.items():
                missing = [e for e in budgets
                           if results.get(loop_key(strategy, augmentation, lr, seed, e)) is None]
                if not missing:
                    continue
                name = f"{strategy}-{augmentation}-lr{lr:g}-s{seed}.pt"
                found = plain_loop(strategy, augmentation, lr, seed, missing, args,
                                   args.states / name)
                for epochs, top1 in found.items():
                    results.put(loop_key(strategy, augmentation, lr, seed, epochs), top1)
                    print(f"loop {strategy} {augmentation} lr {lr:g} seed {seed} "
                          f"epoch {epochs}: {top1:.2f} %", flush=True)


def best_lr(strategy: str, augmentation: str, epochs: int, args: argparse.Namespace,
            results: Results) -> float | None:
    scores = {lr: results.get(loop_key(strategy, augmentation, lr, args.lr_seed, epochs))
              for lr in args.lrs}
    if any(v is None for v in scores.values()):
        return None
    return max(scores, key=lambda lr: scores[lr])


def ftlab_key(strategy: str, variant: str, seed: int, epochs: int) -> str:
    return f"ftlab/{variant}/{strategy}/s{seed}/e{epochs}"


def run_ftlab(strategy: str, args: argparse.Namespace, results: Results) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in args.epochs:
            for variant in VARIANTS:
                for seed in args.seeds:
                    key = ftlab_key(strategy, variant, seed, epochs)
                    if results.get(key) is None:
                        results.put(key, ftlab_defaults(strategy, variant, epochs, seed, args,
                                                        Path(tmp)))
                        print(f"ftlab {strategy} {variant} seed {seed} epochs {epochs}: "
                              f"{results.get(key)}", flush=True)


def table(args: argparse.Namespace, results: Results) -> None:
    print(f"\nTest top-1 % on cifar10-mini's 1,000 test images, MobileNetV2 at "
          f"{args.resolution} px, batch {args.batch_size}, mean of seeds "
          f"{','.join(map(str, args.seeds))} (loops: at their best lr of "
          f"{', '.join(f'{lr:g}' for lr in args.lrs)}; ftlab: 10 % held out / all labels)\n")
    print("| strategy | epochs | " + " | ".join(f"loop {a}" for a in args.loops)
          + " | ftlab, 10 % held out | ftlab, all labels | − best loop (held out / all) |")
    print("|---|---|" + "---|" * (len(args.loops) + 3))
    for strategy in args.strategies:
        for epochs in args.epochs:
            cells, best = [], None
            for augmentation in args.loops:
                lr = best_lr(strategy, augmentation, epochs, args, results)
                values = [results.get(loop_key(strategy, augmentation, lr, s, epochs))
                          for s in args.seeds] if lr is not None else []
                if values and None not in values:
                    mean = statistics.fmean(values)
                    best = mean if best is None else max(best, mean)
                    cells.append(f"{mean:.2f} (lr {lr:g})")
                else:
                    cells.append("–")
            gaps = []
            for variant in VARIANTS:
                ours = [results.get(ftlab_key(strategy, variant, s, epochs)) for s in args.seeds]
                if None in ours:
                    cells.append("–")
                    gaps.append("–")
                    continue
                mean = statistics.fmean(o["top1"] for o in ours)
                crop = ours[0]["eval_crop"]
                setting = (f"{ours[0]['augment']}, lr {ours[0]['lr']:g}, eval crop "
                           f"{'the weights' if crop is None else f'{crop:g}'}")
                cells.append(f"{mean:.2f} ({setting})")
                gaps.append(f"{mean - best:+.2f}" if best is not None else "–")
            cells.append(" / ".join(gaps))
            print(f"| {strategy} | {epochs} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="full,bias,tinytl")
    parser.add_argument("--epochs", default="3,10", help="budgets, comma-separated")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--lr-seed", type=int, default=0)
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3")
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--only", choices=("loops", "ftlab", "table"), default=None)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--results", type=Path,
                        default=Path(__file__).parent / "results" / "defaults_vs_loop.json")
    parser.add_argument("--states", type=Path,
                        default=Path(tempfile.gettempdir()) / "ftlab-defaults-vs-loop")
    args = parser.parse_args()
    args.strategies = args.strategies.split(",")
    args.epochs = sorted(int(e) for e in args.epochs.split(","))
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.lrs = [float(lr) for lr in args.lrs.split(",")]
    args.loops = args.loops.split(",")
    if not (MIRROR / "cifar10-mini").is_dir():
        sys.exit(f"the offline mirror is not at {MIRROR}; set FTLAB_MIRROR")
    import logging

    logging.getLogger("ftlab").setLevel(logging.WARNING)
    args.states.mkdir(parents=True, exist_ok=True)
    results = Results(args.results)
    for strategy in args.strategies:
        if args.only in (None, "loops"):
            run_loops(strategy, args, results)
        if args.only in (None, "ftlab"):
            run_ftlab(strategy, args, results)
    table(args, results)


if __name__ == "__main__":
    main()
