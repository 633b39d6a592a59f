"""timm backbones: `model.arch=timm:<name>` (ConvNeXt, EfficientNet/V2, MobileNetV3/V4,
ResNet-D/RS, RegNet and the rest of those families; Vision Transformers: ViT, DeiT, DeiT
III, DINOv2, EVA-02, Swin), with timm as an optional extra.

One adapter serves every model: it reads timm's own metadata rather than a table per model
— the head from `get_classifier()`, the blocks from `group_matcher(coarse=False)` (the
groups timm's layer-wise learning-rate decay uses, input to output), TinyTL's attachment
points from those blocks. Weights are timm's pretrained tags through timm's own loading and
cache (Hugging Face's, so offline once downloaded), a local file, or none; preprocessing
(input size, crop, interpolation, mean, std) comes from the tag's `pretrained_cfg`.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter, register_prefix

PREFIX = "timm:"
FAMILIES = {
    "convnext": "ConvNeXt (V1, V2): stages of ConvNeXt blocks (depthwise 7x7, LayerNorm, MLP)",
    "efficientnet": "EfficientNet, EfficientNetV2, MixNet, MNASNet, ...: (fused) MBConv "
                    "inverted residuals",
    "mobilenetv3": "MobileNetV3 and MobileNetV4: inverted residuals, universal inverted "
                   "bottlenecks",
    "regnet": "RegNetX/Y/Z: bottleneck blocks (group convolutions, SE)",
    "resnet": "ResNet, ResNet-D, ResNet-RS, SE-ResNeXt, ...: basic and bottleneck blocks",
    "vision_transformer": "Vision Transformers (ViT, DINOv2, ...): patch embedding, "
                          "transformer blocks (attention, MLP)",
    "deit": "DeiT and DeiT III: Vision Transformers trained on ImageNet-1k alone",
    "eva": "EVA-02: Vision Transformers with rotary position embeddings and SwiGLU MLPs",
    "swin_transformer": "Swin Transformer: stages of shifted-window attention blocks joined "
                        "by patch merging",
}
"""timm modules (families) ftlab adapts and has tested; others are refused by name."""
TRANSFORMERS = ("vision_transformer", "deit", "eva", "swin_transformer")
"""Families built with `dynamic_img_size=True`, so `data.resolution` can be any multiple of
the patch size: timm resamples a ViT's pretrained position embedding to the input's patch
grid, and builds a Swin's shifted-window masks for the input's feature maps (padded to
whole windows), at every forward."""
REFUSED = {"distilled": "a distilled DeiT has two heads (class and distillation token); "
                        "use the plain DeiT of the same size"}
"""Name parts of supported families that ftlab refuses, and why."""
EXTRA = "pip install 'ftlab[timm]'"


def is_timm(arch: str) -> bool:
    return arch.startswith(PREFIX)


def timm_module():
    """timm, or one line saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ConfigError(f"model.arch=timm:... needs timm, which is not installed: "
                          f"{EXTRA}") from None
    return timm


@functools.cache
def supported_names() -> dict[str, str]:
    """Every model name of the supported families -> its family."""
    timm = timm_module()
    return {name: family for family in FAMILIES for name in timm.list_models(module=family)}


