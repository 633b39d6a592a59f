"""ftlab: which fine-tuning strategy to use, what accuracy it buys, and what memory it costs.

The Python API mirrors the CLI::

    import ftlab
    summary = ftlab.train("configs/cifar10_mobilenet_v2.yaml", overrides=["optim.lr=3e-4"])
    result = ftlab.evaluate("runs/cifar10-mobilenet_v2-full-s0")       # ftlab eval
    for p in ftlab.predict("runs/cifar10-mobilenet_v2-full-s0", ["photos/"]):  # ftlab predict
        print(p.path, p.top[0])
    ftlab.export("runs/cifar10-mobilenet_v2-full-s0", "onnx", "model.onnx")  # ftlab export
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftlab.version import __version__

if TYPE_CHECKING:
    from ftlab.config import ExperimentConfig, load_config
    from ftlab.inference import evaluate
    from ftlab.inference.export import export
    from ftlab.inference.predict import predict
    from ftlab.training import train

__all__ = ["ExperimentConfig", "__version__", "evaluate", "export", "load_config", "predict",
           "train"]


def __getattr__(name: str) -> Any:
    # Lazy, so `ftlab --help` and `import ftlab` do not pay for importing torch.
    if name == "train":
        from ftlab.training import train

        return train
    if name == "evaluate":
        from ftlab.inference import evaluate

        return evaluate
    if name in ("predict", "export"):
        import importlib

        return getattr(importlib.import_module(f"ftlab.inference.{name}"), name)
    if name in ("ExperimentConfig", "load_config"):
        import ftlab.config

        return getattr(ftlab.config, name)
    raise AttributeError(f"module 'ftlab' has no attribute {name!r}")
