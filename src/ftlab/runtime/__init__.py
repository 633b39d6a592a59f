"""What a process needs to run ftlab's work, whatever the work: the device and precision,
its place in a torchrun launch, stop signals, the console log, and the child processes it
supervises.

Below the packages that train, measure and run suites, so each of them uses these without
reaching into another.
"""

from ftlab.runtime import distributed
from ftlab.runtime.device import free_memory, resolve_amp, resolve_device
from ftlab.runtime.distributed import Distributed
from ftlab.runtime.interrupt import StopFlag
from ftlab.runtime.logs import ensure_console_log
from ftlab.runtime.processes import cpu_share, start_logged, stop_all

__all__ = ["Distributed", "StopFlag", "cpu_share", "distributed", "ensure_console_log",
           "free_memory", "resolve_amp", "resolve_device", "start_logged", "stop_all"]
