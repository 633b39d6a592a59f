"""The five parts of benchmarks/gpu_check.py, each a function of the run's `Context` that
returns its figures and its rows of the table; the sizes of a GPU run and of a dry run."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # throughput.py and dataloader.py beside this file

Row = tuple[str, str, str, str]
"""measure, value, target, met (yes / no / empty where nothing is targeted)."""


@dataclass(frozen=True)
class Sizes:
    """How big each part is: the GPU run's sizes, or the dry run's."""

    device: str
    resolution: int
    batch: int
    images: int
    """Training images per timed throughput epoch."""
    repeats: int
    """Timed epochs per loop."""
    memory_batches: tuple[int, ...]
    grad_batch: int
    finetune_batch: int
    epochs: int
    finetunes: tuple[str, ...]
    """Strategies of the real fine-tune."""
    compile: bool
    """Include the train.compile=true row (inductor compiles for minutes on a CPU)."""
    judged: bool
    """Compare throughput and memory with the GPU targets (not at tiny CPU sizes)."""


GPU = Sizes(device="cuda", resolution=224, batch=256, images=10240, repeats=2,
            memory_batches=(64, 256), grad_batch=8, finetune_batch=128, epochs=3,
            finetunes=("full", "tinytl"), compile=True, judged=True)
DRY = Sizes(device="cpu", resolution=32, batch=8, images=32, repeats=1, memory_batches=(2,),
            grad_batch=2, finetune_batch=8, epochs=2, finetunes=("full",), compile=False,
            judged=False)


@dataclass
class Context:
    sizes: Sizes
    output_dir: Path
    data_root: Path
    weights: str
    """model.weights for the fine-tunes: the mirror's file, or none in a dry run."""
    notes: list[str] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    """The reference run's summary, once this invocation has trained it."""


# -- 1. environment ------------------------------------------------------------------------

def environment(ctx: Context) -> tuple[dict[str, Any], list[Row]]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "cuda_available":
                            torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cudnn=torch.backends.cudnn.version(), driver=_driver(),
                    bf16=torch.cuda.is_bf16_supported())
    info["missing"] = missing = _missing_requirements()
    try:
        import ftlab

        info["ftlab"] = f"{ftlab.__version__} from {Path(ftlab.__file__).parent}"
    except Exception as err:  # noqa: BLE001 - recorded: what must be carried
        info["ftlab"] = f"does not import: {type(err).__name__}: {err}"
    rows = [("device", info.get("gpu", "CPU (no CUDA device)"), "", ""),
            ("torch / CUDA / driver", f"{info['torch']} / {info['cuda']} / "
             f"{info.get('driver', 'n/a')}", "", ""),
            ("ftlab", info["ftlab"], "", ""),
            ("missing requirements", ", ".join(missing) or "none", "none",
             "no" if missing else "yes")]
    return info, rows


def _driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def _missing_requirements() -> list[str]:
    """ftlab's core requirements (pyproject.toml) that are not installed here."""
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as handle:
        wanted = tomllib.load(handle)["project"]["dependencies"]
    missing = []
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group()  # type: ignore[union-attr]
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


# -- 2. throughput -------------------------------------------------------------------------

def throughput(ctx: Context) -> tuple[dict[str, Any], list[Row]]:
    import statistics

    import throughput as bench

    s = ctx.sizes
    results: dict[str, Any] = {}
    rows: list[Row] = []
    runs = [("full", False), ("bias", False), ("tinytl", False)]
    runs += [("full", True)] if s.compile else []
    for strategy, compiled in runs:
        args = argparse.Namespace(arch="mobilenet_v2", resolution=s.resolution,
                                  batch_size=s.batch, images=s.images, repeats=s.repeats,
                                  device=s.device, amp="auto", compile=compiled,
                                  memory_efficient=True)
        _, ftlab_rates, plain_rates = bench.compare(args, strategy)
        ours, plain = statistics.median(ftlab_rates), statistics.median(plain_rates)
        name = strategy + (" compiled" if compiled else "")
        results[name] = {"ftlab_images_per_s": ours, "plain_images_per_s": plain,
                         "ratio": ours / plain}
        full = strategy == "full"
        rows.append((f"{name}: ftlab / plain loop (img/s)", f"{ours:,.0f} / {plain:,.0f} = "
                     f"{ours / plain:.2f}x", ">= 5,000 and >= 1.3x" if full else "",
                     _met(ours >= 5000 and ours / plain >= 1.3) if full and s.judged
                     else ""))
    if not s.compile:
        ctx.notes.append("throughput: the train.compile=true row runs on the GPU only")
    results["input_pipelines"] = pipelines = input_pipelines(ctx)
    rows.append(("input pipelines alone (img/s)", ", ".join(
        f"{name} {rate:,.0f}" for name, rate in pipelines.items()), "", ""))
    return results, rows


