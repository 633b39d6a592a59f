"""Training: the experiment builder, the epoch loop, checkpoints, logs and the `train` API."""

from ftlab.training.api import train

__all__ = ["train"]
