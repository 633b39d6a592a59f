"""Which module feeds which, observed with one probe forward pass, not assumed.

The rules (`rules/`) match patterns of several modules (a conv and the norm that alone
reads it, a ReLU and what reads it): a probe forward records where each module's input
tensor came from, and the result is cached on the model, whose wiring does not change
during training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ftlab.models.probe import probe_forward

WIRING = "_ftlab_wiring"


@dataclass(frozen=True)
class Block:
    """A container module as the probe saw it: its input and output (labels of probe
    tensors, for `Wiring.tensor_readers`) and its output's size for one probe image."""

    input: int
    output: int
    elements: int


@dataclass(frozen=True)
class Wiring:
    """Who reads whose output, as one forward pass showed it."""

    readers: dict[str, list[str]]
    """module name -> names of the leaf modules that read its output (functional ops such
    as additions are not modules and do not appear)."""
    sizes: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    """conv/linear name -> (elements of its output, multiply-adds), for one probe image."""
    blocks: dict[str, Block] = dataclasses.field(default_factory=dict)
    """container module name -> what goes in and out of it (its leaves' outputs are in
    `readers`; this is for rules that rebuild a whole container's output)."""
    tensor_readers: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    """A tensor of the probe (`Block.input` / `Block.output`) -> the leaf modules that read
    it."""

    def producers(self, name: str) -> list[str]:
        """The modules whose output only `name` reads."""
        return [p for p, names in self.readers.items() if set(names) == {name}]

    def producer(self, name: str) -> str | None:
        """The one module whose output only `name` reads, if there is one."""
        found = self.producers(name)
        return found[0] if len(found) == 1 else None

    def source(self, name: str) -> str | None:
        """The one module whose output `name` reads (others may read it too), if known."""
        found = [p for p, names in self.readers.items() if name in names]
        return found[0] if len(found) == 1 else None

    def norm_after(self, conv: str, modules: dict[str, nn.Module]) -> nn.Module | None:
        """The BatchNorm2d that alone reads `conv`'s output, if any."""
        names = self.readers.get(conv, [])
        if len(names) == 1 and (type(modules[names[0]]) is nn.BatchNorm2d
                                or norm_act(modules[names[0]])):
            return modules[names[0]]
        return None


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
    blocks: dict[str, Block] = {}
    tensor_readers: dict[int, list[str]] = {}
    alive: list[torch.Tensor] = []
    handles = []
    for name, module in model.named_modules():
        if list(module.children()) and not norm_act(module):  # containers: their leaves
            if name:  # are observed instead; a norm + activation module is one layer
                handles.append(module.register_forward_hook(
                    lambda m, args, out, name=name: _record_block(blocks, alive, name, args,
                                                                  out)))
            continue
        handles.append(module.register_forward_pre_hook(
            lambda m, args, name=name: _record_reader(readers, producers, args, name,
                                                      tensor_readers, alive)))
        handles.append(module.register_forward_hook(
            lambda m, args, out, name=name: producers.__setitem__(id(out), (name, out))))
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(
                lambda m, args, out, name=name: sizes.__setitem__(name, _size(m, out))))
    probe_forward(model, probe_size, handles)
    wiring = Wiring(readers=readers, sizes=sizes, blocks=blocks, tensor_readers=tensor_readers)
    model.__dict__[WIRING] = wiring
    return wiring


def _size(module: nn.Module, out: torch.Tensor) -> tuple[int, int]:
    """(output elements, multiply-adds) of a conv or linear layer."""
    if isinstance(module, nn.Linear):
        return out.numel(), out.numel() * module.in_features
    kernel = module.weight[0].numel()  # (in_channels / groups) x kernel area
    return out.numel(), out.numel() * kernel


def _record_reader(readers: dict[str, list[str]],
                   producers: dict[int, tuple[str, torch.Tensor]], args: tuple, name: str,
                   tensor_readers: dict[int, list[str]], alive: list[torch.Tensor]) -> None:
    if args and isinstance(args[0], torch.Tensor):
        alive.append(args[0])  # referenced until the probe ends: its id labels it alone
        tensor_readers.setdefault(id(args[0]), []).append(name)
        if id(args[0]) in producers:
            readers.setdefault(producers[id(args[0])][0], []).append(name)


def _record_block(blocks: dict[str, Block], alive: list[torch.Tensor], name: str,
                  args: tuple, out: object) -> None:
    """A container's input and output, referenced until the probe ends (so their ids label
    them alone)."""
    if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
        alive.extend((args[0], out))
        blocks[name] = Block(id(args[0]), id(out), out[0].numel())


def norm_act(module: nn.Module) -> bool:
    """timm's BatchNormAct2d: a BatchNorm2d that applies its dropout and activation after
    normalising (one module where torchvision has two or three)."""
    return (isinstance(module, nn.BatchNorm2d) and type(module).__name__ == "BatchNormAct2d"
            and isinstance(getattr(module, "act", None), nn.Module)
            and isinstance(getattr(module, "drop", None), nn.Module))
