"""A network block by block, as `ftlab arch` draws it: what each block is, what trains in it,
which modules a strategy added to it, and the activation memory backward keeps for it.

Everything is read from the model itself — its adapter's blocks, one probe forward for the
shapes, the strategy's parameter classification — so it works for every architecture
ftlab supports. Activation memory per block is measured twice on one training forward at
the given batch and resolution (stock modules, then memory-efficient execution): every
tensor autograd saves is attributed to the block whose module was running when it was
saved (functional operations, such as a residual addition, belong to the block they follow)
and counted once per storage; the analytic count is TinyTL's per layer (`layer_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ftlab.config import ExperimentConfig, OptimConfig, StrategyConfig
from ftlab.memory.analytic import NORMS, layer_bytes
from ftlab.memory.report import StepSetup, check_fits, setup_step
from ftlab.models import block_modules, input_size
from ftlab.models.probe import probe_forward
from ftlab.runfiles import ArchitectureRecord, BlockRecord
from ftlab.runtime import resolve_device


def architecture_record(arch: str, strategy: StrategyConfig, batch_size: int, resolution: int,
                        num_classes: int, *, device: str = "cpu",
                        optim: OptimConfig | None = None) -> ArchitectureRecord:
    """The blocks of `arch` prepared with `strategy` for `num_classes`, with the activation
    memory each keeps at `batch_size` images of `resolution` px, stock and memory-efficient.
    A step that cannot fit is refused in one line before it is allocated."""
    check_fits(arch, batch_size, resolution, num_classes, device,
               fix="lower train.batch_size or data.resolution")
    stock = setup_step(arch, strategy.name, batch_size, resolution, "stock",
                       options=strategy.options, num_classes=num_classes, device=device,
                       optim=optim)
    blocks = _block_prefixes(stock)
    block_of = _indexer(blocks, stock.model)
    structure = _structure(stock, blocks, resolution)
    stock_bytes = _saved_per_block(stock, block_of, len(blocks))
    analytic = [0.0] * len(blocks)
    names = {id(module): name for name, module in stock.model.named_modules()}
    for layer, size in layer_bytes(stock.model, resolution):
        analytic[block_of(names[id(layer.module)])] += size * batch_size
    del stock
    efficient = setup_step(arch, strategy.name, batch_size, resolution, "efficient",
                           options=strategy.options, num_classes=num_classes, device=device,
                           optim=optim)
    efficient_bytes = _saved_per_block(efficient, block_of, len(blocks))
    records = [BlockRecord(**values, stock_bytes=stock_bytes[i],
                           efficient_bytes=efficient_bytes[i], analytic_bytes=int(analytic[i]))
               for i, values in enumerate(structure)]
    return ArchitectureRecord(
        arch=arch, strategy={"name": strategy.name, **strategy.options},
        batch_size=batch_size, resolution=resolution, num_classes=num_classes, device=device,
        blocks=records)


def _block_prefixes(setup: StepSetup) -> list[tuple[str, ...]]:
    """The adapter's blocks, then the head."""
    return [*setup.adapter.block_names(setup.model), (setup.adapter.head_name(setup.model),)]


def _indexer(blocks: list[tuple[str, ...]], model: nn.Module) -> Callable[[str], int]:
    """Block of a module name; a module in no block (a pooling or dropout before the head)
    counts with the head."""
    head = len(blocks) - 1

    def index(name: str) -> int:
        for i, prefixes in enumerate(blocks):
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                return i
        return head

    return index


