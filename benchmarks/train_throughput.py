"""Meta-training throughput: episodes per second of the plain loop and the fast loop, in the same run.

    python benchmarks/train_throughput.py [--model mann] [--batch 64] [--threads 1] [--device cpu|cuda|auto]
                                          [--iters 7] [--warmup 2] [--no-compile] [--sampling --data DIR]

One "iteration" is one training step on a batch of episodes already in memory: unroll the episode,
loss, backward, gradient clip, Adam. Loops, each with its own copy of the same initial weights:
  reference  the loop as first written (a step's inputs taken with x[:, t]; see reference_unroll)
  plain      `edgemeta train` without flags (eager PyTorch)
  compiled   `edgemeta train --compile` (torch.compile of the step; on CUDA with CUDA graphs)
Iterations of the loops are interleaved, so a busy machine slows them alike; the table gives the
median over --iters timed iterations after --warmup, and ratios to the reference and plain loops.
Compile time (first iterations of the compiled loop) is printed separately.

--sampling (needs Omniglot) adds the data side: episodes sampled per second with the paper's
augmentation on the host and on the device (--sampler device), and whole training steps per second
with sampling in the loop (--workers 0) and ahead of it in worker processes (--workers N, default 1).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from edgemeta.data.episodes import prev_label_onehot


def reference_core(learner, features, gates_x, prev_label, state):
    """A MANN step as first written (before the training loop was tuned): the heads multiply
    [h, features] every step, every memory row is normalised for the cosine, separate adds."""
    from edgemeta.models.mann import EPS

    cfg = learner.cfg
    heads, w = cfg.read_heads, cfg.memory_width
    h, c = learner.controller(gates_x, torch.cat([state["h"], state["read"]], dim=1), state["c"])
    p = learner.heads(torch.cat([h, features], dim=1)).reshape(-1, heads, w + 2)
    keys = torch.tanh(p[..., :w])
    write_gate = torch.sigmoid(p[..., w : w + 1])
    beta = 1.0 + F.softplus(p[..., w + 1 :])
    usage = state["usage"] + learner.tie_break
    smallest = -torch.topk(-usage, heads, dim=1).values
    least_used = (usage.unsqueeze(1) == smallest.unsqueeze(2)).to(usage.dtype)
    write_w = write_gate * state["read_weights"] + (1.0 - write_gate) * least_used
    content = torch.cat([state["keys"], prev_label.unsqueeze(1).expand(-1, heads, -1)], dim=2)
    memory = state["memory"] * (1.0 - least_used[:, 0, :].unsqueeze(2))
    memory = memory + torch.bmm(write_w.transpose(1, 2), content)
    mem_keys = memory[..., :w]
    key_n = keys / torch.sqrt((keys * keys).sum(-1, keepdim=True) + EPS)
    mem_n = mem_keys / torch.sqrt((mem_keys * mem_keys).sum(-1, keepdim=True) + EPS)
    read_w = torch.softmax(beta * torch.bmm(key_n, mem_n.transpose(1, 2)), dim=-1)
    read = torch.bmm(read_w, memory).flatten(1)
    new_usage = cfg.gamma * state["usage"] + read_w.sum(1) + write_w.sum(1)
    out = torch.cat([h, read], dim=1)
    nov = learner.novelty(out) if learner.novelty is not None else None
    nxt = {"h": h, "c": c, "memory": memory, "read": read, "read_weights": read_w, "usage": new_usage, "keys": keys}
    return learner.out(out), nov, nxt


def reference_unroll(learner, images, prev_labels):
    """The episode loop as first written: each step indexes x[:, t] (whose backward zero-fills [B, T, ...]
    T times) and, for the MANN, runs `reference_core`; the same weights and function as
    `learner.unroll`, which the plain loop runs."""
    from edgemeta.models.mann import MANNLearner

    original = isinstance(learner, MANNLearner)
    b, t = images.shape[:2]
    feats = learner.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
    x_proj = learner.controller.project(torch.cat([feats, prev_labels], dim=2)) if original else learner.project(feats, prev_labels)
    state = learner.zero_state(b, images.device)
    logits, novelty = [], []
    for i in range(t):
        if original:
            lg, nv, state = reference_core(learner, feats[:, i], x_proj[:, i], prev_labels[:, i], state)
        else:
            lg, nv, state = learner.core(feats[:, i], x_proj[:, i], prev_labels[:, i], state)
        logits.append(lg)
        if nv is not None:
            novelty.append(nv)
    return torch.stack(logits, dim=1), torch.cat(novelty, dim=1) if novelty else None


class Loop:
    def __init__(self, name, learner, forward, device):
        self.name, self.learner, self.forward, self.device = name, learner, forward, device
        self.opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def iteration(self, x, prev, labels, cuda_graphs=False) -> tuple[float, float]:
        """-> (wall-clock seconds, CPU seconds of this process)."""
        sync(self.device)
        t, c = time.perf_counter(), time.process_time()
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = self.forward(x, prev, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.learner.parameters(), 10.0)
        self.opt.step()
        sync(self.device)
        return time.perf_counter() - t, time.process_time() - c


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_batch(cfg, batch: int, length: int, device, seed=0):
    g = np.random.default_rng(seed)
    images = torch.from_numpy((g.random((batch, length, 1, cfg.image_size, cfg.image_size)) > 0.8).astype(np.float32))
    labels = torch.from_numpy(g.integers(0, cfg.num_classes, (batch, length)))
    prev = prev_label_onehot(labels, cfg.num_classes)
    return images.to(device), prev.to(device), labels.to(device)


def model_loops(args, device):
    from edgemeta.training.compiled_step import EpisodeLoss, compile_core, uses_cuda_graphs
    from edgemeta.models import build_learner
    from edgemeta.training.presets import preset

    cfg = preset(args.model).model_config()
    torch.manual_seed(0)
    base = build_learner(cfg).to(device)
    x, prev, labels = synthetic_batch(cfg, args.batch, args.episode_length, device)

    def ce(logits, novelty):
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    loops = []
    ref = copy.deepcopy(base)
    loops.append(Loop("reference", ref, lambda x, p, y: ce(*reference_unroll(ref, x, p)), device))
    plain = copy.deepcopy(base)
    plain_loss = EpisodeLoss(plain, 0.5)
    loops.append(Loop("plain", plain, lambda x, p, y: plain_loss(x, p, y)[0], device))
    compiled_graphs = False
    if not args.no_compile:
        fast = copy.deepcopy(base)
        fast_loss = EpisodeLoss(fast, 0.5, compile_core(fast, device, args.compile_mode, args.backend, args.span))
        loops.append(Loop("compiled", fast, lambda x, p, y: fast_loss(x, p, y)[0], device))
        compiled_graphs = uses_cuda_graphs(device, True, args.compile_mode)

    print(f"device {device}, threads {torch.get_num_threads()}, model {args.model}, batch {args.batch}, "
          f"episode length {args.episode_length}, torch {torch.__version__}"
          + ("" if args.no_compile else f", compiled: {args.span} time steps per graph"))
    if not args.no_compile:
        t = time.perf_counter()
        for _ in range(3):  # CUDA graphs record on the 2nd-3rd call; everything compiles on the 1st
            loops[-1].iteration(x, prev, labels, compiled_graphs)
        print(f"compile + first 3 iterations of the compiled loop: {time.perf_counter() - t:.1f} s")
    for i in range(args.warmup + args.iters):
        for loop in loops:
            wall, cpu = loop.iteration(x, prev, labels, compiled_graphs and loop.name == "compiled")
            if i >= args.warmup:
                loop.times.append(wall)
                loop.cpu_times.append(cpu)
    # Wall-clock is what training feels; CPU time of the process is steadier on a shared machine
    # (with --threads 1 it is the loop's own work, whatever else runs).
    med = {loop.name: (statistics.median(loop.times) * 1000, statistics.median(loop.cpu_times) * 1000) for loop in loops}
    print(f"median of {args.iters} iterations after {args.warmup} warm-up; ratios: wall-clock (CPU time)")
    print(f"{'loop':<10} {'ms/iter':>9} {'cpu ms':>8} {'episodes/s':>11} {'vs reference':>15} {'vs plain':>15}")
    for name, (ms, cpu) in med.items():
        vs = [f"{med[b][0] / ms:.2f}x ({med[b][1] / cpu:.2f}x)" for b in ("reference", "plain")]
        print(f"{name:<10} {ms:>9.1f} {cpu:>8.1f} {args.batch / ms * 1000:>11.0f} {vs[0]:>15} {vs[1]:>15}")


def sampling(args, device):
    from edgemeta.data.episodes import EpisodeSampler
    from edgemeta.runtime.omniglot import load_omniglot, split_classes
    from edgemeta.training.compiled_step import EpisodeBatches, TrainStep, batch_stream, compile_core
    from edgemeta.training.distributed import DistContext
    from edgemeta.models import build_learner
    from edgemeta.training.presets import preset

    cfg = preset(args.model).model_config()
    images = load_omniglot(args.data).images(cfg.image_size)[split_classes()["train"]]
    sampler = EpisodeSampler(images, cfg.num_classes, 5, instances=args.episode_length // 5, augment=True)
    times = []
    for k in range(args.iters):
        t = time.perf_counter()
        sampler.sample(args.batch, np.random.default_rng([0, k]))
        times.append(time.perf_counter() - t)
    print(f"sampling with augmentation, in the loop's process: {args.batch / statistics.median(times):.0f} episodes/s")
    from edgemeta.data.device_sampler import DeviceEpisodeSampler

    on_device = DeviceEpisodeSampler(torch.from_numpy(images).to(device), cfg.num_classes, 5, instances=args.episode_length // 5,
                                     augment=True)
    gen = torch.Generator(device=device).manual_seed(0)
    times = []
    for k in range(args.iters + 1):
        t = time.perf_counter()
        on_device.sample(args.batch, gen)
        sync(device)
        times.append(time.perf_counter() - t)
    print(f"sampling with augmentation on the device ({device}, --sampler device): "
          f"{args.batch / statistics.median(times[1:]):.0f} episodes/s")

    steps = args.warmup + args.iters
    for workers in (0, args.workers):
        torch.manual_seed(0)
        learner = build_learner(cfg).to(device)
        opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        core = None if args.no_compile else compile_core(learner, device, args.compile_mode, args.backend, args.span)
        step = TrainStep(learner, opt, sched, DistContext(), device, args.batch, 0.5, 10.0, core)
        batches = EpisodeBatches(sampler, cfg.num_classes, 0, args.batch)
        stamps = []
        for x, prev, labels in batch_stream(batches, 0, steps, device, workers):
            step(x, prev, labels)
            stamps.append(time.perf_counter())
        per_step = np.diff(stamps[args.warmup - 1:])  # includes waiting for the next batch
        loop = "plain" if args.no_compile else "compiled"
        print(f"{loop} loop, sampling {'in the loop' if workers == 0 else f'in {workers} worker process(es)'}: "
              f"{args.batch / float(np.median(per_step)):.0f} episodes/s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mann", choices=["mann", "lstm", "default"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--episode-length", type=int, default=50, help="time steps per episode (mann: 5 ways x 10 instances)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip the compiled loop")
    p.add_argument("--compile-mode", default="auto")
    p.add_argument("--span", type=int, default=0, help="time steps per compiled graph (0: what edgemeta train uses)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager: no code generation, for tests)")
    p.add_argument("--sampling", action="store_true", help="also measure episode sampling (needs --data)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--data", default=None, help="Omniglot directory (else $EDGEMETA_DATA)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA GPU", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    if not args.span:  # what edgemeta train uses on this device
        from edgemeta.training.compiled_step import default_span

        args.span = default_span(device)
    model_loops(args, device)
    if args.sampling:
        sampling(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
