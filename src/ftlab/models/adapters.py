"""Architecture adapters: where a family keeps its head and how its blocks are numbered.

Strategies ask an adapter, never the model, which parameters are "the head" or "the last k
blocks", so a new family plugs in with one small class and no strategy changes. Adapters are
registered per torchvision architecture name; registering a name twice is an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import ClassVar

import torch
from torch import nn
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, resnet

from ftlab.registry import Registry


class ArchAdapter(ABC):
    """Knows one family's layout. Stateless: every method takes the model."""

    family: ClassVar[str]
    residual_block_types: ClassVar[tuple[type[nn.Module], ...]] = ()
    """Block classes where side branches (TinyTL's lite residuals) may attach."""

    @abstractmethod
    def head_name(self, model: nn.Module) -> str:
        """Dotted name of the final classification `nn.Linear`."""

    @abstractmethod
    def block_names(self, model: nn.Module) -> list[tuple[str, ...]]:
        """Backbone blocks from input to output; each block is a tuple of module prefixes.

        Block 0 is the stem. Every backbone parameter belongs to exactly one block.
        """

    def init_head(self, head: nn.Linear) -> None:
        """Initialise a fresh head the way the family's own constructor does."""
        head.reset_parameters()

    def residual_blocks(self, model: nn.Module) -> list[str]:
        """Dotted names of the residual blocks, input to output (none if the family has no
        known block type)."""
        types = self.residual_block_types
        return [name for name, module in model.named_modules()
                if types and isinstance(module, types)]

    def input_size_error(self, model: nn.Module, size: int) -> str | None:
        """Why `model` cannot take `size` x `size` px inputs (a transformer's patch size
        must divide it), or None. CNNs take any size."""
        return None

    def token_blocks(self, model: nn.Module) -> list[str]:
        """Dotted names of the transformer blocks that read and return the token sequence
        (batch, tokens, channels), input to output, where visual prompts can join it; none
        for CNNs."""
        return []

    def prefix_tokens(self, model: nn.Module) -> int:
        """How many tokens (class, register) lead the sequence before the patch tokens."""
        return 0

    def layer_roles(self, model: nn.Module) -> dict[str, list[str]]:
        """The backbone's convolutions and linear layers by role (`LAYER_ROLES`), each
        input to output: what parameter-efficient strategies target (`strategy.target`).
        The head is no role's: every strategy trains it whole."""
        return classify_layers(model, self.head_name(model))

    def head(self, model: nn.Module) -> nn.Linear:
        module = model.get_submodule(self.head_name(model))
        assert isinstance(module, nn.Linear), f"{self.family} head is {type(module).__name__}"
        return module

    def reset_head(self, model: nn.Module, num_classes: int) -> nn.Linear:
        """Replace the head with a freshly initialised one for `num_classes` classes."""
        old = self.head(model)
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        self.init_head(new)
        parent_name, _, child = self.head_name(model).rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
        return new

    def is_head_parameter(self, model: nn.Module, param_name: str) -> bool:
        return param_name.startswith(self.head_name(model) + ".")

    def block_index(self, model: nn.Module, param_name: str) -> int:
        """Block of a parameter: 0 is the stem; the head is `num_blocks` (one past the last)."""
        return self.block_indexer(model)(param_name)

    def block_indexer(self, model: nn.Module) -> Callable[[str], int]:
        """`block_index` for many names: the block layout is read from the model once."""
        head = self.head_name(model) + "."
        blocks = self.block_names(model)

        def index(param_name: str) -> int:
            if param_name.startswith(head):
                return len(blocks)
            for i, prefixes in enumerate(blocks):
                if any(param_name.startswith(p + ".") or param_name == p for p in prefixes):
                    return i
            raise KeyError(f"parameter {param_name} is in no block of {self.family}")

        return index


class FeaturesClassifierAdapter(ArchAdapter):
    """`features` (a Sequential of stages) + `classifier` (ending in a Linear).

    MobileNetV2, MobileNetV3 and EfficientNet share this layout; each `features.i` is a block.
    """

    family = "features-classifier"
    residual_block_types = (mobilenetv2.InvertedResidual, mobilenetv3.InvertedResidual,
                            efficientnet.MBConv, efficientnet.FusedMBConv)

    def head_name(self, model: nn.Module) -> str:
        last = len(model.classifier) - 1  # type: ignore[arg-type]
        return f"classifier.{last}"

    def block_names(self, model: nn.Module) -> list[tuple[str, ...]]:
        hidden = [f"classifier.{i}" for i in range(len(model.classifier) - 1)  # type: ignore[arg-type]
                  if any(True for _ in model.classifier[i].parameters())]  # type: ignore[index]
        blocks = [(f"features.{i}",) for i in range(len(model.features))]  # type: ignore[arg-type]
        if hidden:  # MobileNetV3's pretrained pre-logits Linear is backbone, not head
            blocks.append(tuple(hidden))
        return blocks

    def init_head(self, head: nn.Linear) -> None:
        # torchvision's MobileNet/EfficientNet constructors: N(0, 0.01) weights, zero bias.
        nn.init.normal_(head.weight, 0.0, 0.01)
        if head.bias is not None:
            nn.init.zeros_(head.bias)