def _saved_per_block(setup: StepSetup, block_of: Callable[[str], int], count: int
                     ) -> list[int]:
    """Bytes of every tensor autograd saves in one training forward, per block."""
    model = setup.model
    current = [0]
    handles = [module.register_forward_pre_hook(
        lambda m, args, i=block_of(name): current.__setitem__(0, i))
        for name, module in model.named_modules() if not list(module.children())]
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    owner: dict[int, tuple[int, int]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in parameters and pointer not in owner:
            owner[pointer] = (current[0], storage.nbytes())
        return tensor

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            logits = model(setup.images)
    finally:
        for handle in handles:
            handle.remove()
    totals = [0] * count
    for block, size in owner.values():
        totals[block] += size
    del logits
    return totals


def _structure(setup: StepSetup, blocks: list[tuple[str, ...]], resolution: int
               ) -> list[dict[str, Any]]:
    """Per block: kind, shapes, stride, expansion, parameters by kind, inserted branches."""
    model = setup.model
    shapes = _shapes(model, blocks, resolution)
    params = _parameter_counts(setup, len(blocks))
    inserted = setup.strategy.inserted
    rows = []
    for i, prefixes in enumerate(blocks):
        modules = block_modules(model, prefixes)
        in_shape, out_shape = shapes[i]
        own = [n for n in inserted if any(n.startswith(p + ".") for p in prefixes)]
        rows.append({
            "index": i, "name": "+".join(prefixes),
            "kind": "+".join(type(m).__name__ for m in modules),
            "in_shape": in_shape, "out_shape": out_shape,
            "stride": max(1, in_shape[-1] // out_shape[-1]) if len(in_shape) == 3 else 1,
            "expand": _expansion(modules, in_shape[0], own, model),
            "params": params[i],
            "branches": _branches(model, own, setup.strategy.name)})
    return rows


def _shapes(model: nn.Module, blocks: list[tuple[str, ...]], resolution: int
            ) -> list[tuple[list[int], list[int]]]:
    """(input, output) shape of each block for one image: the input of its first module and
    the output of its last."""
    seen: dict[str, list[int]] = {}

    def entered(key: str, args: tuple) -> None:  # a pre-hook's return value would replace
        seen.setdefault(key, list(args[0].shape[1:]))  # the input: return nothing

    handles = []
    for i, prefixes in enumerate(blocks):
        modules = block_modules(model, prefixes)
        first, last = modules[0], modules[-1]
        handles.append(first.register_forward_pre_hook(
            lambda m, args, i=i: entered(f"in{i}", args)))
        handles.append(last.register_forward_hook(
            lambda m, args, out, i=i: seen.__setitem__(f"out{i}", list(out.shape[1:]))))
    probe_forward(model, resolution, handles)
    shapes: list[tuple[list[int], list[int]]] = []
    for i in range(len(blocks)):  # a block that never runs holds parameters others read
        if f"in{i}" in seen:      # (VPT's prompts, inserted into the token sequence by hooks):
            shapes.append((seen[f"in{i}"], seen[f"out{i}"]))  # the stream's shape there
        else:
            shape = shapes[-1][1] if shapes else list(seen.get("in0", []))
            shapes.append((shape, shape))
    return shapes


def _parameter_counts(setup: StepSetup, count: int) -> list[dict[str, list[int]]]:
    counts = [{kind: [0, 0] for kind in ("weights", "biases", "norm scales", "inserted")}
              for _ in range(count)]
    for info, param in setup.strategy.parameters(setup.model, setup.adapter):
        kind = ("inserted" if info.is_new else "biases" if info.is_bias else
                "norm scales" if info.is_norm else "weights")
        cell = counts[min(info.block, count - 1)][kind]
        cell[0] += param.numel() if param.requires_grad else 0
        cell[1] += param.numel()
    return counts


def _expansion(modules: list[nn.Module], channels: int, inserted: list[str],
               model: nn.Module) -> float | None:
    """Depthwise width over input channels (MobileNet's and EfficientNet's t)."""
    skip = {id(m) for name in inserted for m in model.get_submodule(name).modules()}
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d) and id(layer) not in skip and layer.groups > 1 \
                    and layer.groups == layer.in_channels == layer.out_channels:
                return layer.out_channels / channels if channels else None
    return None


def _branches(model: nn.Module, names: list[str], method: str) -> list[dict[str, Any]]:
    """The inserted modules as side paths. peft puts an adapter's modules (LoRA's A and B,
    DoRA's magnitudes) beside the layer they adapt, its `base_layer`: they are one path on
    that layer, named by the method and its rank."""
    groups: dict[str, list[str]] = {}
    for name in names:
        parent = name.rpartition(".")[0]
        wrapped = parent and isinstance(getattr(model.get_submodule(parent), "base_layer",
                                                None), nn.Module)
        groups.setdefault(parent if wrapped else name, []).append(name)
    return [_branch(model, key) if members == [key] else _adapter(model, key, members, method)
            for key, members in groups.items()]


def _adapter(model: nn.Module, name: str, members: list[str], method: str) -> dict[str, Any]:
    wrapped = model.get_submodule(name)
    rank = getattr(wrapped, "r", None)  # peft's per-adapter ranks, where the method has one
    rank = rank.get("default") if isinstance(rank, dict) else None
    base = _describe(wrapped.base_layer) or type(wrapped.base_layer).__name__
    return {"name": name, "kind": method + (f" r={rank}" if rank else ""),
            "layers": [f"on {base}"],
            "params": sum(p.numel() for m in members for p in model.get_submodule(m).parameters())}


def _branch(model: nn.Module, name: str) -> dict[str, Any]:
    module = model.get_submodule(name)
    layers = [_describe(layer) for _, layer in module.named_modules()
              if not list(layer.children())]
    return {"name": name, "kind": type(module).__name__, "layers": [x for x in layers if x],
            "params": sum(p.numel() for p in module.parameters())}


def _describe(layer: nn.Module) -> str | None:
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size[0]
        group = f" g={layer.groups}" if layer.groups > 1 else ""
        stride = f" s{layer.stride[0]}" if layer.stride[0] > 1 else ""
        return f"conv {k}x{k}{group}{stride} {layer.in_channels}->{layer.out_channels}"
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return "global avg pool"
    if isinstance(layer, nn.AvgPool2d):
        return f"avg pool {layer.kernel_size}"
    if isinstance(layer, NORMS):
        return type(layer).__name__
    if isinstance(layer, nn.Linear):
        return f"linear {layer.in_features}->{layer.out_features}"
    return type(layer).__name__.lower() if isinstance(layer, (nn.ReLU, nn.ReLU6)) else None


def config_architecture(config: ExperimentConfig, num_classes: int,
                        resolution: int | None = None) -> ArchitectureRecord:
    """`architecture_record` at a run config's batch size, resolution (`data.resolution`,
    else that of its weights), strategy, optimizer and device."""
    size = resolution or config.data.resolution or input_size(config.model.arch,
                                                               config.model.weights)
    return architecture_record(config.model.arch, config.strategy, config.train.batch_size,
                               size, num_classes, device=str(resolve_device(config.train.device)),
                               optim=config.optim)
