"""Training throughput: ftlab's training loop against a plain PyTorch loop, in one run.

Both loops train the same architecture on the same in-memory batches with the same
optimizer (Adam), threads, batch size and resolution; ftlab's side is built exactly as
`ftlab train` builds it (model factory, strategy param groups, optimizer, LambdaLR schedule,
on-device metric accumulation). Epochs of the two loops alternate so that machine noise
hits both alike; the table reports the median images/s of each and their ratio.

    python benchmarks/throughput.py                      # CPU defaults: 64 px, batch 32
    python benchmarks/throughput.py --device cuda --resolution 224 --batch-size 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ftlab.config import OptimConfig, ScheduleConfig, StrategyConfig
from ftlab.models import build_model
from ftlab.strategies import get_strategy
from ftlab.training.loop import StepSettings, train_one_epoch
from ftlab.training.optim import build_optimizer
from ftlab.training.progress import Progress
from ftlab.training.schedule import build_scheduler


def plain_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                device: torch.device) -> None:
    """The reference: the loop every PyTorch tutorial writes."""
    model.train()
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()


def make_ftlab(arch: str, classes: int, steps: int, device: torch.device):
    built = build_model(arch, None, classes, pretrained=False)
    strategy = get_strategy(StrategyConfig(name="full"))
    strategy.prepare(built.model, built.adapter)
    optim = OptimConfig(name="adam", lr=1e-3)
    optimizer = build_optimizer(strategy.param_groups(built.model, built.adapter, optim), optim)
    scheduler = build_scheduler(optimizer, ScheduleConfig(), steps, 100)
    built.model.to(device)
    return built.model, strategy, optimizer, scheduler


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="steps per timed epoch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per loop")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    images = torch.randn(args.steps * args.batch_size, 3, args.resolution, args.resolution)
    labels = torch.randint(0, 10, (len(images),))
    loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size)

    plain_model = torchvision.models.get_model(args.arch, num_classes=10).to(device)
    plain_optimizer = torch.optim.Adam(plain_model.parameters(), lr=1e-3)
    model, strategy, optimizer, scheduler = make_ftlab(args.arch, 10, args.steps, device)
    settings = StepSettings(device=device, amp_dtype=None, channels_last=False,
                            grad_clip_norm=None, log_every=50)

    def ftlab_epoch() -> None:
        strategy.set_train_mode(model)
        train_one_epoch(model, loader, optimizer, scheduler, None, nn.CrossEntropyLoss(),
                        settings, Progress("none", len(images), "bench"))

    def plain() -> None:
        plain_epoch(plain_model, loader, plain_optimizer, device)

    plain()  # warm-up: allocator, oneDNN primitive caches
    ftlab_epoch()
    times: dict[str, list[float]] = {"plain PyTorch loop": [], "ftlab loop": []}
    for repeat in range(args.repeats):
        order = [("plain PyTorch loop", plain), ("ftlab loop", ftlab_epoch)]
        for name, fn in order if repeat % 2 == 0 else reversed(order):
            times[name].append(timed(fn))

    rates = {name: len(images) / statistics.median(ts) for name, ts in times.items()}
    ratio = rates["ftlab loop"] / rates["plain PyTorch loop"]
    print(f"{args.arch}, {args.resolution} px, batch {args.batch_size}, {args.steps} steps x "
          f"{args.repeats} epochs, device {device}, {args.threads} threads, torch "
          f"{torch.__version__}")
    print("| loop | images/s (median) | epochs (s) |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {rates[name]:.1f} | {', '.join(f'{t:.2f}' for t in ts)} |")
    print(f"| ratio ftlab / plain | {ratio:.3f} | |")


if __name__ == "__main__":
    main()