class ResNetAdapter(ArchAdapter):
    """Stem (conv1, bn1), then every residual block of layer1..layer4, then `fc`."""

    family = "resnet"
    residual_block_types = (resnet.BasicBlock, resnet.Bottleneck)

    def head_name(self, model: nn.Module) -> str:
        return "fc"

    def block_names(self, model: nn.Module) -> list[tuple[str, ...]]:
        blocks: list[tuple[str, ...]] = [("conv1", "bn1")]
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            layer = model.get_submodule(stage)
            blocks.extend((f"{stage}.{i}",) for i in range(len(layer)))  # type: ignore[arg-type]
        return blocks


LAYER_ROLES: dict[str, str] = {
    "pointwise": "1x1 convolutions (expansions, projections, bottleneck ends)",
    "conv": "dense k x k convolutions (stems, ResNet 3x3s, downsampling)",
    "depthwise": "grouped and depthwise convolutions (groups > 1)",
    "qkv": "attention input projections (query, key, value)",
    "proj": "attention output projections",
    "mlp": "other linear layers (transformer and ConvNeXt MLPs)",
}
"""What `strategy.target` can name (joined with `+`; `all` is every role, `auto` every role
but depthwise), and what each means."""

QKV_NAMES = ("qkv", "q", "k", "v", "q_proj", "k_proj", "v_proj", "query", "key", "value")
"""A linear layer with one of these names inside an attention module is an input
projection; any other linear layer there is its output projection."""


def classify_layers(model: nn.Module, head: str) -> dict[str, list[str]]:
    """`LAYER_ROLES` -> the dotted names of `model`'s layers in that role, head left out.

    Convolutions by their geometry; linear layers by the module that holds them: one whose
    class is an attention (timm's `Attention`, `WindowAttention`, ...) holds projections."""
    roles: dict[str, list[str]] = {role: [] for role in LAYER_ROLES}
    attention = {name for name, module in model.named_modules()
                 if "attention" in type(module).__name__.lower()}
    for name, module in model.named_modules():
        if name == head:
            continue
        if isinstance(module, nn.Conv2d):
            role = ("depthwise" if module.groups > 1 else
                    "pointwise" if tuple(module.kernel_size) == (1, 1) else "conv")
        elif isinstance(module, nn.Linear):
            parent, _, leaf = name.rpartition(".")
            role = ("mlp" if parent not in attention else
                    "qkv" if leaf in QKV_NAMES else "proj")
        else:
            continue
        roles[role].append(name)
    return roles


ADAPTERS: Registry[ArchAdapter] = Registry("model.arch", "ftlab.architectures")


def register_adapter(names: Iterable[str], adapter: ArchAdapter) -> None:
    for name in names:
        ADAPTERS.register(name, adapter)


PREFIXED: dict[str, Callable[[str], ArchAdapter]] = {}
"""Adapters of whole namespaces of names by prefix (`timm:<name>`): each resolver checks the
name and returns the adapter, or raises ConfigError."""


def register_prefix(prefix: str, resolve: Callable[[str], ArchAdapter]) -> None:
    if prefix in PREFIXED:
        raise ValueError(f"model.arch prefix {prefix!r} is already registered")
    PREFIXED[prefix] = resolve


def get_adapter(arch: str) -> ArchAdapter:
    """The adapter of a registered architecture name, or of a prefixed one (`timm:<name>`)."""
    for prefix, resolve in PREFIXED.items():
        if arch.startswith(prefix):
            return resolve(arch)
    return ADAPTERS.get(arch)


def architectures() -> list[str]:
    return ADAPTERS.names()


_features = FeaturesClassifierAdapter()
register_adapter(["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"], _features)
register_adapter([f"efficientnet_b{i}" for i in range(8)], _features)
register_adapter(["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"], _features)
register_adapter(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                  "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
                  "wide_resnet50_2", "wide_resnet101_2"], ResNetAdapter())


def block_modules(model: nn.Module, prefixes: Iterable[str]) -> list[nn.Module]:
    """The modules a block's prefixes name, input to output; a prefix that names a
    parameter of the model itself (a ViT's class token, position embedding) is left out."""
    modules = dict(model.named_modules())
    return [modules[p] for p in prefixes if p in modules]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, each shared tensor counted once."""
    seen: dict[int, torch.nn.Parameter] = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    return trainable, total
