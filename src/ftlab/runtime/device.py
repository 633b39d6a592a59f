"""Which device and precision a run computes on, from its settings and the machine."""

from __future__ import annotations

import torch

from ftlab.errors import ConfigError


def resolve_device(name: str, amp: str = "none") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available; use "
                          "train.device=cpu or auto")
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          "cpu" if name == "auto" else name)
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs a CUDA device; use train.amp=bf16 or none on CPU")
    return device


def resolve_amp(amp: str, device: torch.device) -> str:
    """`auto`: bf16 where the GPU computes it natively (Ampere and later), else fp32."""
    if amp != "auto":
        return amp
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "none"


def free_memory(device: str | torch.device) -> int | None:
    """Bytes free for a step on `device`: the CUDA device's free memory, or the system's
    available memory (None where the system does not say)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