def input_pipelines(ctx: Context) -> dict[str, float]:
    """Images/s of each input pipeline over one epoch of the fine-tune's images, after one
    warm-up epoch (benchmarks/dataloader.py)."""
    import torch

    import dataloader
    from ftlab.data import default_workers

    device = torch.device(ctx.sizes.device)
    rates = {}
    for name, loader in dataloader.pipelines(ctx.data_root, ctx.sizes.resolution,
                                             ctx.sizes.batch, default_workers(),
                                             device).items():
        dataloader.epoch_rate(loader, device)
        rates[name] = dataloader.epoch_rate(loader, device)
    return rates


# -- 3. memory -----------------------------------------------------------------------------

def memory(ctx: Context) -> tuple[dict[str, Any], list[Row]]:
    from ftlab.memory.report import MIB, measure_row

    s = ctx.sizes
    targets = {"bias": 0.25, "tinytl": 0.33}
    results: dict[str, Any] = {}
    rows: list[Row] = []
    for batch in s.memory_batches:
        peaks = {(strategy, execution): measure_row(
            "mobilenet_v2", strategy, batch, s.resolution, execution,
            device=s.device).measured.peak
            for strategy in ("full", "bias", "tinytl") for execution in ("stock", "efficient")}
        baseline = peaks[("full", "stock")]
        for (strategy, execution), peak in peaks.items():
            share = peak / baseline if peak and baseline else None
            results[f"{strategy} {execution} batch {batch}"] = {
                "peak_mib": peak / MIB if peak else None, "share_of_stock_full": share}
            if execution == "efficient":
                target = targets.get(strategy)
                rows.append((f"{strategy} efficient peak, batch {batch}",
                             f"{peak / MIB:,.0f} MiB = {share:.1%} of stock full" if share
                             else "n/a", f"<= {target:.0%}" if target else "",
                             _met(share is not None and share <= target)
                             if target and s.judged else ""))
    gradients, bounded = gradient_check(s.device, s.grad_batch, s.resolution)
    results["gradients"], results["gradients_within_fp32"] = gradients, bounded
    worst = max(gradients.values())
    rows.append(("gradients efficient vs stock (max relative difference, fp32)",
                 f"{worst:.1e} ({', '.join(f'{k} {v:.1e}' for k, v in gradients.items())})",
                 "<= 1e-4, or within twice fp32's own error",
                 _met(all(v <= 1e-4 or bounded[k] for k, v in gradients.items()))))
    rows.append(self_check_row(s.device, results))
    return results, rows


def self_check_row(device: str, results: dict[str, Any]) -> tuple[str, str, str, str]:
    """The memory-efficient rules' self-check on `device` (ran already, at the first plan
    above): how many passed, and why the others are off."""
    from ftlab.efficient import self_check

    verdicts = self_check(device)
    results["self_check"] = {name: {"passed": v.passed, "reason": v.reason}
                             for name, v in verdicts.items()}
    off = [f"{name}: {v.reason}" for name, v in verdicts.items() if not v.passed]
    value = f"{len(verdicts) - len(off)} of {len(verdicts)}" + (
        f" (off: {'; '.join(off)})" if off else "")
    return ("memory-efficient rules passing their self-check on the device", value, "all",
            _met(not off))


