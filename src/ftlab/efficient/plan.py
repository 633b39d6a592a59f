"""Decide, per module, how to run it so that backward keeps only what it needs.

The plan depends on what trains and which norm layers keep their statistics, so it is made
after the strategy has set `requires_grad` and train/eval modes (every epoch: gradual
unfreezing changes both), and it is undone and redone rather than patched.

Rules:
- a Conv2d / Linear whose weight is frozen keeps its weight, not its input, for backward;
- a BatchNorm2d in eval mode with a frozen (or no) γ that alone reads such a conv's output
  is folded into it (the pair becomes one convolution; β keeps its gradient); so is timm's
  BatchNormAct2d, whose dropout and activation then run on the folded output;
- ReLU and ReLU6 keep no copy of their input. After a BatchNorm normalising with batch
  statistics (which keeps its input anyway) they keep nothing: their input is rebuilt in
  backward by running the norm's kernel again, and a training conv reading their output
  rebuilds it the same way instead of keeping it. Elsewhere their own output when every
  module reading it keeps it anyway (a training conv), else a 1-bit mask;
- average pools that tile their input, and global average pools, keep only its shape;
  dropout with p = 0 is the identity (stock keeps a mask);
- SiLU, Hardswish and GELU keep their input (as stock does) where what reads their output
  can find it: a squeeze-and-excitation gate, and a training conv or linear layer, then keep
  that instead of the output and recompute it in backward (`gates.py`);
- where a LayerNorm feeds a frozen layer whose only reader is such an activation (the MLP of
  a frozen ConvNeXt block), the activation keeps the norm's input instead of its own, and
  rebuilds its input in backward, within a budget of extra multiply-adds (`recompute.py`).
Which module feeds which is observed, not assumed: a probe forward records where each
module's input tensor came from. Each rule has a name (`rules.RULES`) and `plan_model`
applies only those it is given, so the self-check can switch one off.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ftlab.efficient.modules import (
    FOLDED_NORM,
    REBUILD_FROM,
    SHARE_OUTPUT,
    EfficientReLU,
    EfficientReLU6,
    FoldedBatchNorm2d,
    FoldedNormAct2d,
    FrozenConv2d,
    FrozenLinear,
    ShapeAvgPool2d,
    ShapeGlobalAvgPool2d,
    ZeroDropout,
)
from ftlab.efficient.recompute import RECOMPUTE, choose, plain_layer_norm
from ftlab.efficient.gates import (
    EfficientSqueezeExcite,
    RecomputedInputConv2d,
    RecomputedInputLinear,
    gated_activation,
    squeeze_excite,
)
from ftlab.models.probe import probe_forward

ORIGINAL = "_ftlab_original_class"
WIRING = "_ftlab_wiring"
ACTIVATIONS: dict[type[nn.Module], type[nn.Module]] = {nn.ReLU: EfficientReLU,
                                                       nn.ReLU6: EfficientReLU6}


@dataclass(frozen=True)
class MemoryPlan:
    """What a plan changed, for logs and tests."""

    frozen_convs: int = 0
    folded_norms: int = 0
    frozen_linears: int = 0
    masked_activations: int = 0
    shared_activations: int = 0
    rebuilt_activations: int = 0
    pools: int = 0
    gates: int = 0
    recomputed: int = 0

    def describe(self) -> str:
        gates = (f", {self.gates} squeeze-excitation gates keep their activation's input "
                 "instead of its output") if self.gates else ""
        if self.recomputed:
            gates += (f", {self.recomputed} MLP activations rebuild their input from their "
                      "norm's in backward")
        return (f"{self.frozen_convs} frozen convs keep no input ({self.folded_norms} with their "
                f"BatchNorm folded in), {self.frozen_linears} frozen linears, "
                f"{self.masked_activations} ReLUs keep 1-bit masks and "
                f"{self.shared_activations} share their output, "
                f"{self.rebuilt_activations} rebuild their input from a training BatchNorm's, "
                f"{self.pools} average pools "
                f"keep only shapes{gates}")


@dataclass(frozen=True)
class Wiring:
    """Who reads whose output, as one forward pass showed it."""

    readers: dict[str, list[str]]
    """module name -> names of the leaf modules that read its output (functional ops such
    as additions are not modules and do not appear)."""
    sizes: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """conv/linear name -> (elements of its output, multiply-adds), for one probe image."""

    def producers(self, name: str) -> list[str]:
        """The modules whose output only `name` reads."""
        return [p for p, names in self.readers.items() if set(names) == {name}]

    def producer(self, name: str) -> str | None:
        """The one module whose output only `name` reads, if there is one."""
        found = self.producers(name)
        return found[0] if len(found) == 1 else None

    def norm_after(self, conv: str, modules: dict[str, nn.Module]) -> nn.Module | None:
        """The BatchNorm2d that alone reads `conv`'s output, if any."""
        names = self.readers.get(conv, [])
        if len(names) == 1 and (type(modules[names[0]]) is nn.BatchNorm2d
                                or norm_act(modules[names[0]])):
            return modules[names[0]]
        return None


