"""Training: the runner, the epoch loop, checkpoints, run-folder records and the `train` API.

Config -> objects is `ftlab.assembly`; device, processes, signals and logging are
`ftlab.runtime`. What other packages use of training is named here.
"""

from ftlab.training.api import train

__all__ = ["train"]