def gradient_check(device: str, batch: int, resolution: int
                   ) -> tuple[dict[str, float], dict[str, bool]]:
    """Per strategy: the largest relative difference (per parameter, in norm) between the
    gradients of stock autograd and memory-efficient execution, on `device` in float32
    without TF32; and whether every efficient gradient is as close to the float64 truth as
    float32 gets (within twice stock float32's error there, plus 1e-4 of the truth): where a
    gradient's sum cancels, float32 itself cannot resolve it to 1e-4, on any device."""
    import copy

    import torch

    from ftlab.config import StrategyConfig
    from ftlab.efficient import apply_memory_plan
    from ftlab.strategies import prepare_model

    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        worst, bounded = {}, {}
        for strategy in ("full", "bias", "tinytl", "norm_last"):
            prepared = prepare_model("mobilenet_v2", None, StrategyConfig(name=strategy), 10,
                                     resolution, seed=0, load_weights=False)
            model = prepared.model.to(device)
            prepared.strategy.set_train_mode(model)
            x = torch.randn(batch, 3, resolution, resolution,
                            generator=torch.Generator().manual_seed(0)).to(device)
            truth = _gradients(copy.deepcopy(model).double(), x.double())
            stock = _gradients(model, x)
            apply_memory_plan(model)
            ours = _gradients(model, x)
            worst[strategy] = max(((ours[k] - g).norm() / g.norm().clamp_min(1e-30)).item()
                                  for k, g in stock.items())
            bounded[strategy] = all(
                (ours[k].double() - t).norm() <= 2 * (stock[k].double() - t).norm()
                + 1e-4 * t.norm() for k, t in truth.items())
        return worst, bounded
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _gradients(model: Any, x: Any) -> dict[str, Any]:
    import torch

    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout mask in both passes
    out = model(x)
    (out * torch.linspace(-1, 1, out.shape[1], device=out.device)).sum().backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


# -- 4. fine-tune and resume ---------------------------------------------------------------

def _overrides(ctx: Context, name: str, **extra: Any) -> list[str]:
    s = ctx.sizes
    values: dict[str, Any] = {
        "data.name": "imagefolder", "data.root": ctx.data_root, "data.resolution":
        s.resolution, "model.arch": "mobilenet_v2", "model.weights": ctx.weights,
        "train.epochs": s.epochs, "train.batch_size": s.finetune_batch,
        "train.device": s.device, "train.output_dir": ctx.output_dir / "runs",
        "train.run_name": name, "train.progress": "none", "train.tensorboard": False,
        **extra}
    return [f"{key}={value}" for key, value in values.items()]


def finetune(ctx: Context) -> tuple[dict[str, Any], list[Row]]:
    import ftlab

    results: dict[str, Any] = {}
    rows: list[Row] = []
    for strategy in ctx.sizes.finetunes:
        summary = ftlab.train(None, overrides=_overrides(
            ctx, f"finetune-{strategy}", **{"strategy.name": strategy}), overwrite=True)
        peak = summary["peak_memory_bytes"]
        results[strategy] = {key: summary[key] for key in (
            "test_top1", "test_top5", "best_val_top1", "images_per_s", "epoch_time_s",
            "peak_memory_bytes", "peak_memory_kind", "device", "epochs")}
        rows.append((f"{strategy}: test top-1, img/s, peak", f"{summary['test_top1']:.2f} %, "
                     f"{summary['images_per_s']:,.0f} img/s, "
                     f"{peak / 2**20:,.0f} MiB ({summary['peak_memory_kind']})"
                     if peak else "n/a", "", ""))
    results["resume"] = resume = resume_check(ctx)
    rows.append(("SIGTERM mid-epoch + resume vs uninterrupted (last.pt)",
                 f"stopped at step {resume['stopped_at_step']} (exit {resume['exit_code']}); "
                 f"{resume['tensors_equal']}/{resume['tensors']} tensors equal, max abs diff "
                 f"{resume['max_abs_diff']:.1e}", "bit-identical",
                 _met(resume["tensors_equal"] == resume["tensors"])))
    return results, rows


