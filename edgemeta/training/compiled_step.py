"""The training loop's inner parts, built for speed without changing what is computed.

- `EpisodeLoss`: the episode's loss as a module (what DistributedDataParallel wraps), optionally
  stepping through time with a compiled copy of the learner's `core`. An episode is 50-100 time
  steps of a few dozen small ops each; eager PyTorch pays a launch per op (per kernel on a GPU),
  while `torch.compile` fuses each time step's element-wise work into a few kernels, and on CUDA
  replays them as CUDA graphs. The learner's own `step`/`core` (what export uses) are untouched.
- `EpisodeBatches` / `batch_stream`: episodes sampled ahead in worker processes, batch k drawn from
  the same generator `default_rng([seed, k])` as the plain loop, so workers change when, never what.
- `TrainStep`: one optimizer step on this process's share of the global batch.
"""
from __future__ import annotations

import os
import shutil
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgemeta import EdgemetaError
from edgemeta.data.episodes import Episodes
from edgemeta.training.config import COMPILE_MODES


def novelty_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, T) labels -> (B, T) bool: this is the label's first appearance in the episode."""
    onehot = F.one_hot(labels, num_classes)
    shown_before = onehot.cumsum(1) - onehot
    return (shown_before * onehot).sum(-1) == 0


class EpisodeLoss(nn.Module):
    """Cross-entropy over all time steps (+ weighted novelty loss where the learner has that head) and accuracy."""

    def __init__(self, learner, novelty_weight: float = 0.5, core=None):
        super().__init__()
        self.learner = learner
        self.novelty_weight = novelty_weight
        self.core = core  # None: the learner's own core

    def forward(self, images: torch.Tensor, prev: torch.Tensor, labels: torch.Tensor):
        state = None
        if self.core is not None and torch.is_grad_enabled():
            # A compiled core guards on requires_grad: a fresh state that requires grad, like every
            # later state does, lets time step 0 reuse the graph of time steps 1..T-1 (one compile, not two).
            state = {k: v.requires_grad_() for k, v in self.learner.zero_state(images.shape[0], images.device).items()}
        if isinstance(self.core, CompiledSpan):
            logits, novelty, _ = self.learner.unroll(images, prev, state, span=self.core)
        else:
            logits, novelty, _ = self.learner.unroll(images, prev, state, core=self.core)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        if novelty is not None:
            first = novelty_targets(labels, logits.shape[-1])
            loss = loss + self.novelty_weight * F.binary_cross_entropy_with_logits(novelty, first.float())
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, acc


