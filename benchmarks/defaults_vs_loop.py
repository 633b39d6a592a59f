"""ftlab's defaults against the plain PyTorch loop, at a short budget on the offline mirror.

Full fine-tuning of ImageNet MobileNetV2 on cifar10-mini (5,000 real CIFAR-10 training
images, 1,000 test images) at 64 px for 3 epochs, batch 64, tested on the test split:

* **plain**: the loop a tutorial writes: an ImageFolder of all 5,000 images, resize to 64 px,
  random crop with 4 px padding and horizontal flips, ImageNet normalisation, Adam at
  `--plain-lr` (3e-4), cross-entropy, the last epoch's weights tested;
* **ftlab defaults**: `ftlab train` with only what names the data, the weights, the
  resolution, the budget and the batch size set: every other setting (strategy full, its
  default learning rate, schedule, crop scale, validation hold-out, test of the best
  validation checkpoint) is ftlab's default.

Both see the same seeds (`--seeds`); the table gives test top-1 per seed and the mean.

    python benchmarks/defaults_vs_loop.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, models
from torchvision.transforms import v2

MIRROR = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror"))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def plain(seed: int, args: argparse.Namespace) -> float:
    torch.manual_seed(seed)
    root = MIRROR / "cifar10-mini"
    common = [v2.ToImage(), v2.Resize(args.resolution, antialias=True)]
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    train = datasets.ImageFolder(root / "train", v2.Compose(
        [*common, v2.RandomCrop(args.resolution, padding=args.resolution // 8),
         v2.RandomHorizontalFlip(), *tail]))
    test = datasets.ImageFolder(root / "test", v2.Compose([*common, *tail]))
    model = models.mobilenet_v2()
    model.load_state_dict(torch.load(MIRROR / "weights" / "mobilenet_v2_imagenet.pth",
                                     weights_only=True))
    model.classifier[1] = nn.Linear(model.last_channel, len(train.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.plain_lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True,
                        num_workers=args.workers, generator=torch.Generator().manual_seed(seed))
    for _ in range(args.epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in DataLoader(test, batch_size=256, num_workers=args.workers):
            correct += (model(images).argmax(1) == labels).sum().item()
    return 100.0 * correct / len(test)


def ftlab_defaults(seed: int, args: argparse.Namespace, folder: Path) -> tuple[float, str]:
    import ftlab

    summary = ftlab.train(None, overrides=[
        "data.name=imagefolder", f"data.root={MIRROR / 'cifar10-mini'}",
        f"data.resolution={args.resolution}",
        f"model.weights={MIRROR / 'weights' / 'mobilenet_v2_imagenet.pth'}",
        f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
        f"train.seed={seed}", f"data.split_seed={seed}", f"train.output_dir={folder}",
        f"train.run_name=defaults-s{seed}", "train.progress=none", "train.tensorboard=false"])
    config = (Path(summary["run_dir"]) / "config.yaml").read_text()
    lr = next(line.split(":")[1].strip() for line in config.splitlines()
              if line.strip().startswith("lr:"))
    return summary["test_top1"], lr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--plain-lr", type=float, default=3e-4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if not (MIRROR / "cifar10-mini").is_dir():
        sys.exit(f"the offline mirror is not at {MIRROR}; set FTLAB_MIRROR")
    import logging

    logging.getLogger("ftlab").setLevel(logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            loop = plain(seed, args)
            ours, lr = ftlab_defaults(seed, args, Path(tmp))
            rows.append((seed, loop, ours, lr))
            print(f"seed {seed}: plain {loop:.2f} %, ftlab defaults {ours:.2f} % (lr {lr})",
                  flush=True)
    print(f"\nFull fine-tuning, {args.epochs} epochs at {args.resolution} px, batch "
          f"{args.batch_size}, test top-1 % on cifar10-mini's 1,000 test images\n")
    print("| seed | plain loop (Adam " + f"{args.plain_lr:g}" + ") | ftlab defaults | ratio |")
    print("|---|---|---|---|")
    for seed, loop, ours, _ in rows:
        print(f"| {seed} | {loop:.2f} | {ours:.2f} | {ours / loop:.3f} |")
    loop_mean = statistics.fmean(r[1] for r in rows)
    ours_mean = statistics.fmean(r[2] for r in rows)
    print(f"| mean | {loop_mean:.2f} | {ours_mean:.2f} | {ours_mean / loop_mean:.3f} |")


if __name__ == "__main__":
    main()