def model_name(arch: str) -> str:
    """The timm model name of `timm:<name>`, checked: an unknown name gets the closest
    known ones; a model of a family ftlab does not adapt is refused with the families."""
    name = arch[len(PREFIX):]
    timm = timm_module()
    if "." in name:
        raise ConfigError(f"model.arch={arch!r}: give the pretrained tag as model.weights "
                          f"(model.arch=timm:{name.split('.')[0]} "
                          f"model.weights={name.split('.', 1)[1]})")
    if name in supported_names():
        refused = [why for part, why in REFUSED.items() if part in name]
        if refused:
            raise ConfigError(f"model.arch={arch!r}: {refused[0]}")
        return name
    if timm.is_model(name):
        raise ConfigError(f"model.arch={arch!r} is a timm model ftlab cannot adapt yet (not "
                          "of a family it knows: " + ", ".join(FAMILIES) + "); use one "
                          "of those families, see ftlab models")
    close = difflib.get_close_matches(name, list(supported_names()), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else \
        "; ftlab models lists the families"
    raise ConfigError(f"model.arch={arch!r}: timm has no model {name!r}{hint}")


def construct(arch: str) -> nn.Module:
    """The timm model of `arch` with random weights and timm's own 1000-class head (a
    transformer's position embedding resampled to any input: `TRANSFORMERS`)."""
    name = model_name(arch)
    extra = {"dynamic_img_size": True} if supported_names()[name] in TRANSFORMERS else {}
    model = timm_module().create_model(name, pretrained=False, **extra)
    if not isinstance(model.get_classifier(), nn.Linear):  # a headless (self-supervised)
        model.reset_classifier(1000)  # model: a Linear head to replace, as for the others
    return model


class TimmAdapter(ArchAdapter):
    """Any timm model of the supported families, read from timm's metadata."""

    family = "timm"

    def head_name(self, model: nn.Module) -> str:
        classifier = model.get_classifier()  # type: ignore[operator]
        names = [name for name, module in model.named_modules() if module is classifier]
        if not names or not isinstance(classifier, nn.Linear):
            raise ConfigError(f"{type(model).__name__}'s classifier is "
                              f"{type(classifier).__name__}, not a Linear layer ftlab can "
                              "replace; choose another timm model")
        return names[0]

    def block_names(self, model: nn.Module) -> list[tuple[str, ...]]:
        """timm's fine parameter groups, input to output, the head's Linear left out (a
        pre-logits norm or conv of the last group stays a block of its own)."""
        return list(_blocks(model, self.head_name(model)))

    def input_size_error(self, model: nn.Module, size: int) -> str | None:
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        if patch is None:
            return None
        height, width = (patch, patch) if isinstance(patch, int) else tuple(patch)
        if size % height or size % width:
            lower, upper = size // height * height, (size // height + 1) * height
            return (f"data.resolution={size} is not a multiple of {type(model).__name__}'s "
                    f"patch size {height}; use {lower or height} or {upper}")
        return None

    def token_blocks(self, model: nn.Module) -> list[str]:
        """A Vision Transformer's `blocks`, where the token sequence keeps its positions
        free for prompts: models whose attention rotates tokens by position (EVA-02's
        rotary embedding) have none."""
        blocks = getattr(model, "blocks", None)
        if not hasattr(model, "num_prefix_tokens") or not isinstance(blocks, nn.Sequential) \
                or getattr(model, "rope", None) is not None:
            return []
        return [f"blocks.{i}" for i in range(len(blocks))]

    def prefix_tokens(self, model: nn.Module) -> int:
        return int(getattr(model, "num_prefix_tokens", 0))

    def residual_blocks(self, model: nn.Module) -> list[str]:
        """The modules of the blocks after the stem that compute on a feature map (MBConv,
        ConvNeXt block, bottleneck), where a lite residual can run beside them; stages are
        looked into; stems, downsampling layers and pre-logits convolutions are left out."""
        chosen: list[str] = []
        for prefixes in self.block_names(model)[1:]:
            for prefix in prefixes:
                chosen.extend(_computing_blocks(model, prefix))
        return chosen


def _computing_blocks(model: nn.Module, name: str) -> list[str]:
    """`name` if it is a block (heterogeneous children, at least two conv or linear layers
    inside: MBConv, ConvNeXt block, bottleneck); the blocks inside it if it is a stage (a
    Sequential, or children all of one class, which its forward runs in turn: a branch
    added as a child there would be run as a block)."""
    module = model.get_submodule(name)
    children = list(module.named_children())
    if isinstance(module, (nn.Sequential, nn.ModuleList)) or (
            children and len({type(child) for _, child in children}) == 1):
        return [found for child, _ in children
                for found in _computing_blocks(model, f"{name}.{child}")]
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules())
    return [name] if layers >= 2 and any(isinstance(m, nn.Conv2d) for m in module.modules()) \
        else []


def _blocks(model: nn.Module, head: str) -> tuple[tuple[str, ...], ...]:
    cached = model.__dict__.get("_ftlab_timm_blocks")
    if cached is not None:
        return cached
    from timm.models import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=False))  # type: ignore[operator]
    owner = {name: gid for gid, names in groups.items() for name in names}
    blocks = []
    for gid in sorted(groups):
        names = [n for n in groups[gid] if not n.startswith(head + ".")]
        if names:
            blocks.append(_covering_prefixes(
                model, names, lambda n, g=gid: owner.get(n) == g and not n.startswith(head + ".")))
    result = tuple(blocks)
    model.__dict__["_ftlab_timm_blocks"] = result
    return result


def _covering_prefixes(model: nn.Module, names: list[str], mine: Callable[[str], bool]
                       ) -> tuple[str, ...]:
    """The fewest module prefixes that hold `names` and no parameter of another group (a
    parameter of the model itself, such as a ViT's class token, is its own prefix)."""
    modules = dict(model.named_modules())
    prefixes: list[str] = []
    for name in names:
        if any(name.startswith(p + ".") for p in prefixes):
            continue
        parts = name.split(".")[:-1]
        if not parts:  # the model's own parameter (a ViT's cls_token, pos_embed): itself
            prefixes.append(name)
            continue
        for depth in range(1, len(parts) + 1):
            candidate = ".".join(parts[:depth])
            inside = [f"{candidate}.{n}" for n, _ in modules[candidate].named_parameters()]
            if all(mine(n) for n in inside):
                prefixes.append(candidate)
                break
        else:
            raise ConfigError(f"parameter {name} shares its module with another of timm's "
                              "groups; ftlab cannot split this model into blocks")
    return tuple(prefixes)


def pretrained_cfg(name: str, tag: str | None = None) -> dict[str, Any]:
    """timm's pretrained config of `name` (its default tag, or `tag`), as a dict."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(f"{name}.{tag}" if tag else name)
    return {} if cfg is None else cfg.to_dict()


def pretrained_tags(name: str) -> list[str]:
    return [full.split(".", 1)[1] for full in timm_module().list_pretrained(f"{name}.*")]


_ADAPTER = TimmAdapter()


def _adapter(arch: str) -> ArchAdapter:
    model_name(arch)
    return _ADAPTER


register_prefix(PREFIX, _adapter)
