"""`train.compile`: the training model through `torch.compile`, or eagerly when that fails.

Compilation happens at the first call, not when `torch.compile` returns, and it can fail for
reasons that have nothing to do with the run: no C++ compiler for inductor on this machine,
an operation the backend cannot lower. A run then loses nothing by going on eagerly (the
same modules, the same gradients), so it does, after one warning that names the failure.
Errors of the model itself are not the compiler's and are raised as they are.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

COMPILER_MODULES = ("torch._dynamo", "torch._inductor")
"""Where torch.compile's own exceptions live (BackendCompilerFailed, InductorError, ...):
matched by module because torch exports no common base class for them."""


class CompiledOrEager(nn.Module):
    """Calls `torch.compile(model)`; after a compiler failure, `model` itself, for good."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.eager = model
        # Not a child module: it holds the same parameters as `eager`.
        self.__dict__["compiled"] = torch.compile(model)
        self.failed: str | None = None
        """The compiler error that made this model run eagerly, if one did."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is None:
            try:
                return self.__dict__["compiled"](*args, **kwargs)
            except Exception as err:  # noqa: BLE001 (sorted below: only the compiler's)
                if not compiler_error(err):
                    raise
                self.failed = _reason(err)
                log.warning("train.compile: torch.compile failed (%s); training goes on "
                            "without compiling, with the same gradients", self.failed)
        return self.eager(*args, **kwargs)


def compiler_error(err: BaseException) -> bool:
    """Whether `err` (or what it wraps) was raised by torch.compile's machinery."""
    while err is not None:
        if type(err).__module__.startswith(COMPILER_MODULES):
            return True
        err = err.__cause__  # type: ignore[assignment]
    return False


def _reason(err: BaseException) -> str:
    """The failure in one line: the compiler's wrapper and the error it wraps, which says
    what went wrong (BackendCompilerFailed around "no C++ compiler", say)."""
    inner: BaseException = err
    while getattr(inner, "inner_exception", None) is not None or inner.__cause__ is not None:
        inner = getattr(inner, "inner_exception", None) or inner.__cause__  # type: ignore
    text = (str(inner).strip().splitlines() or [""])[0][:200]
    what = f"{type(inner).__name__}: {text}" if text else type(inner).__name__
    return what if inner is err else f"{type(err).__name__}, {what}"