def plan_model(model: nn.Module, rules: Collection[str], probe_size: int = 64,
               recompute_budget: float | None = None) -> MemoryPlan:
    """Re-plan `model` for its current trainable set and modes with the rules named in
    `rules` (`rules.RULES`; the self-checked entry point is `apply_memory_plan`); returns
    what changed. `recompute_budget` overrides `recompute.RECOMPUTE_BUDGET`."""
    remove_memory_plan(model)
    wiring = observe_wiring(model, probe_size)
    modules = dict(model.named_modules())
    counts = dict.fromkeys(MemoryPlan.__dataclass_fields__, 0)
    recompute = (_recomputed_activations(wiring, modules, recompute_budget)
                 if "recompute_mlp" in rules else {})
    for name, module in modules.items():
        if _frozen_conv(module) and "frozen_conv" in rules:
            _swap(module, FrozenConv2d)
            counts["frozen_convs"] += 1
            norm = wiring.norm_after(name, modules)
            if norm is not None and _foldable(norm) and "fold_norm" in rules:
                module.__dict__[FOLDED_NORM] = norm
                _swap(norm, FoldedNormAct2d if norm_act(norm) else FoldedBatchNorm2d)
                counts["folded_norms"] += 1
        elif type(module) is nn.Linear and not module.weight.requires_grad:
            if "frozen_linear" in rules:
                _swap(module, FrozenLinear)
                counts["frozen_linears"] += 1
        elif _training_conv(module) and "kept_input" in rules:
            _swap(module, RecomputedInputConv2d)
        elif type(module) is nn.Linear and "kept_input" in rules:
            _swap(module, RecomputedInputLinear)
        elif type(module) in ACTIVATIONS and "relu" in rules:
            counts[_plan_relu(name, module, wiring, modules, rules)] += 1
        elif (_block_pool(module) or _global_pool(module)) and "pools" in rules:
            _swap(module, ShapeAvgPool2d if _block_pool(module) else ShapeGlobalAvgPool2d)
            counts["pools"] += 1
        elif type(module) is nn.Dropout and module.p == 0 and "zero_dropout" in rules:
            _swap(module, ZeroDropout)
        elif gated_activation(module) is not None and "kept_input" in rules:
            _swap(module, gated_activation(module))
            if name in recompute:
                module.__dict__[RECOMPUTE] = recompute[name]
                counts["recomputed"] += 1
        elif squeeze_excite(module) and "squeeze_excite" in rules:
            _swap(module, EfficientSqueezeExcite)
            counts["gates"] += 1
    return MemoryPlan(**counts)


def _plan_relu(name: str, module: nn.Module, wiring: Wiring, modules: dict[str, nn.Module],
               rules: Collection[str]) -> str:
    """Swap a ReLU/ReLU6; returns which count it adds to."""
    readers = [modules[r] for r in wiring.readers.get(name, [])]
    share = bool(readers) and all(_keeps_input(r) for r in readers)
    _swap(module, ACTIVATIONS[type(module)])
    module.__dict__[SHARE_OUTPUT] = share
    norms = (_batch_stats_norms(wiring.producers(name), modules)
             if "relu_rebuild" in rules else [])
    if norms:
        module.__dict__[REBUILD_FROM] = norms
    kind = "rebuilt" if norms else "shared" if share else "masked"
    return f"{kind}_activations"


def _recomputed_activations(wiring: Wiring, modules: dict[str, nn.Module],
                            budget: float | None) -> dict[str, tuple[nn.Module, nn.Module]]:
    """activation -> (norm, frozen layer) for the activations `recompute.choose` picks among
    those fed by norm -> frozen conv/linear -> activation alone."""
    pairs, candidates = {}, []
    for name, module in modules.items():
        layer = wiring.producer(name) if gated_activation(module) is not None else None
        norm = wiring.producer(layer) if layer is not None else None
        if norm is None or not plain_layer_norm(modules[norm]) or \
                not _frozen_layer(modules[layer]) or layer not in wiring.sizes:
            continue
        pairs[name] = (modules[norm], modules[layer])
        candidates.append((name, *wiring.sizes[layer]))
    total = sum(macs for _, macs in wiring.sizes.values())
    return {name: pairs[name] for name in choose(candidates, total, budget)}


