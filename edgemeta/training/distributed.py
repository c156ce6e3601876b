"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, we join them.

`torchrun --nproc-per-node N -m edgemeta train ...` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address in every process's environment; `setup` reads them, joins the process group
(NCCL between GPUs, gloo between CPU processes) and pins each process to its GPU. Without those
variables everything here is a no-op for one process, so `edgemeta train` alone is unchanged.

The batch is global: `--batch-size B` episodes per optimizer step whatever the number of
processes. Every process draws the same B episodes from the step's generator and keeps its own
contiguous share (`shard`), so a run's episodes, and up to float rounding its weights, do not
depend on how many processes trained it; resuming with another world size continues the same run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgemeta import EdgemetaError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we created the process group, so we destroy it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: int) -> slice:
        return shard_slice(batch, self.rank, self.world_size)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (any picklable object, tensors included)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed element-wise over all ranks, in place (asynchronous on GPUs until read)."""
        if self.enabled:
            dist.all_reduce(t)
        return t

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """DistributedDataParallel around `module` (gradients averaged over ranks), or `module` alone."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        # DDP broadcasts rank 0's parameters and buffers here, so all ranks start from the same weights.
        return DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True)


def shard_slice(batch: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous share of `batch` items: sizes differ by at most one, ranks in order."""
    if batch < world_size:
        raise EdgemetaError(
            f"--batch-size {batch} is smaller than the {world_size} training processes (each needs an episode); "
            f"use --batch-size {world_size} or more"
        )
    base, extra = divmod(batch, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def env_context() -> DistContext:
    """Rank and world size from torchrun's environment (one process when the variables are absent)."""
    if "WORLD_SIZE" not in os.environ:
        return DistContext()
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        got = ", ".join(f"{k}={os.environ.get(k)!r}" for k in ENV)
        raise EdgemetaError(f"torchrun environment is not numeric ({got}); start with `torchrun ... -m edgemeta train`") from None
    if not 0 <= rank < world:
        raise EdgemetaError(f"RANK {rank} is outside WORLD_SIZE {world}; start with `torchrun ... -m edgemeta train`")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun job (for printing and evaluating once)."""
    return env_context().is_main


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the torchrun job, if any: -> (context, this process's device)."""
    ctx = env_context()
    if not ctx.enabled:
        return ctx, device
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if ctx.local_rank >= visible:
            raise EdgemetaError(
                f"LOCAL_RANK {ctx.local_rank} needs GPU {ctx.local_rank} but {visible} are visible; "
                f"use --nproc-per-node {visible} or fewer (or --device cpu)"
            )
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if dist.is_initialized():  # the caller set up the group already: use it, leave it to them
        if dist.get_world_size() != ctx.world_size:
            raise EdgemetaError(f"process group has {dist.get_world_size()} ranks but WORLD_SIZE is {ctx.world_size}")
        return ctx, device
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise EdgemetaError(f"WORLD_SIZE is set but {key} is not; start with `torchrun ... -m edgemeta train`")
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, owns_group=True), device


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        # Leave together: a rank that tears down while another is still working (rank 0 saving its
        # checkpoint) can make gloo abort the other at exit with SIGABRT ("terminate called without an
        # active exception").
        dist.barrier()
        dist.destroy_process_group()
