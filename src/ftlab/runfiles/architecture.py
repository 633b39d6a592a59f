"""architecture.json: a network block by block — what each block is, what trains in it,
which modules a strategy added to it, and the activation memory backward keeps for it.

`ftlab arch` writes it beside its figure, and a suite writes one into each complete run
folder; the report draws it again from this file, without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftlab.errors import RunDirError
from ftlab.runfiles.fields import field_values, read_json
from ftlab.runfiles.versions import checked_version

ARCHITECTURE_VERSION = 1
"""The architecture.json layout this code writes."""


@dataclass(frozen=True, kw_only=True)
class BlockRecord:
    """One block of the backbone (block 0 is the stem), or the head."""

    index: int
    name: str
    """Its module prefixes, joined by '+' (ResNet's stem is conv1+bn1)."""
    kind: str
    """Class name(s) of its module(s): InvertedResidual, Bottleneck, Linear, ..."""
    in_shape: list[int]
    """Channels, height, width of its input for one image (features for the head)."""
    out_shape: list[int]
    stride: int
    expand: float | None
    """Width of its depthwise convolution over its input channels (inverted residuals' t);
    None without one."""
    params: dict[str, list[int]]
    """weights (of convolutions and linears), biases (norm shifts β included), norm scales
    (γ), inserted (modules a strategy added): [trainable, total] parameters of each kind."""
    branches: list[dict[str, Any]]
    """Modules a strategy inserted here: name, kind, and its layers (description strings)."""
    stock_bytes: int
    """Activation bytes autograd saves for this block, stock PyTorch modules (measured)."""
    efficient_bytes: int
    """The same under ftlab's memory-efficient execution (measured)."""
    analytic_bytes: int
    """What backward needs for this block (TinyTL's per-layer count)."""

    @property
    def trains(self) -> bool:
        return any(counts[0] for counts in self.params.values())


@dataclass(frozen=True, kw_only=True)
class ArchitectureRecord:
    """architecture.json."""

    format_version: int = ARCHITECTURE_VERSION
    arch: str
    strategy: dict[str, Any]
    """The strategy's name and options."""
    batch_size: int
    resolution: int
    num_classes: int
    device: str
    blocks: list[BlockRecord]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @property
    def title(self) -> str:
        return (f"{self.arch} · {self.strategy['name']} · batch {self.batch_size} at "
                f"{self.resolution} px")

    @classmethod
    def from_dict(cls, values: Any, source: object) -> ArchitectureRecord:
        if not isinstance(values, dict) or not isinstance(values.get("blocks"), list):
            raise RunDirError(f"{source} is not an ftlab architecture.json; run ftlab arch "
                              "again to rewrite it")
        checked_version(values, ARCHITECTURE_VERSION, "architecture.json", source, RunDirError)
        kwargs = field_values(cls, values, "architecture.json", source, RunDirError)
        if not all(isinstance(block, dict) for block in kwargs["blocks"]):
            raise RunDirError(f"{source} is not a readable architecture.json: a block is not "
                              "a JSON object; run ftlab arch again to rewrite it")
        kwargs["blocks"] = [BlockRecord(**field_values(BlockRecord, block, "architecture "
                                                       "block", source, RunDirError))
                            for block in kwargs["blocks"]]
        return cls(**kwargs)


def read_architecture(path: Path) -> ArchitectureRecord:
    return ArchitectureRecord.from_dict(read_json(path, "run ftlab arch again to rewrite it"),
                                        path)
