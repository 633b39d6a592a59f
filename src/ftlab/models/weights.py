"""Where a backbone's starting weights come from: torchvision's hub, a local file, or nowhere.

`model.weights` is one string. A name of the architecture's torchvision weights enum
(`IMAGENET1K_V1`, `DEFAULT`, ...) goes through torchvision's own download-and-cache code, so a
file already in `$TORCH_HOME/hub/checkpoints` is used as is. Anything else must be an existing
file: a plain state_dict, an ftlab checkpoint, or a `.safetensors` file. `none` starts from
random initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model_weights

from ftlab.errors import WeightsError
from ftlab.fileio import torch_load_safely, user_path
from ftlab.models.adapters import ArchAdapter
from ftlab.models.timm_models import (
    is_timm,
    model_name,
    pretrained_cfg,
    pretrained_tags,
    timm_module,
)
from ftlab.preprocessing import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Preprocessing
from ftlab.runfiles import checkpoint_version

NO_WEIGHTS = ("", "none", "null", "scratch", "random")


@dataclass(frozen=True)
class WeightsSource:
    """A resolved `model.weights` setting.

    Attributes:
        kind: "torchvision", "timm", "file" or "none".
        name: The torchvision enum member (DEFAULT resolved), timm's `<model>.<tag>`, the
            file path, or "none".
        url: Download address for torchvision weights (timm's: its Hugging Face id), else
            None.
        preprocessing: Mean, std and evaluation geometry these weights expect.
    """

    kind: str
    name: str
    url: str | None
    preprocessing: Preprocessing

    def describe(self) -> str:
        if self.kind in ("torchvision", "timm"):
            return f"{self.kind} {self.name}"
        return f"file {self.name}" if self.kind == "file" else "none (random init)"


def resolve_weights(arch: str, spec: str | None) -> WeightsSource:
    """Decide what `spec` means for `arch` without downloading or reading anything."""
    if is_timm(arch):
        return _timm_weights(arch, spec)
    if spec is None or spec.strip().lower() in NO_WEIGHTS:
        return WeightsSource("none", "none", None, Preprocessing())
    enum = _weights_enum(arch)
    if enum is not None and spec in enum.__members__:
        member = enum[spec]
        return WeightsSource("torchvision", member.name, member.url, _preprocessing_of(member))
    path = user_path(spec, "model.weights")
    if path.is_file():
        return WeightsSource("file", str(path), None, Preprocessing())
    names = list(enum.__members__) if enum is not None else []
    if "/" not in spec and "." not in spec and names:
        raise WeightsError(f"model.weights={spec!r} is neither a torchvision weights name of "
                           f"{arch} ({', '.join(names)}) nor an existing file")
    raise WeightsError(f"weights file {path} does not exist; set model.weights to an existing "
                       f"state_dict file, a torchvision weights name"
                       f"{' (' + ', '.join(names) + ')' if names else ''}, or none")


def input_size(arch: str, weights: str | None) -> int:
    """Side in px of the network's input when `data.resolution` is unset: the evaluation crop
    of `weights` if they are torchvision weights of `arch` (EfficientNet-B3's are 300 px),
    else ImageNet's 224 (timm's: that of the tag's pretrained_cfg). Reads the libraries'
    metadata only; nothing is downloaded."""
    if is_timm(arch):
        return _timm_weights(arch, weights).preprocessing.crop_size
    enum = _weights_enum(arch)
    if enum is not None and weights in enum.__members__:
        return _preprocessing_of(enum[weights]).crop_size
    return Preprocessing().crop_size


def load_pretrained(model: nn.Module, adapter: ArchAdapter, source: WeightsSource, arch: str,
                    progress: bool = True, keep_head: bool = False) -> None:
    """Copy the backbone weights of `source` into `model` (the head is replaced afterwards);
    with `keep_head`, the head too, resized to the head of `source`.

    Raises:
        WeightsError: the weights cannot be fetched or read, or do not fit `arch`; with
            `keep_head`, also when they hold no head or there are none.
    """
    if source.kind == "none":
        if keep_head:
            raise WeightsError("model.head=keep needs pretrained weights whose head to keep; "
                               "set model.weights to torchvision weights or a weights file")
        return
    if source.kind == "torchvision":
        state = _download(arch, source, progress)
    elif source.kind == "timm":
        state = _download_timm(source)
    else:
        state = read_weights_file(source.name)
    head_prefix = adapter.head_name(model) + "."
    if keep_head:
        head = state.get(head_prefix + "weight")
        if head is None or head.dim() != 2:
            raise WeightsError(f"weights from {source.describe()} hold no {arch} head "
                               f"({head_prefix}weight) to keep; use model.head=new")
        adapter.reset_head(model, int(head.shape[0]))
        check_fits(state, model, None, source.describe(), arch)
        model.load_state_dict(state, strict=False)
        return
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    check_fits(state, model, head_prefix, source.describe(), arch)
    model.load_state_dict(state, strict=False)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a plain file, an ftlab checkpoint, or safetensors; tensors only."""
    path = Path(path)
    if path.suffix == ".safetensors":
        obj = _read_safetensors(path)
    else:
        obj = torch_load_safely(path, "weights file", WeightsError)
    checkpoint_version(obj, path)  # an ftlab checkpoint of a newer format is refused
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # an ftlab checkpoint
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise WeightsError(f"weights file {path} does not hold a state_dict (a mapping of "
                           "parameter names to tensors); save one with "
                           "torch.save(model.state_dict(), PATH)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_fits(state: dict[str, torch.Tensor], model: nn.Module, head_prefix: str | None,
               source: str, arch: str) -> None:
    """Raise naming the first backbone tensor (every tensor, head included, when
    `head_prefix` is None) that is missing, unknown, or of another shape."""
    expected = {k: v for k, v in model.state_dict().items()
                if head_prefix is None or not k.startswith(head_prefix)}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unknown = [k for k in state if k not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"'{missing[0]}' is missing from it ({len(missing)} missing)")
        if unknown:
            parts.append(f"'{unknown[0]}' is unknown to {arch} ({len(unknown)} unknown)")
        raise WeightsError(f"weights from {source} do not fit {arch}: " + "; ".join(parts)
                           + "; the file is probably for another architecture, so set "
                           "model.arch to match it")
    for key, tensor in expected.items():
        if key in state and state[key].shape != tensor.shape:
            raise WeightsError(f"weights from {source} do not fit {arch}: '{key}' has shape "
                               f"{tuple(state[key].shape)} in the file but {tuple(tensor.shape)} "
                               f"in {arch}; the file is for another width or variant")


def _download(arch: str, source: WeightsSource, progress: bool) -> dict[str, torch.Tensor]:
    member = _weights_enum(arch)[source.name]  # type: ignore[index]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
    try:
        return member.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - urllib, hash and unpickling errors all end here
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise WeightsError(f"could not get {arch} weights {source.name} from {member.url} "
                           f"({reason}); without internet, place that file at {cache} or set "
                           "model.weights to a local state_dict file") from None


def imagenet_classes() -> tuple[list[str], list[str]]:
    """ImageNet-1k's WordNet ids and common names, in the order of its 1000-class heads
    (the sorted ids: torchvision's and timm's class indices). Shipped with ftlab, so no
    download is needed to name a pretrained network's predictions."""
    from torchvision.models import ResNet50_Weights

    text = (Path(__file__).parent / "imagenet_wnids.txt").read_text(encoding="ascii")
    names = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return text.split(), names


TIMM_DEFAULT = ("DEFAULT", "IMAGENET1K_V1")
"""model.weights values meaning a timm model's default pretrained tag (IMAGENET1K_V1 is
ftlab's default setting, so `model.arch=timm:<name>` alone starts from pretrained weights)."""


def _timm_weights(arch: str, spec: str | None) -> WeightsSource:
    name = model_name(arch)
    default = pretrained_cfg(name)
    if spec is None or spec.strip().lower() in NO_WEIGHTS:
        return WeightsSource("none", "none", None, timm_preprocessing(default))
    tags = pretrained_tags(name)
    tag = default.get("tag") if spec in TIMM_DEFAULT else spec.removeprefix(f"{name}.")
    if tag in tags:
        cfg = pretrained_cfg(name, tag)
        return WeightsSource("timm", f"{name}.{tag}", cfg.get("hf_hub_id") or cfg.get("url"),
                             timm_preprocessing(cfg))
    path = user_path(spec, "model.weights")
    if path.is_file():
        return WeightsSource("file", str(path), None, timm_preprocessing(default))
    raise WeightsError(f"model.weights={spec!r} is neither a pretrained tag of {arch} "
                       f"({', '.join(tags) or 'timm has none'}; DEFAULT is "
                       f"{default.get('tag')}) nor an existing weights file")


def timm_preprocessing(cfg: dict) -> Preprocessing:
    """Mean, std, evaluation crop and interpolation from a timm pretrained_cfg."""
    if not cfg:
        return Preprocessing()
    crop = int(cfg.get("input_size", (3, 224, 224))[-1])
    fraction = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation") or "bilinear"
    return Preprocessing(mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
                         std=tuple(cfg.get("std") or IMAGENET_STD), crop_size=crop,
                         resize_size=max(crop, round(crop / fraction)),
                         interpolation=interpolation if interpolation in INTERPOLATIONS
                         else "bilinear")


def _download_timm(source: WeightsSource) -> dict[str, torch.Tensor]:
    """timm's own loading: its Hugging Face cache first, so offline once downloaded."""
    timm = timm_module()
    try:
        return timm.create_model(source.name, pretrained=True).state_dict()
    except Exception as err:  # noqa: BLE001 - hub, network and file errors all end here
        from huggingface_hub.constants import HF_HUB_CACHE

        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise WeightsError(f"could not get timm weights {source.name} from {source.url} "
                           f"({reason}); without internet, download them once where there is "
                           f"into the Hugging Face cache ({HF_HUB_CACHE}, see HF_HOME), or set "
                           "model.weights to a local .pth or .safetensors file") from None


def _weights_enum(arch: str):  # -> type[WeightsEnum] | None
    try:
        return get_model_weights(arch)
    except (ValueError, KeyError):
        return None


def _preprocessing_of(member) -> Preprocessing:  # member: torchvision WeightsEnum
    transform = member.transforms()
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    return Preprocessing(mean=tuple(transform.mean), std=tuple(transform.std),
                         crop_size=crop, resize_size=resize)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"weights file {path} is in safetensors format; install it with "
                           "pip install safetensors") from None
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise WeightsError(f"weights file {path} cannot be read as safetensors "
                           f"({type(err).__name__})") from None
