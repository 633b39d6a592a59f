"""Training throughput, end to end with data: each strategy in ftlab against a plain PyTorch loop.

For every strategy the same network is trained two ways on the same in-memory 32 px
(CIFAR-sized) uint8 images, upsampled to `--resolution`:

* **ftlab**: built exactly as `ftlab train` builds it (`build_experiment`: model, strategy,
  param groups, optimizer, schedule, the on-device input pipeline), prepared each epoch as
  the trainer does (train modes, memory-efficient execution, DDP/compile wrapper), trained
  by `train_one_epoch` with `--amp` and channels-last as configured.
* **plain**: the loop every tutorial writes, on a copy of the same prepared model (so the
  same parameters are frozen): a shuffling DataLoader whose workers apply
  torchvision.transforms.v2 RandomResizedCrop / flip / normalise per image, `model.train()`,
  fp32, `zero_grad / forward / cross_entropy / backward / step` with Adam.

Epochs of the two alternate so that machine noise hits both alike; the table reports the
median images/s of each and their ratio.

    python benchmarks/throughput.py                                  # CPU: 64 px, batch 32
    python benchmarks/throughput.py --device cuda --resolution 224 --batch-size 256 \\
        --images 20000 --amp bf16 --strategies full
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ftlab.config import load_config
from ftlab.data import default_workers
from ftlab.data.device_pipeline import in_memory
from ftlab.efficient import apply_memory_plan
from ftlab.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ftlab.assembly.experiment import Experiment, build_experiment
from ftlab.training.loop import train_one_epoch
from ftlab.training.progress import Progress

STRATEGIES = "full,last_k,norm_last,bias,tinytl,linear_probe"


class AugmentedTensors(Dataset):
    """uint8 images augmented one at a time, as a torchvision tutorial's Dataset does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, resolution: int) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose([
            v2.RandomResizedCrop(resolution, antialias=True), v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]


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


def experiment(args: argparse.Namespace, strategy: str) -> Experiment:
    per_class = max(args.images // 10, 1)
    overrides = [
        "data.name=synthetic", "data.synthetic.num_classes=10", "data.synthetic.image_size=32",
        f"data.synthetic.train_per_class={per_class}", "data.synthetic.test_per_class=1",
        "data.val_fraction=0", f"data.resolution={args.resolution}", "data.pipeline=device",
        f"model.arch={args.arch}", "model.weights=none", f"strategy.name={strategy}",
        f"train.batch_size={args.batch_size}", f"train.device={args.device}",
        f"train.amp={args.amp}", f"train.compile={str(args.compile).lower()}",
        "optim.name=adam", "optim.lr=1e-4", "train.log_every=50",
        f"train.memory_efficient={str(args.memory_efficient).lower()}",
    ]
    return build_experiment(load_config(None, overrides))


def ftlab_epoch(exp: Experiment, epoch: int) -> int:
    """One epoch as `Trainer._run_epoch` runs it, without the evaluation and the files."""
    exp.train_loader.set_position(epoch)
    exp.strategy.begin_epoch(epoch, exp.model, exp.built.adapter)
    exp.strategy.set_train_mode(exp.model)
    if exp.config.train.memory_efficient:
        apply_memory_plan(exp.model)
    stats = train_one_epoch(exp.train_step(exp.wrap_for_training()), exp.train_loader,
                            Progress("none", 0, "bench"))
    return stats.images


def plain_runner(exp: Experiment, args: argparse.Namespace) -> Callable[[], int]:
    model = copy.deepcopy(exp.model)  # before any memory plan: stock modules, same frozen set
    images, labels = in_memory(exp.data.train)
    workers = default_workers()
    loader = DataLoader(AugmentedTensors(images, labels, args.resolution),
                        batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=exp.settings.device.type == "cuda")
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def run() -> int:
        plain_epoch(model, loader, optimizer, exp.settings.device)
        return len(loader) * args.batch_size

    return run


def rate(fn: Callable[[], int]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    images = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def compare(args: argparse.Namespace, strategy: str) -> tuple[Experiment, list[float],
                                                              list[float]]:
    exp = experiment(args, strategy)
    plain = plain_runner(exp, args)
    epochs = iter(range(1, 10_000))
    ftlab = lambda: ftlab_epoch(exp, next(epochs))  # noqa: E731
    plain(), ftlab()  # warm-up: workers, allocator, kernel caches, compilation
    rates: dict[str, list[float]] = {"plain": [], "ftlab": []}
    for repeat in range(args.repeats):
        order = [("plain", plain), ("ftlab", ftlab)]
        for name, fn in order if repeat % 2 == 0 else reversed(order):
            rates[name].append(rate(fn))
    return exp, rates["ftlab"], rates["plain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=480, help="training images per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per loop")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--memory-efficient", action=argparse.BooleanOptionalAction,
                        default=True, help="ftlab's train.memory_efficient (default on)")
    args = parser.parse_args()
    torch.manual_seed(0)

    name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
            else f"{torch.get_num_threads()} CPU threads")
    print(f"{args.arch}, {args.resolution} px from 32 px images, batch {args.batch_size}, "
          f"{args.images} images x {args.repeats} epochs per loop, {name}, ftlab amp "
          f"{args.amp}{', compiled' if args.compile else ''}, memory_efficient "
          f"{args.memory_efficient}, torch {torch.__version__}")
    print("| strategy | trainable params | plain PyTorch (img/s) | ftlab (img/s) | ratio |")
    print("|---|---|---|---|---|")
    for strategy in args.strategies.split(","):
        exp, ftlab_rates, plain_rates = compare(args, strategy)
        trainable, total = exp.parameter_counts()
        ftlab_rate, plain_rate = statistics.median(ftlab_rates), statistics.median(plain_rates)
        print(f"| {strategy} | {trainable:,} ({100 * trainable / total:.1f} %) | "
              f"{plain_rate:,.0f} | {ftlab_rate:,.0f} | {ftlab_rate / plain_rate:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
