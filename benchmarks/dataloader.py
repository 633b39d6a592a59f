"""Input-pipeline throughput alone: ftlab's pipelines against the stock torchvision one.

No model runs: each pipeline delivers one epoch of normalised, augmented training batches
(RandomResizedCrop + flip + normalise) of the mirror's cifar10-mini, and the table reports
images/s. "stock" is the textbook pipeline (ImageFolder + torchvision.transforms + DataLoader
with shuffling); "ftlab workers" is ftlab's default (the same work in DataLoader workers,
plus per-sample seeding); "ftlab device" keeps the uint8 images on the device and augments
whole batches there (data.pipeline=device), which is what a GPU needs for 32 px images
upsampled to 224 px.

    python benchmarks/dataloader.py                    # CPU, 64 and 224 px
    python benchmarks/dataloader.py --device cuda      # the device pipeline on the GPU
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from ftlab.config import load_config
from ftlab.data import build_data, default_workers, train_loader
from ftlab.data.device_pipeline import DeviceBatches, in_memory
from ftlab.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing


def stock_loader(root: Path, resolution: int, batch: int, workers: int) -> DataLoader:
    transform = transforms.Compose([
        transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return DataLoader(datasets.ImageFolder(str(root / "train"), transform), batch_size=batch,
                      shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())


def epoch_rate(loader, device: torch.device) -> float:
    """Images/s over one epoch, batches moved to `device` and synchronised."""
    images = 0
    start = time.perf_counter()
    for batch, _ in loader:
        images += batch.to(device, non_blocking=True).shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def pipelines(root: Path, resolution: int, batch: int, workers: int, device: torch.device):
    config = load_config(None, ["data.name=imagefolder", f"data.root={root}",
                                f"data.resolution={resolution}", "data.val_fraction=0",
                                "data.augment=rrc"])  # the stock loader's augmentation
    data = build_data(config.data, Preprocessing())
    images, labels = in_memory(data.train)
    return {
        "stock torchvision": stock_loader(root, resolution, batch, workers),
        "ftlab workers": train_loader(data.train, batch, seed=0, workers=workers,
                                      pin_memory=device.type == "cuda"),
        "ftlab device": DeviceBatches(images.to(device), labels.to(device), batch, data.input,
                                      train=True, augmentation=data.augmentation),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_mirror = Path(os.environ.get("FTLAB_MIRROR", "../shared/mirror"))
    parser.add_argument("--mirror", type=Path, default=default_mirror)
    parser.add_argument("--resolutions", default="64,224")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    root = args.mirror / "cifar10-mini"
    print(f"cifar10-mini train split (4,500 images), batch {args.batch_size}, "
          f"{args.workers} workers, device {device}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}")
    print("| resolution | pipeline | images/s (best of epochs) | vs stock |")
    print("|---|---|---|---|")
    for resolution in map(int, args.resolutions.split(",")):
        rates = {}
        for name, loader in pipelines(root, resolution, args.batch_size, args.workers,
                                      device).items():
            epoch_rate(loader, device)  # warm-up: worker start, caches
            rates[name] = max(epoch_rate(loader, device) for _ in range(args.epochs))
        for name, rate in rates.items():
            print(f"| {resolution} | {name} | {rate:,.0f} | "
                  f"{rate / rates['stock torchvision']:.2f}x |")


if __name__ == "__main__":
    main()
