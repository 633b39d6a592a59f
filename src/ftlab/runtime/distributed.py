"""Data-parallel training through torchrun (torch.distributed, DDP).

`torchrun --nproc_per_node N -m ftlab train ...` starts N copies; each finds its rank in the
environment torchrun sets. `train.batch_size` stays the *global* batch: each process trains
on its 1/N share of every global batch, gradients are averaged, so a run gives the same
optimisation whatever N is. Only rank 0 writes files; all ranks read checkpoints to resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ftlab.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def device(self) -> torch.device:
        """Where collectives run: NCCL needs CUDA tensors, gloo CPU ones."""
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, global_batch: int, key: str = "train.batch_size") -> int:
        """This process's share of a global batch (which must divide evenly)."""
        if global_batch % self.world_size:
            raise ConfigError(f"{key}={global_batch} does not divide among {self.world_size} "
                              f"processes; use a multiple of {self.world_size}")
        return global_batch // self.world_size

    def all_reduce_sum(self, *tensors: torch.Tensor) -> None:
        """Sum tensors over all processes, in place (a no-op on one process)."""
        if self.enabled:
            for tensor in tensors:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on at least one."""
        if not self.enabled:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm running statistics).

        DDP broadcasts them at the start of each forward, but the last training step leaves
        each process with statistics of its own batch; evaluation and the checkpoint use
        rank 0's on every process.
        """
        if self.enabled:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


def from_environment(device_type: str) -> Distributed:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1).

    NCCL on CUDA, gloo on CPU; each CUDA process uses the GPU of its local rank.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Distributed(rank=rank, world_size=world, local_rank=local)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
