"""What `ftlab diff` compares: run folders, checkpoint files, or pretrained weights.

A run folder gives its best-validation checkpoint, its architecture, its strategy (so a
TinyTL network is rebuilt with its side branches) and its data settings (for the probe
batch). `pretrained:<weights>` is a torchvision weights name or a weights file, for the
architecture of the other side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftlab.config import ExperimentConfig, StrategyConfig, config_from_dict
from ftlab.errors import WeightsError
from ftlab.fileio import torch_load_safely
from ftlab.models import build_model, head_name, read_weights_file
from ftlab.models.weights import load_pretrained, resolve_weights
from ftlab.runfiles import BEST, LAST, Checkpoint, checkpoint_version
from ftlab.strategies import Strategy, get_strategy, prepare_model

PRETRAINED = "pretrained:"


@dataclass
class Network:
    """One side of a comparison."""

    label: str
    state: dict[str, torch.Tensor]
    arch: str | None
    config: ExperimentConfig | None = None

    def head_size(self, head: str) -> int | None:
        weight = self.state.get(f"{head}.weight")
        return None if weight is None else int(weight.shape[0])


def load_network(spec: str, arch_hint: str | None = None) -> Network:
    """A run folder, a checkpoint or state_dict file, or pretrained:<name or file>."""
    if spec.startswith(PRETRAINED):
        weights = spec[len(PRETRAINED):]
        return _pretrained(weights, arch_hint, f"pretrained {Path(weights).name}")
    path = Path(spec)
    if path.is_dir():
        checkpoint = path / BEST if (path / BEST).is_file() else path / LAST
        if not checkpoint.is_file():
            raise WeightsError(f"{path} holds no best.pt or last.pt; pass a finished ftlab run "
                               "folder, a checkpoint file, or pretrained:<weights>")
        return _checkpoint(checkpoint, path.name)
    if path.is_file():
        return _checkpoint(path, path.name)
    raise WeightsError(f"{spec} is neither a run folder, a checkpoint file, nor "
                       "pretrained:<weights>")


def _checkpoint(path: Path, label: str) -> Network:
    """An ftlab checkpoint (checked, a newer format refused) with its architecture and
    config, else a plain state_dict file."""
    obj = torch_load_safely(path, "checkpoint", WeightsError)
    if checkpoint_version(obj, path) is not None:
        checkpoint = Checkpoint.from_dict(obj, path)
        config = config_from_dict(checkpoint.config)
        state = _exported_state(dict(checkpoint.model), checkpoint.arch, config)
        return Network(label, state, checkpoint.arch, config)
    return Network(label, read_weights_file(path), None)


def _exported_state(state: dict[str, torch.Tensor], arch: str, config: ExperimentConfig
                    ) -> dict[str, torch.Tensor]:
    """The weights as the strategy exports them: a PEFT run's adapters merged into the
    weights they adapt, so that it compares layer by layer with any run of the
    architecture; other strategies' checkpoints as they are."""
    strategy = get_strategy(config.strategy)
    if type(strategy).export_network is Strategy.export_network:
        return state
    model = _prepared(arch, config.strategy, state)
    model.load_state_dict(state, strict=True)
    return dict(strategy.export_network(model).state_dict())


def _prepared(arch: str, strategy: StrategyConfig, state: dict[str, torch.Tensor],
              input_size: int = 64) -> nn.Module:
    """`arch` with `strategy`'s modules, for a checkpoint whose head is in `state`."""
    weight = state.get(f"{head_name(arch)}.weight")
    classes = 1000 if weight is None else int(weight.shape[0])
    return prepare_model(arch, None, strategy, classes, input_size, load_weights=False).model


def _pretrained(weights: str, arch: str | None, label: str) -> Network:
    if arch is None:
        raise WeightsError(f"{label}: the architecture of pretrained weights comes from the "
                           "other side of the comparison; compare them with a run or an ftlab "
                           "checkpoint")
    built = build_model(arch, None, 1000, pretrained=False)
    load_pretrained(built.model, built.adapter, resolve_weights(arch, weights), arch)
    state = {k: v for k, v in built.model.state_dict().items()
             if not k.startswith(head_name(arch) + ".")}
    return Network(label, state, arch)


def rebuild(network: Network, arch: str, input_size: int) -> nn.Module:
    """The network as a module: with its strategy's inserted modules when it has a config."""
    head = network.head_size(head_name(arch)) or 1000
    strategy = network.config.strategy if network.config is not None else StrategyConfig()
    prepared = prepare_model(arch, None, strategy, head, input_size, load_weights=False)
    model = prepared.strategy.export_network(prepared.model)  # as `network.state` holds it
    missing, _ = model.load_state_dict(network.state, strict=False)
    backbone_missing = [k for k in missing if not k.endswith("num_batches_tracked")
                        and not k.startswith(head_name(arch) + ".")]
    if backbone_missing:
        raise WeightsError(f"{network.label} lacks '{backbone_missing[0]}' of {arch}")
    return model.eval()


def describe(network: Network) -> dict[str, Any]:
    return {"label": network.label, "arch": network.arch,
            "strategy": network.config.strategy.name if network.config else None}
