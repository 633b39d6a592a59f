"""What `ftlab eval`, `predict` and `export` work on: a run folder, a checkpoint, or
pretrained weights with their own head.

A run folder gives its best-validation checkpoint (the one its summary's test numbers come
from); a checkpoint file carries its config, classes and strategy, so a TinyTL network is
rebuilt with its side branches at the resolution it trained at. `pretrained:<weights>` is a
torchvision weights name or a weights file for `model.arch`, evaluated with the head it
came with (`model.head=keep`): ImageNet's 1000 classes for torchvision's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftlab.config import ExperimentConfig, config_from_dict, load_config
from ftlab.data.transforms import InputSpec, resolve_input
from ftlab.efficient import apply_memory_plan
from ftlab.errors import ConfigError, WeightsError
from ftlab.fileio import torch_load_safely, user_path
from ftlab.models import (
    BuiltModel,
    build_model,
    get_adapter,
    imagenet_classes,
    resolve_weights,
)
from ftlab.preprocessing import Preprocessing
from ftlab.runfiles import BEST, LAST, Checkpoint, checkpoint_version
from ftlab.strategies import Strategy, prepare_model

PRETRAINED = "pretrained:"
RUN_OVERRIDES = ("data.", "train.device", "train.eval_batch_size", "train.num_threads",
                 "train.amp", "train.channels_last")
"""What may change when a trained network is evaluated: its data, and how it is run."""


@dataclass
class Target:
    """A network to evaluate, predict with or export, and how to read its outputs.

    Attributes:
        label: Short name for outputs: the run folder's or checkpoint's name, or
            `pretrained-<weights>`.
        kind: "checkpoint" (a run folder or checkpoint file) or "pretrained".
        config: The run's config with the overrides applied (defaults + overrides for
            pretrained weights).
        classes: Identifier of each output of the head (class names; ImageNet's WordNet ids
            for a kept ImageNet head).
        names: Readable name of each output (the class names; ImageNet's common names).
        train_resolution: Side the network was built and trained at (TinyTL's branches
            depend on it); evaluation may use another `data.resolution`.
        state: The checkpoint's model state (None: loaded from the pretrained weights).
    """

    label: str
    kind: str
    source: str
    config: ExperimentConfig
    classes: list[str]
    names: list[str]
    train_resolution: int
    state: dict[str, torch.Tensor] | None = None
    strategy_state: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0

    @property
    def arch(self) -> str:
        return self.config.model.arch

    @property
    def imagenet_head(self) -> bool:
        return self.kind == "pretrained" and len(self.classes) == 1000

    def preprocessing(self) -> Preprocessing:
        """What the starting weights expect, read from torchvision's metadata; ImageNet's
        defaults when the weights were a file (or one that has moved since)."""
        return _preprocessing(self.config)

    def input_spec(self) -> InputSpec:
        """The evaluation geometry and normalisation, as the run resolved them."""
        return resolve_input(self.config.data, self.preprocessing())

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "source": self.source,
                "arch": self.arch, "strategy": self.config.strategy.name,
                "classes": len(self.classes), "epoch": self.epoch}


def load_target(spec: str, overrides: Sequence[str] = ()) -> Target:
    """A run folder, an ftlab checkpoint file, or `pretrained:<weights>` (with
    `model.head=keep`), with `overrides` applied to its config.

    Raises:
        WeightsError: `spec` is none of these, or names weights that cannot be read.
        ConfigError: an override that cannot apply to a trained network.
    """
    if spec.startswith(PRETRAINED):
        return _pretrained(spec[len(PRETRAINED):], overrides)
    path = user_path(spec, "target")
    if path.is_dir():
        checkpoint = path / BEST if (path / BEST).is_file() else path / LAST
        if not checkpoint.is_file():
            raise WeightsError(f"{path} holds no {BEST} or {LAST}; pass a trained ftlab run "
                               "folder, an ftlab checkpoint, or pretrained:<weights>")
        return _checkpoint(checkpoint, path.name, overrides)
    if path.is_file():
        return _checkpoint(path, path.stem, overrides)
    raise WeightsError(f"{spec} is neither a run folder, a checkpoint file, nor "
                       "pretrained:<weights> (a torchvision weights name or a weights file)")


def _checkpoint(path: Path, label: str, overrides: Sequence[str]) -> Target:
    obj = torch_load_safely(path, "checkpoint", WeightsError)
    if checkpoint_version(obj, path) is None:
        raise WeightsError(f"{path} is a plain state_dict, not an ftlab checkpoint: it names "
                           "no classes or preprocessing; evaluate it as pretrained:" f"{path} "
                           "model.arch=ARCH model.head=keep")
    checkpoint = Checkpoint.from_dict(obj, path)
    _check_run_overrides(overrides)
    trained = config_from_dict(checkpoint.config)
    config = config_from_dict(checkpoint.config, overrides)
    resolution = resolve_input(trained.data, _preprocessing(trained)).resolution
    return Target(label=label, kind="checkpoint", source=str(path), config=config,
                  classes=list(checkpoint.classes), names=list(checkpoint.classes),
                  train_resolution=resolution, state=dict(checkpoint.model),
                  strategy_state=dict(checkpoint.strategy_state),
                  epoch=checkpoint.best.get("epoch") or checkpoint.epoch)


def _pretrained(weights: str, overrides: Sequence[str]) -> Target:
    config = load_config(None, [*overrides, f"model.weights={weights}"])
    if config.model.head != "keep":
        raise ConfigError(f"pretrained:{weights} has no head trained for "
                          f"{config.data.name}: set model.head=keep to evaluate the head it "
                          "came with (ImageNet's classes), or pass a fine-tuned run")
    get_adapter(config.model.arch)
    source = resolve_weights(config.model.arch, weights)
    if source.kind == "none":
        raise WeightsError(f"pretrained:{weights} names no weights; pass a torchvision "
                           "weights name (IMAGENET1K_V1) or a weights file")
    built = build_model(config.model.arch, source, 0, keep_head=True)
    outputs = built.adapter.head(built.model).out_features
    classes, names = imagenet_classes() if outputs == 1000 else \
        ([str(i) for i in range(outputs)], [str(i) for i in range(outputs)])
    label = "pretrained-" + Path(weights).stem if source.kind == "file" else \
        f"pretrained-{config.model.arch}-{source.name}"
    target = Target(label=label, kind="pretrained", source=source.describe(), config=config,
                    classes=classes, names=names,
                    train_resolution=resolve_input(config.data, source.preprocessing).resolution)
    target.state = built.model.state_dict()
    return target


def _check_run_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:
        key = item.partition("=")[0].strip()
        if not key.startswith(RUN_OVERRIDES):
            raise ConfigError(f"{key} cannot change for a trained network: its architecture, "
                              "strategy and weights are the checkpoint's; overrides may set "
                              "data.* and train.device, train.eval_batch_size, "
                              "train.num_threads, train.amp, train.channels_last")


def _preprocessing(config: ExperimentConfig) -> Preprocessing:
    try:
        return resolve_weights(config.model.arch, config.model.weights).preprocessing
    except WeightsError:
        return Preprocessing()


def build_network(target: Target, *, as_trained: bool = False) -> nn.Module:
    """The target's network in eval mode, on the CPU.

    With `as_trained`, also as the run executed at its end: the strategy's last epoch
    (gradual unfreezing's trainable set) and memory-efficient execution when the run used
    it, so an evaluation reproduces the run's own test numbers bit for bit (a folded
    BatchNorm rounds differently). Without, plain modules only: what export writes.
    """
    if target.kind == "pretrained":
        built = build_model(target.arch, target.config.model.weights, 0, keep_head=True)
        model = built.model
    else:
        prepared = prepare_model(target.arch, None, target.config.strategy,
                                 len(target.classes), target.train_resolution,
                                 seed=target.config.train.seed, load_weights=False)
        model = prepared.model
        _load_state(model, target)
        if as_trained:
            _as_trained(prepared.built, prepared.strategy, target)
    return model.eval()


def _load_state(model: nn.Module, target: Target) -> None:
    assert target.state is not None
    missing, unexpected = model.load_state_dict(target.state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        what = f"'{missing[0]}' is missing" if missing else f"'{unexpected[0]}' is unknown"
        raise WeightsError(f"checkpoint {target.source} does not fit {target.arch} with "
                           f"strategy {target.config.strategy.name}: {what}; it was written "
                           "by another version of the strategy or architecture")


def _as_trained(built: BuiltModel, strategy: Strategy, target: Target) -> None:
    """The run's test evaluation ran on the best weights in the state of its last epoch."""
    strategy.load_state_dict(target.strategy_state)
    strategy.begin_epoch(target.config.train.epochs, built.model, built.adapter)
    strategy.set_train_mode(built.model)  # the plan folds only norms that were in eval mode
    if target.config.train.memory_efficient:
        apply_memory_plan(built.model)