def compile_core(learner, device: torch.device, mode: str = "auto", backend: str = "inductor", span: int = 1):
    """`learner.core` through torch.compile: on CPU fused C++ kernels, on CUDA Triton kernels in CUDA graphs.

    mode "auto": "reduce-overhead" (CUDA graphs) on CUDA, "default" on CPU. Compiling takes tens of
    seconds to minutes on a small CPU (once per process; inductor caches kernels on disk for the next run).
    span > 1: compile `span` time steps as one graph instead (a `CompiledSpan` of `learner.run_span`):
    the graph then fuses across time steps, and Python makes 1/span as many compiled calls, at the
    price of a longer first compile.
    """
    if mode not in COMPILE_MODES:
        raise EdgemetaError(f"unknown compile mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
    if span < 1:
        raise EdgemetaError(f"a compiled span must cover >= 1 time step, got {span}")
    if mode == "auto":
        mode = "reduce-overhead" if device.type == "cuda" else "default"
    if backend == "inductor" and device.type == "cpu" and not _has_cxx():
        raise EdgemetaError("--compile on CPU needs a C++ compiler (g++); install one (apt-get install g++) or drop --compile")
    kwargs = {"mode": mode} if backend == "inductor" else {}
    # fullgraph: a graph break inside the step would silently fall back to slow eager pieces
    if span == 1:
        return torch.compile(learner.core, backend=backend, dynamic=False, fullgraph=True, **kwargs)
    return CompiledSpan(torch.compile(learner.run_span, backend=backend, dynamic=False, fullgraph=True, **kwargs), span)


def default_span(device: torch.device) -> int:
    """Time steps per compiled graph when not given: 10 on a CPU, where fusing across time steps pays;
    1 on CUDA, where CUDA graphs already remove the per-step launch cost."""
    return 1 if device.type == "cuda" else 10


class CompiledSpan:
    """A compiled `run_span`: `length` time steps per call (`StepLearner.unroll(span=...)` cuts time into
    such spans; a shorter last span compiles once more)."""

    def __init__(self, fn, length: int):
        self.fn, self.length = fn, length

    def __call__(self, feats, x_proj, prev_labels, state):
        return self.fn(feats, x_proj, prev_labels, state)


def _has_cxx() -> bool:
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def uses_cuda_graphs(device: torch.device, compiled: bool, mode: str) -> bool:
    return compiled and device.type == "cuda" and mode in ("auto", "reduce-overhead", "max-autotune")


# --- episodes -----------------------------------------------------------------------------------
def take(ep: Episodes, rows: slice) -> Episodes:
    return Episodes(images=ep.images[rows], labels=ep.labels[rows], instance=ep.instance[rows], ways=ep.ways)


class EpisodeBatches(torch.utils.data.Dataset):
    """Item k: this process's rows `shard` of optimizer step k's `batch_size` episodes, as CPU tensors
    (images [b, T, 1, S, S], one-hot previous labels [b, T, C], labels [b, T])."""

    def __init__(self, sampler, num_classes: int, seed: int, batch_size: int, shard: slice | None = None):
        self.sampler = sampler
        self.num_classes = num_classes
        self.seed = seed
        self.batch_size = batch_size
        self.shard = shard if shard is not None else slice(0, batch_size)

    def __getitem__(self, step: int):
        from edgemeta.data.episodes import episodes_to_tensors

        ep = self.sampler.sample(self.batch_size, np.random.default_rng([self.seed, int(step)]))
        if self.shard != slice(0, self.batch_size):
            ep = take(ep, self.shard)
        return episodes_to_tensors(ep, self.num_classes, "cpu")


def batch_stream(batches: EpisodeBatches, start: int, stop: int, device: torch.device,
                 workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Steps start..stop-1 in order, on `device`; `workers` > 0 samples them ahead in that many processes."""
    if workers <= 0:
        for step in range(start, stop):
            yield tuple(t.to(device) for t in batches[step])
        return
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, stop), num_workers=workers, prefetch_factor=2,
        pin_memory=device.type == "cuda",
    )
    for batch in loader:
        yield tuple(t.to(device, non_blocking=True) for t in batch)


def device_batch_stream(sampler, seed: int, shard: slice, start: int, stop: int, rank: int = 0):
    """Steps start..stop-1 from a DeviceEpisodeSampler: this process's rows of each step, drawn on the
    device from a generator seeded by (seed, step, rank), so a resumed run draws what it would have."""
    gen = torch.Generator(device=sampler.device)
    rows = shard.stop - shard.start
    for step in range(start, stop):
        gen.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1))
        yield sampler.sample(rows, gen)


# --- one optimizer step -------------------------------------------------------------------------
class TrainStep:
    """Forward this process's rows, backward (DDP averages gradients over processes), clip, Adam, schedule.

    DDP averages the processes' gradients with equal weights, so a process holding n of the B
    episodes scales its mean loss by world_size * n / B: the update is then that of the mean loss
    over all B episodes, also when B does not divide evenly (and the factor is 1 when it does).
    """

    def __init__(self, learner, opt, sched, ctx, device: torch.device, batch_size: int, novelty_weight: float,
                 grad_clip: float, core=None, cuda_graphs: bool = False):
        self.learner, self.opt, self.sched, self.ctx = learner, opt, sched, ctx
        self.batch_size = batch_size
        self.grad_clip = grad_clip
        self.cuda_graphs = cuda_graphs
        self.device = device
        self.model = ctx.wrap(EpisodeLoss(learner, novelty_weight, core), device)
        rows = ctx.shard(batch_size)
        self.rows = rows.stop - rows.start
        self.scale = ctx.world_size * self.rows / batch_size

    def __call__(self, images: torch.Tensor, prev: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """-> [mean loss, mean accuracy] over the global batch, a tensor on the device: reading it
        (.tolist()) waits for the GPU, so the caller decides how often to."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs may be overwritten now
        self.learner.train()
        loss, acc = self.model(images, prev, labels)
        self.opt.zero_grad(set_to_none=True)
        (loss * self.scale if self.scale != 1.0 else loss).backward()
        torch.nn.utils.clip_grad_norm_(self.learner.parameters(), self.grad_clip)
        self.opt.step()
        self.sched.step()
        stats = torch.stack([loss.detach(), acc])
        if self.ctx.enabled:
            stats = self.ctx.sum_(stats * self.rows) / self.batch_size
        return stats
