"""ftlab: which fine-tuning strategy to use, what accuracy it buys, and what memory it costs.

The Python API mirrors the CLI::

    import ftlab
    summary = ftlab.train("configs/cifar10_mobilenet_v2.yaml", overrides=["optim.lr=3e-4"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftlab.version import __version__

if TYPE_CHECKING:
    from ftlab.config import ExperimentConfig, load_config
    from ftlab.training import train

__all__ = ["ExperimentConfig", "__version__", "load_config", "train"]


def __getattr__(name: str) -> Any:
    # Lazy, so `ftlab --help` and `import ftlab` do not pay for importing torch.
    if name == "train":
        from ftlab.training import train

        return train
    if name in ("ExperimentConfig", "load_config"):
        import ftlab.config

        return getattr(ftlab.config, name)
    raise AttributeError(f"module 'ftlab' has no attribute {name!r}")