def _batch_stats_norms(names: list[str], modules: dict[str, nn.Module]) -> list[nn.Module]:
    """Those of `names` that are BatchNorm2d layers normalising with batch statistics (their
    node keeps the input and the statistics); SyncBatchNorm's node keeps others."""
    return [modules[n] for n in names if type(modules[n]) is nn.BatchNorm2d
            and modules[n].training]


def _frozen_layer(module: nn.Module) -> bool:
    return _frozen_conv(module) or (type(module) is nn.Linear
                                    and not module.weight.requires_grad)


def remove_memory_plan(model: nn.Module) -> None:
    """Give every planned module back its original class."""
    for module in model.modules():
        original = module.__dict__.pop(ORIGINAL, None)
        if original is not None:
            module.__class__ = original
        module.__dict__.pop(FOLDED_NORM, None)
        module.__dict__.pop(SHARE_OUTPUT, None)
        module.__dict__.pop(RECOMPUTE, None)
        module.__dict__.pop(REBUILD_FROM, None)


def observe_wiring(model: nn.Module, probe_size: int = 64) -> Wiring:
    """Observe the wiring once with a small forward pass and cache it on the model: the
    wiring of a model does not change during training."""
    cached = model.__dict__.get(WIRING)
    if cached is not None:
        return cached
    # Outputs stay referenced until the probe ends, so no id is reused by another tensor.
    producers: dict[int, tuple[str, torch.Tensor]] = {}
    readers: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    handles = []
    for name, module in model.named_modules():
        if list(module.children()) and not norm_act(module):  # containers: their leaves
            continue  # are observed instead; a norm + activation module is one layer
        handles.append(module.register_forward_pre_hook(
            lambda m, args, name=name: _record_reader(readers, producers, args, name)))
        handles.append(module.register_forward_hook(
            lambda m, args, out, name=name: producers.__setitem__(id(out), (name, out))))
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: sizes.__setitem__(name, _size(m, out))))
    probe_forward(model, probe_size, handles)
    wiring = Wiring(readers=readers, sizes=sizes)
    model.__dict__[WIRING] = wiring
    return wiring


def _size(module: nn.Module, out: torch.Tensor) -> tuple[int, int]:
    """(output elements, multiply-adds) of a conv or linear layer."""
    if isinstance(module, nn.Linear):
        return out.numel(), out.numel() * module.in_features
    kernel = module.weight[0].numel()  # (in_channels / groups) x kernel area
    return out.numel(), out.numel() * kernel


def _record_reader(readers: dict[str, list[str]],
                   producers: dict[int, tuple[str, torch.Tensor]], args: tuple, name: str
                   ) -> None:
    if args and isinstance(args[0], torch.Tensor) and id(args[0]) in producers:
        readers.setdefault(producers[id(args[0])][0], []).append(name)


def _frozen_conv(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and not module.weight.requires_grad
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


def _training_conv(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.weight.requires_grad
            and module.padding_mode == "zeros" and isinstance(module.padding, tuple))


def _block_pool(module: nn.Module) -> bool:
    """An AvgPool2d whose windows tile the input: kernel = stride, no padding, floor mode."""
    if type(module) is not nn.AvgPool2d:
        return False
    kernel, stride = module.kernel_size, module.stride or module.kernel_size
    return (isinstance(kernel, int) and kernel == stride and module.padding == 0
            and not module.ceil_mode and module.divisor_override is None)


def _global_pool(module: nn.Module) -> bool:
    return type(module) is nn.AdaptiveAvgPool2d and module.output_size in (1, (1, 1))


def _keeps_input(module: nn.Module) -> bool:
    """Whether `module` keeps its input for backward anyway (so sharing it costs nothing)."""
    weight = getattr(module, "weight", None)
    trains = isinstance(weight, torch.Tensor) and weight.requires_grad
    if isinstance(module, (nn.Conv2d, nn.Linear)):  # planned ones too: they keep no ReLU's
        return trains  # output differently from stock
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.training or trains
    return False


def norm_act(module: nn.Module) -> bool:
    """timm's BatchNormAct2d: a BatchNorm2d that applies its dropout and activation after
    normalising (one module where torchvision has two or three)."""
    return (isinstance(module, nn.BatchNorm2d) and type(module).__name__ == "BatchNormAct2d"
            and isinstance(getattr(module, "act", None), nn.Module)
            and isinstance(getattr(module, "drop", None), nn.Module))


def _foldable(norm: nn.Module) -> bool:
    return ((type(norm) is nn.BatchNorm2d or norm_act(norm)) and not norm.training
            and norm.running_mean is not None and norm.running_var is not None
            and (norm.weight is None or not norm.weight.requires_grad))


def _swap(module: nn.Module, cls: type[nn.Module]) -> None:
    module.__dict__[ORIGINAL] = type(module)
    module.__class__ = cls


def planned_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    return ((n, m) for n, m in model.named_modules() if ORIGINAL in m.__dict__)
