"""Peak training memory and step time per strategy, stock PyTorch against ftlab's
memory-efficient execution, relative to stock full fine-tuning in the same run.

Targets (224 px), as shares of stock full fine-tuning's measured peak, with memory-efficient
steps no slower than 0.9x stock: MobileNetV2 bias <= 25 %, tinytl L+B <= 33 %, full <= 80 %;
timm's EfficientNet-B0 35 / 40 / 90 % and ConvNeXt-T 35 / 40 / 95 %.

    python benchmarks/memory.py                       # CPU, batch 8 and 64
    python benchmarks/memory.py --arch timm:efficientnet_b0 --batch-sizes 8,32
    python benchmarks/memory.py --arch timm:convnext_tiny --batch-sizes 8,32 \
        --options tinytl.group_width=16,tinytl.expand=0.5
    python benchmarks/memory.py --device cuda
    python benchmarks/memory.py --strategies bias,tinytl --frozen-weights int8
                                   # + rows with int8 frozen weights, timed against fp32's

With --frozen-weights int8 (train.frozen_weights=int8) the targets are bias <= 15 %, tinytl
<= 22 % of stock full at batch 8, at >= 0.85x the speed of the fp32 efficient path.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from omegaconf import OmegaConf

from ftlab.memory.report import MIB, measure_row, setup_step

TARGETS = {"mobilenet_v2": {"bias": 0.25, "tinytl": 0.33, "full": 0.80},
           "timm:efficientnet_b0": {"bias": 0.35, "tinytl": 0.40, "full": 0.90},
           "timm:convnext_tiny": {"bias": 0.35, "tinytl": 0.40, "full": 0.95}}


def paired_step_seconds(arch: str, strategy: str, batch: int, resolution: int, device: str,
                        steps: int, options: dict[str, Any], int8: bool = False
                        ) -> dict[str, float]:
    """Median step time of stock and efficient execution (or, with `int8`, of the efficient
    path with fp32 and with int8 frozen weights), their steps interleaved so that machine
    noise hits both alike."""
    if int8:
        runs = {w: setup_step(arch, strategy, batch, resolution, "efficient", device=device,
                              options=options, frozen_weights=w) for w in ("fp32", "int8")}
    else:
        runs = {e: setup_step(arch, strategy, batch, resolution, e, device=device,
                              options=options) for e in ("stock", "efficient")}
    return _interleaved(runs, steps, device)


def _interleaved(runs: dict[str, Any], steps: int, device: str) -> dict[str, float]:
    for run in runs.values():
        run.step()  # warm-up
    times: dict[str, list[float]] = {e: [] for e in runs}
    for i in range(steps):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for execution in order:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            runs[execution].step()
            if device == "cuda":
                torch.cuda.synchronize()
            times[execution].append(time.perf_counter() - start)
    return {e: statistics.median(ts) for e, ts in times.items()}


def strategy_options(text: str) -> dict[str, dict[str, Any]]:
    """"tinytl.group_width=16,tinytl.expand=0.5" -> {"tinytl": {"group_width": 16, ...}}."""
    dotlist = [item for item in text.split(",") if item]
    return OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--strategies", default="full,bias,tinytl")
    parser.add_argument("--batch-sizes", default="8,64")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per execution")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--options", default="",
                        help="strategy options, e.g. tinytl.group_width=16,tinytl.expand=0.5")
    parser.add_argument("--frozen-weights", default="fp32", choices=("fp32", "int8"),
                        help="int8: add efficient rows with int8 frozen weights")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    options = strategy_options(args.options)
    print(f"{args.arch}, {args.resolution} px, Adam, device {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| batch | strategy | execution | activations MiB | peak MiB | peak vs stock full | "
          "target | step s | speed vs stock |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in map(int, args.batch_sizes.split(",")):
        rows = {(s, e): measure_row(args.arch, s, batch, args.resolution, e, device=args.device,
                                    options=options.get(s))
                for s in strategies for e in ("stock", "efficient")}
        seconds = {}
        for strategy in strategies:
            paired = paired_step_seconds(args.arch, strategy, batch, args.resolution,
                                         args.device, args.steps, options.get(strategy, {}))
            seconds.update({(strategy, e): t for e, t in paired.items()})
        full = rows.get(("full", "stock")) or measure_row(  # the baseline, even unasked
            args.arch, "full", batch, args.resolution, "stock", device=args.device)
        baseline = full.measured.peak
        for (strategy, execution), row in rows.items():
            peak = row.measured.peak
            share = f"{peak / baseline:.1%}" if peak and baseline else "n/a"
            targets = TARGETS.get(args.arch, {})
            target = f"<= {targets[strategy]:.0%}" if execution == "efficient" and \
                strategy in targets else ""
            speed = seconds[(strategy, "stock")] / seconds[(strategy, execution)]
            print(f"| {batch} | {strategy} | {execution} | {row.measured.activations / MIB:,.1f} "
                  f"| {'n/a' if peak is None else f'{peak / MIB:,.1f}'} | {share} | {target} | "
                  f"{seconds[(strategy, execution)]:.2f} | {speed:.2f}x |")
        if args.frozen_weights == "int8":
            _int8_rows(args, strategies, options, batch, baseline)
    print(f"\npeak: {full.measured.peak_method}")


INT8_TARGETS = {"bias": 0.15, "tinytl": 0.22}


def _int8_rows(args: argparse.Namespace, strategies: list[str],
               options: dict[str, dict[str, Any]], batch: int, baseline: int | None) -> None:
    """Efficient rows with int8 frozen weights; speed against the fp32 efficient path."""
    for strategy in strategies:
        if strategy in ("full", "l2sp", "layer_decay", "separate_lr", "scratch",
                        "gradual_unfreeze"):
            continue  # every weight trains: nothing to store in 8 bits
        row = measure_row(args.arch, strategy, batch, args.resolution, "efficient",
                          device=args.device, options=options.get(strategy),
                          frozen_weights="int8")
        paired = paired_step_seconds(args.arch, strategy, batch, args.resolution, args.device,
                                     args.steps, options.get(strategy, {}), int8=True)
        peak = row.measured.peak
        share = f"{peak / baseline:.1%}" if peak and baseline else "n/a"
        target = f"<= {INT8_TARGETS[strategy]:.0%}" if strategy in INT8_TARGETS else ""
        print(f"| {batch} | {strategy} | efficient, int8 frozen weights | "
              f"{row.measured.activations / MIB:,.1f} | "
              f"{'n/a' if peak is None else f'{peak / MIB:,.1f}'} | {share} | {target} | "
              f"{paired['int8']:.2f} | {paired['fp32'] / paired['int8']:.2f}x vs fp32 efficient |")


if __name__ == "__main__":
    main()
