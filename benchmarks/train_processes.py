"""Meta-training throughput on a whole multi-core CPU: the plain loop on all cores vs data-parallel processes.

    python benchmarks/train_processes.py [--processes 2] [--threads 2] [--batch 64] [--iters 7] [--no-compile]

On a CPU the plain loop uses more cores through torch's intra-op threads, which split each
operation; a MANN step is ~40 small operations per time step, too small to split well. The other
way to use N cores is N processes (one thread each) that split the *batch*, as
`torchrun --nproc-per-node N -m edgemeta train --threads 1 [--compile]` does: DistributedDataParallel
over gloo, gradients averaged (the same update as one process with the whole batch; tested in
tests/training/test_distributed.py).

One iteration = one optimizer step on a batch of episodes in memory (unroll, loss, backward, clip,
Adam). Loops, each from the same initial weights:
  reference    the loop as first written (benchmarks/train_throughput.py), --threads threads
  plain        `edgemeta train` (eager), --threads threads
  processes    `torchrun --nproc-per-node P ... --threads 1 [--compile]`: P processes, batch split
Iterations take turns (one of each, round after round) and whoever is not timed waits idle, so a
busy machine slows them alike. Prints the median ms per iteration, episodes/s and the ratios.
"""
from __future__ import annotations

import argparse
import copy
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import Loop, reference_unroll, synthetic_batch  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, model: str, batch: int, length: int, compile_: bool, backend: str,
           commands, results) -> None:
    """One data-parallel process: on each command, time that many training iterations on its rows."""
    import torch.distributed as dist

    from edgemeta.training.distributed import DistContext
    from edgemeta.training.compiled_step import TrainStep, compile_core, default_span
    from edgemeta.models import build_learner
    from edgemeta.training.presets import preset

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ctx = DistContext(rank=rank, world_size=world, local_rank=rank, owns_group=True)
    device = torch.device("cpu")
    cfg = preset(model).model_config()
    torch.manual_seed(0)
    learner = build_learner(cfg)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    core = compile_core(learner, device, "default", backend, default_span(device)) if compile_ else None
    step = TrainStep(learner, opt, sched, ctx, device, batch, 0.5, 10.0, core)
    x, prev, labels = synthetic_batch(cfg, batch, length, device)
    rows = ctx.shard(batch)
    x, prev, labels = x[rows], prev[rows], labels[rows]
    try:
        while True:
            n = commands[rank].get()
            if n is None:
                break
            times = []
            for _ in range(n):
                dist.barrier()
                t = time.perf_counter()
                step(x, prev, labels)
                times.append(time.perf_counter() - t)
            if rank == 0:
                results.put(times)
    finally:
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mann", choices=["mann", "lstm", "default"])
    p.add_argument("--processes", type=int, default=2, help="data-parallel processes, one thread each")
    p.add_argument("--threads", type=int, default=0, help="threads of the one-process loops (0: one per core)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--episode-length", type=int, default=50, help="time steps per episode (mann: 5 ways x 10 instances)")
    p.add_argument("--iters", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="the processes run the eager step")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager: no code generation, for tests)")
    args = p.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)

    from edgemeta.training.compiled_step import EpisodeLoss
    from edgemeta.models import build_learner
    from edgemeta.training.presets import preset

    cfg = preset(args.model).model_config()
    torch.manual_seed(0)
    base = build_learner(cfg)
    x, prev, labels = synthetic_batch(cfg, args.batch, args.episode_length, torch.device("cpu"))
    ref = copy.deepcopy(base)
    plain = copy.deepcopy(base)
    plain_loss = EpisodeLoss(plain, 0.5)

    def ce(logits, novelty):
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())

    loops = [Loop("reference", ref, lambda a, b, c: ce(*reference_unroll(ref, a, b)), torch.device("cpu")),
             Loop("plain", plain, lambda a, b, c: plain_loss(a, b, c)[0], torch.device("cpu"))]

    ctx = mp.get_context("spawn")
    commands = [ctx.Queue() for _ in range(args.processes)]
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=worker, args=(r, args.processes, port, args.model, args.batch, args.episode_length,
                                               not args.no_compile, args.backend, commands, results))
             for r in range(args.processes)]
    for proc in procs:
        proc.start()
    name = f"{args.processes} processes" + ("" if args.no_compile else ", compiled")
    print(f"cpu, {os.cpu_count()} cores, model {args.model}, batch {args.batch}, episode length {args.episode_length}, "
          f"torch {torch.__version__}; one-process loops on {threads} thread(s)")
    try:
        t = time.perf_counter()
        for q in commands:
            q.put(3)  # compiles (if asked) and warms up
        results.get()
        print(f"start, compile and first 3 iterations of the {name} loop: {time.perf_counter() - t:.1f} s")
        proc_times: list[float] = []
        for i in range(args.warmup + args.iters):
            for loop in loops:
                wall, _ = loop.iteration(x, prev, labels)
                if i >= args.warmup:
                    loop.times.append(wall)
            for q in commands:
                q.put(1)
            (wall,) = results.get()
            if i >= args.warmup:
                proc_times.append(wall)
    finally:
        for q in commands:
            q.put(None)
        for proc in procs:
            proc.join(timeout=60)
    med = {loop.name: statistics.median(loop.times) * 1000 for loop in loops}
    med[name] = statistics.median(proc_times) * 1000
    print(f"median of {args.iters} iterations after {args.warmup} warm-up (wall-clock)")
    print(f"{'loop':<24} {'ms/iter':>9} {'episodes/s':>11} {'vs reference':>13} {'vs plain':>9}")
    for loop_name, ms in med.items():
        print(f"{loop_name:<24} {ms:>9.1f} {args.batch / ms * 1000:>11.0f} {med['reference'] / ms:>12.2f}x "
              f"{med['plain'] / ms:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