def resume_check(ctx: Context) -> dict[str, Any]:
    """A run stopped by SIGTERM halfway through its second epoch and resumed, against the
    same run uninterrupted; deterministic kernels in both."""
    clean = reference_run(ctx)
    images, batch = clean["split_sizes"]["train"], ctx.sizes.finetune_batch
    steps = images // batch if images > batch else 1  # ftlab drops a last partial batch
    hit = steps + max(steps // 2, 1)
    stopped = _overrides(ctx, "resume-stopped", **REFERENCE)
    first = _ftlab(["train", *stopped, "--overwrite"], failpoints=f"train_step={hit}:TERM")
    if first.returncode != 128 + 15:
        raise RuntimeError(f"the stopped run ended with exit {first.returncode}, not 143: "
                           f"{first.stderr.strip()[-500:]}")
    run_dir = ctx.output_dir / "runs" / "resume-stopped"
    second = _ftlab(["train", "--resume", str(run_dir)])
    if second.returncode != 0:
        raise RuntimeError(f"the resume failed (exit {second.returncode}): "
                           f"{second.stderr.strip()[-500:]}")
    return {"stopped_at_step": hit, "steps_per_epoch": steps, "exit_code": first.returncode,
            **_compare(ctx.output_dir / "runs" / "reference", run_dir)}


REFERENCE = {"strategy.name": "full", "train.epochs": 2, "train.deterministic": True}
"""The uninterrupted run that the resumed run and the torchrun run must equal."""


def reference_run(ctx: Context) -> dict[str, Any]:
    """The reference run's summary, trained once per invocation for the parts that compare
    with it."""
    import ftlab

    if ctx.reference is None:
        ctx.reference = ftlab.train(None, overrides=_overrides(ctx, "reference", **REFERENCE),
                                    overwrite=True)
    return ctx.reference


def _ftlab(args: list[str], failpoints: str | None = None,
           launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FTLAB_FAILPOINTS"}
    if failpoints:
        env["FTLAB_FAILPOINTS"] = failpoints
    command = [sys.executable, "-m", *(launcher or []), "ftlab", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def _compare(a: Path, b: Path) -> dict[str, Any]:
    import torch

    got = torch.load(b / "last.pt", weights_only=True, map_location="cpu")["model"]
    want = torch.load(a / "last.pt", weights_only=True, map_location="cpu")["model"]
    if got.keys() != want.keys():
        raise RuntimeError(f"{a} and {b} hold different tensors")
    diffs = [(want[k].double() - got[k].double()).abs().max().item() if want[k].numel()
             else 0.0 for k in want]
    same = sum(torch.equal(want[k], got[k]) for k in want)
    top1 = [json.loads((d / "summary.json").read_text())["test_top1"] for d in (a, b)]
    return {"tensors": len(want), "tensors_equal": same, "max_abs_diff": max(diffs),
            "test_top1": top1}


# -- 5. torchrun ---------------------------------------------------------------------------

def torchrun(ctx: Context) -> tuple[dict[str, Any], list[Row]]:
    reference_run(ctx)
    launcher = ["torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m"]
    result = _ftlab(["train", *_overrides(ctx, "ddp-torchrun", **REFERENCE), "--overwrite"],
                    launcher=launcher)
    if result.returncode != 0:
        raise RuntimeError(f"torchrun failed (exit {result.returncode}): "
                           f"{result.stderr.strip()[-800:]}")
    runs = ctx.output_dir / "runs"
    compared = _compare(runs / "reference", runs / "ddp-torchrun")
    backend = "nccl" if ctx.sizes.device == "cuda" else "gloo"
    compared["backend"] = backend
    row = (f"torchrun, 1 process on {backend}, vs the same run without",
           f"{compared['tensors_equal']}/{compared['tensors']} tensors equal, max abs diff "
           f"{compared['max_abs_diff']:.1e}, test top-1 {compared['test_top1'][1]:.2f} vs "
           f"{compared['test_top1'][0]:.2f} %", "same result",
           _met(compared["tensors_equal"] == compared["tensors"]))
    return compared, [row]


def _met(value: bool) -> str:
    return "yes" if value else "no"
