"""VPT: visual prompt tuning, learned tokens joining a frozen Vision Transformer's sequence
(Jia et al., "Visual Prompt Tuning", ECCV 2022)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ftlab.config.schema import check_number
from ftlab.config.search import FloatRange, IntRange
from ftlab.errors import ConfigError
from ftlab.models.adapters import ArchAdapter
from ftlab.strategies.base import ParamInfo, Strategy, register_strategy

MODULE = "vpt"
"""The model's child holding the prompts (state_dict key `vpt.prompts`)."""


@dataclass(frozen=True)
class VptOptions:
    tokens: int = 10
    """Prompt tokens per block (the paper tunes 1-200 per task)."""
    deep: bool = True
    """VPT-deep: a new set of prompts at every block's input; false is VPT-shallow, one set
    at the first block's input, carried through the blocks as tokens."""
    dropout: float = 0.1
    """Dropout on the prompts in training (the paper's 0.1)."""

    def __post_init__(self) -> None:
        check_number("strategy.tokens", self.tokens, low=1, high=1024)
        check_number("strategy.dropout", self.dropout, low=0.0, high=1.0, high_open=True)


class Prompts(nn.Module):
    """One set of `tokens` learned tokens per block (one in all for shallow), initialised
    uniformly as the paper does: Xavier's bound for a patch-embedding-sized fan-in."""

    def __init__(self, sets: int, tokens: int, dim: int, patch_area: int, dropout: float
                 ) -> None:
        super().__init__()
        bound = math.sqrt(6.0 / float(3 * patch_area + dim))
        self.prompts = nn.Parameter(torch.empty(sets, tokens, dim).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)

    def tokens(self, index: int, batch: int) -> torch.Tensor:
        return self.dropout(self.prompts[index]).unsqueeze(0).expand(batch, -1, -1)


@register_strategy
class Vpt(Strategy):
    """Prompts placed after the class (and register) tokens: shallow at the first block's
    input, deep at every block's input in place of the last block's prompt outputs; removed
    after the last block, so the head reads the sequence it was built for. Prompts and the
    head train; the backbone and its norms stay frozen. Vision Transformers only (ViT,
    DeiT, DINOv2); EVA-02's rotary position embedding has no place for extra tokens."""

    name = "vpt"
    summary = "VPT: learned prompt tokens at each block (deep) or the first (shallow), + head"
    Options = VptOptions
    default_lr = 3e-3  # as bias and tinytl: not measured (the mirror has no ViT weights)
    search_space = {"optim.lr": FloatRange(1e-4, 3e-2, log=True),
                    "strategy.tokens": IntRange(1, 50)}
    freezes_pretrained_norm_stats = True

    def insert_modules(self, model: nn.Module, adapter: ArchAdapter, input_size: int
                       ) -> list[str]:
        blocks = adapter.token_blocks(model)
        if not blocks:
            raise ConfigError(f"strategy vpt needs a Vision Transformer whose blocks take "
                              f"extra tokens (timm vit_*, deit_*, deit3_*); "
                              f"{type(model).__name__} has none")
        first = model.get_submodule(blocks[0])
        patch = getattr(model.patch_embed, "patch_size", (16, 16))
        dim = int(model.embed_dim)
        prompts = Prompts(len(blocks) if self.options.deep else 1, self.options.tokens, dim,
                          int(patch[0]) * int(patch[1]), self.options.dropout)
        model.add_module(MODULE, prompts)
        prefix, count = adapter.prefix_tokens(model), self.options.tokens
        first.register_forward_pre_hook(_Insert(prompts, 0, prefix))
        if self.options.deep:
            for index, name in enumerate(blocks[1:], start=1):
                model.get_submodule(name).register_forward_pre_hook(
                    _Replace(prompts, index, prefix, count))
        model.get_submodule(blocks[-1]).register_forward_hook(_Remove(prefix, count))
        return [MODULE]

    def is_trainable(self, param: ParamInfo) -> bool:
        return param.is_head or param.is_new


class _Insert:
    """Pre-hook: the block's input with the prompts after the prefix tokens."""

    def __init__(self, prompts: Prompts, index: int, prefix: int) -> None:
        self.prompts, self.index, self.prefix = prompts, index, prefix

    def __call__(self, block: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        tokens = self.prompts.tokens(self.index, x.shape[0]).to(x.dtype)
        return (torch.cat([x[:, :self.prefix], tokens, x[:, self.prefix:]], dim=1),
                *args[1:])


class _Replace(_Insert):
    """Pre-hook (VPT-deep): the last block's prompt outputs replaced by this block's."""

    def __init__(self, prompts: Prompts, index: int, prefix: int, count: int) -> None:
        super().__init__(prompts, index, prefix)
        self.count = count

    def __call__(self, block: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        tokens = self.prompts.tokens(self.index, x.shape[0]).to(x.dtype)
        rest = x[:, self.prefix + self.count:]
        return (torch.cat([x[:, :self.prefix], tokens, rest], dim=1), *args[1:])


class _Remove:
    """Forward hook on the last block: the sequence without the prompts."""

    def __init__(self, prefix: int, count: int) -> None:
        self.prefix, self.count = prefix, count

    def __call__(self, block: nn.Module, args: tuple[Any, ...], output: torch.Tensor
                 ) -> torch.Tensor:
        return torch.cat([output[:, :self.prefix], output[:, self.prefix + self.count:]],
                         dim=1)
