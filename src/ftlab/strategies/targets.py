"""Choosing layers by role: what `strategy.target` names, resolved through the architecture
adapter (`ArchAdapter.layer_roles`), never through module names a strategy knows. Shared by
the PEFT methods and SSF."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ftlab.config.schema import fail
from ftlab.errors import ConfigError
from ftlab.models.adapters import LAYER_ROLES, ArchAdapter

GROUPS = {"all": tuple(LAYER_ROLES), "auto": tuple(r for r in LAYER_ROLES if r != "depthwise")}
"""Names that stand for several roles in `strategy.target`."""



def target_roles(target: str) -> tuple[str, ...]:
    """The roles `strategy.target` names (`pointwise+conv`, `auto`, `all`), checked."""
    roles: list[str] = []
    for part in target.split("+"):
        part = part.strip()
        if part not in GROUPS and part not in LAYER_ROLES:
            fail("strategy.target", target, "roles joined with +, each one of "
                 + ", ".join([*LAYER_ROLES, *GROUPS]))
        roles.extend(r for r in GROUPS.get(part, (part,)) if r not in roles)
    return tuple(roles)


@dataclass(frozen=True)
class TargetOptions:
    """Which layers a method adapts (PEFT methods, SSF), and what trains beside its own
    parameters."""

    target: str = "auto"
    """Backbone layers that get an adapter, by role joined with `+`: pointwise, conv,
    depthwise, qkv, proj, mlp; `auto` is every role but depthwise (whose adapters can
    outweigh the layer), `all` every role (docs/strategies.md, PEFT methods)."""
    bias: bool = False
    """Also train every bias (norm β included): the method combined with BitFit."""
    norm: bool = False
    """Also train the norm layers' γ and β (their statistics stay fixed unless
    strategy.norm_stats=update)."""

    def __post_init__(self) -> None:
        target_roles(self.target)


def role_layers(model: nn.Module, adapter: ArchAdapter, target: str) -> dict[str, bool]:
    """The layers of the roles `strategy.target` names, input to output, each with
    whether its role was named explicitly; a role the model lacks is an error naming the
    roles it has."""
    available = adapter.layer_roles(model)
    explicit = [p.strip() for p in target.split("+") if p.strip() not in GROUPS]
    missing = [role for role in explicit if not available[role]]
    if missing:
        have = ", ".join(f"{r} ({len(v)})" for r, v in available.items() if v)
        raise ConfigError(f"strategy.target={target}: "
                          f"{type(model).__name__} has no {missing[0]} layers; it has "
                          f"{have}")
    chosen = {name: role in explicit for role in target_roles(target)
              for name in available[role]}
    if not chosen:
        raise ConfigError(f"strategy.target={target} selects no layer of "
                          f"{type(model).__name__}; choose roles it has")
    order = list(dict(model.named_modules()))
    return dict(sorted(chosen.items(), key=lambda item: order.index(item[0])))
