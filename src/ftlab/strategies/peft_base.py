"""What the strategies built on Hugging Face PEFT share: choosing layers by role, wrapping them
through peft's own `inject_adapter_in_model`, and what trains.

peft (an optional extra) wraps each targeted `nn.Conv2d`/`nn.Linear` in a layer of its own
that keeps the original as `base_layer` and adds the method's parameters beside it (LoRA's
`lora_A`/`lora_B`, IA3's scaling vector, ...). ftlab chooses the layers from the
architecture adapter's roles (`strategy.target`), never from module names, checks the
method's settings against each layer before peft sees them, and turns peft's refusals into
one line naming the option. The wrapped base layers are ordinary frozen convolutions and
linear layers, so memory-efficient execution makes them keep nothing, as any frozen layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ftlab.config.schema import check_number
from ftlab.errors import ConfigError, ExportError
from ftlab.models.adapters import ArchAdapter
from ftlab.strategies.base import ParamInfo, Strategy
from ftlab.strategies.targets import TargetOptions, role_layers, target_roles

log = logging.getLogger(__name__)

PEFT_EXTRA = "pip install 'ftlab[peft]'"


def peft_module(strategy: str) -> Any:
    """peft, or one line saying how to install it."""
    try:
        import peft
    except ImportError:
        raise ConfigError(f"strategy.name={strategy} needs peft, which is not installed: "
                          f"{PEFT_EXTRA}") from None
    return peft


def layer_width(module: nn.Module) -> int:
    """The largest rank a low-rank update of `module`'s weight can have."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return min(module.out_channels, module.in_channels // module.groups * kh * kw)
    return min(module.in_features, module.out_features)  # type: ignore[arg-type]


class PeftStrategy(Strategy):
    """A PEFT method on the layers `strategy.target` names, plus the head (and biases or
    norms where asked). Subclasses give peft's config for the chosen layers."""

    method: ClassVar[str]
    """The method's name in peft's terms, for messages."""
    freezes_pretrained_norm_stats = True
    """The backbone is frozen: its norm statistics are part of what it learned."""

    def peft_config(self, peft: Any, targets: list[str]) -> Any:
        """peft's config of this method for the layers named `targets`."""
        raise NotImplementedError

    def check_layer(self, name: str, module: nn.Module) -> None:
        """Refuse, in one line, settings that cannot suit `module` (a rank above its width,
        say). Default: nothing to check."""

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter, input_size: int
                       ) -> list[str]:
        peft = peft_module(self.name)
        targets = self.adaptable(model, self.targets(model, adapter))
        try:
            peft.inject_adapter_in_model(self.peft_config(peft, targets), model)
        except (ValueError, TypeError, NotImplementedError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ConfigError(f"strategy {self.name} cannot adapt the layers of "
                              f"strategy.target={self.options.target}: peft says: {reason}; "
                              "choose other roles or settings") from None
        inserted = adapter_modules(model)
        self._report_depthwise(model, adapter)
        return inserted

    def targets(self, model: nn.Module, adapter: ArchAdapter) -> dict[str, bool]:
        return role_layers(model, adapter, self.options.target)

    def adaptable(self, model: nn.Module, targets: dict[str, bool]) -> list[str]:
        """The layers of `targets` (name -> named by an explicit role) that this method can
        adapt. A layer of an explicit role that it cannot is an error; one that `auto` or
        `all` brought in is left out, with a warning."""
        chosen, skipped = [], []
        for name, explicit in targets.items():
            try:
                self.check_layer(name, model.get_submodule(name))
            except ConfigError as err:
                if explicit or len(skipped) + 1 == len(targets):
                    raise
                skipped.append((name, str(err)))
                continue
            chosen.append(name)
        if skipped:
            log.warning("strategy %s leaves %d of the layers strategy.target=%s selects "
                        "unadapted (first: %s)", self.name, len(skipped), self.options.target,
                        skipped[0][1].partition(";")[0])
        return chosen

    def export_network(self, model: nn.Module) -> nn.Module:
        """Every adapter merged into the weight it adapts (peft's `merge`, checked for
        non-finite results) and each wrapper replaced by its base layer: the architecture's
        own modules and state_dict keys, loadable without ftlab or peft."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        for name, module in list(model.named_modules()):
            if not isinstance(module, BaseTunerLayer):
                continue
            try:
                module.merge(safe_merge=True)
            except (ValueError, NotImplementedError, RuntimeError) as err:
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise ExportError(f"strategy {self.name}'s adapter on {name} cannot be merged "
                                  f"into its weights (peft: {reason}); export to onnx or "
                                  "torchscript, which keep it as a side path") from None
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child,
                    module.get_base_layer())
        return model

    def is_trainable(self, param: ParamInfo) -> bool:
        return (param.is_head or param.is_new or (self.options.bias and param.is_bias)
                or (self.options.norm and param.is_norm))

    def _report_depthwise(self, model: nn.Module, adapter: ArchAdapter) -> None:
        """Depthwise convolutions are tiny: say what adapting them costs against them."""
        if "depthwise" not in target_roles(self.options.target):
            return
        own = added = 0
        for name, module in model.named_modules():
            base = getattr(module, "base_layer", None)
            if isinstance(base, nn.Conv2d) and base.groups > 1:
                own += sum(p.numel() for p in base.parameters())
                added += sum(p.numel() for n, p in module.named_parameters()
                             if not n.startswith("base_layer."))
        if own:
            log.info("%s on depthwise convolutions adds %s parameters against their own %s "
                     "(%.2fx)", self.name, f"{added:,}", f"{own:,}", added / own)


@dataclass(frozen=True)
class RankOptions(TargetOptions):
    """The settings of the low-rank methods (LoRA, DoRA, LoHa, LoKr)."""

    r: int = 8
    """Rank of the update's factors (LoHa: of each of its two, whose product reaches r²;
    LoKr: of its larger Kronecker factor); at most the layer's width."""
    alpha: float = 16.0
    """The update is scaled by alpha / r, so changing r keeps the update's size."""
    dropout: float = 0.0
    """LoRA, DoRA: dropout on the adapter's input (the frozen path sees it unchanged);
    LoHa, LoKr: the share of the update's rank components dropped each step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("strategy.r", self.r, low=1, high=4096)
        check_number("strategy.alpha", self.alpha, low=0.0, low_open=True)
        check_number("strategy.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


class RankedPeftStrategy(PeftStrategy):
    """A low-rank method: its rank is refused above a targeted layer's width."""

    Options = RankOptions

    def check_layer(self, name: str, module: nn.Module) -> None:
        check_rank(self.name, self.options.r, name, module)


def adapter_modules(model: nn.Module) -> list[str]:
    """Dotted names of the modules peft added (holding the method's parameters), beside
    each wrapped layer's `base_layer`."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    found = []
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            found.extend(f"{name}.{child}" for child, sub in module.named_children()
                         if child != "base_layer" and any(True for _ in sub.parameters()))
    return found


def check_rank(strategy: str, rank: int, name: str, module: nn.Module) -> None:
    """A rank above the layer's width adds parameters and no expressiveness: refused."""
    width = layer_width(module)
    if rank > width:
        raise ConfigError(f"strategy.r={rank} is larger than the width of layer {name} "
                          f"({width}) that strategy {strategy} adapts; use strategy.r <= "
                          f"{width} or leave that role out of strategy.target")
