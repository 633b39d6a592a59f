"""Training: the experiment builder, the epoch loop, checkpoints, logs and the `train` API.

What other packages use of training is named here; they import nothing below this face.
"""

from ftlab.training.api import ensure_console_log, train
from ftlab.training.experiment import check_config, resolve_config, resolve_device
from ftlab.training.interrupt import StopFlag
from ftlab.training.optim import build_optimizer

__all__ = ["StopFlag", "build_optimizer", "check_config", "ensure_console_log", "resolve_config",
           "resolve_device",
           "train"]
