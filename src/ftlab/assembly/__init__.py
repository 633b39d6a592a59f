"""From a config to the objects a run is made of: data and loaders, the prepared model,
optimizer, scheduler and step settings (`build_experiment`), and the checks that come first
(`check_config`, `resolve_config`). Nothing here writes files or runs an epoch.
"""

from ftlab.assembly.experiment import (
    AMP_DTYPES,
    Experiment,
    build_experiment,
    check_config,
    resolve_config,
)
from ftlab.assembly.fits import check_step_fits, stock_step_bytes
from ftlab.assembly.frozen import store_frozen_weights
from ftlab.assembly.loaders import Loaders, build_loaders
from ftlab.assembly.optim import build_optimizer
from ftlab.assembly.schedule import build_scheduler, lr_factor
from ftlab.assembly.step import StepSettings, TrainStep

__all__ = ["AMP_DTYPES", "Experiment", "Loaders", "StepSettings", "TrainStep",
           "build_experiment", "build_loaders", "build_optimizer", "build_scheduler",
           "check_config", "check_step_fits", "lr_factor", "resolve_config", "stock_step_bytes",
           "store_frozen_weights"]
