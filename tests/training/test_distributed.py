"""Data-parallel training (torchrun, DDP over gloo on CPU): ranks agree, and equal one process with the whole batch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemeta import EdgemetaError
from edgemeta.training.distributed import DistContext, env_context, shard_slice

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

# A small MANN on synthetic "characters": fast to build and step, no dataset needed.
MODEL = dict(arch="mann", image_size=8, num_classes=3, encoder="flat", controller=16, memory_slots=8, memory_width=8,
             read_heads=2, novelty=True)


def run_rank(steps: int, batch: int, out: str) -> None:
    """Train `steps` optimizer steps with the real TrainStep and episode stream, on whatever world
    torchrun-style environment variables describe; after each step, check that every rank holds the
    same weights. Rank 0 saves weights, losses and the largest difference seen to `out`."""
    import torch.distributed as dist

    from edgemeta.training import distributed
    from edgemeta.data.episodes import EpisodeSampler
    from edgemeta.training.compiled_step import EpisodeBatches, TrainStep, batch_stream
    from edgemeta.models import ModelConfig, build_learner

    torch.set_num_threads(1)
    ctx, device = distributed.setup(torch.device("cpu"))
    images = (np.random.default_rng(7).random((12, 20, 8, 8)) > 0.7).astype(np.float32)
    sampler = EpisodeSampler(images, 3, 3, instances=4)
    torch.manual_seed(0)
    learner = build_learner(ModelConfig(**MODEL))
    opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    train_step = TrainStep(learner, opt, sched, ctx, device, batch, novelty_weight=0.5, grad_clip=10.0)
    batches = EpisodeBatches(sampler, 3, seed=5, batch_size=batch, shard=ctx.shard(batch))
    losses, spread = [], 0.0
    for x, prev, labels in batch_stream(batches, 0, steps, device):
        losses.append(train_step(x, prev, labels).tolist())
        flat = torch.cat([p.detach().flatten() for p in learner.parameters()])
        if ctx.enabled:
            everyone = [torch.empty_like(flat) for _ in range(ctx.world_size)]
            dist.all_gather(everyone, flat)
            spread = max(spread, max(float((w - flat).abs().max()) for w in everyone))
    if ctx.is_main:
        torch.save({"model": learner.state_dict(), "losses": losses, "spread": spread, "rows": train_step.rows}, out)
    distributed.teardown(ctx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, code: str, extra_env: dict | None = None) -> list[subprocess.Popen]:
    """Start `world` processes with the environment torchrun gives its workers."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", **(extra_env or {})}
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO))
    return procs


def wait_all(procs: list[subprocess.Popen], timeout: float = 240) -> None:
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0] * len(procs), codes


def test_shards_cover_the_batch_once_and_evenly():
    for batch, world in [(4, 2), (5, 2), (7, 3), (3, 3), (1024, 8)]:
        rows = [shard_slice(batch, r, world) for r in range(world)]
        covered = np.concatenate([np.arange(batch)[s] for s in rows])
        assert covered.tolist() == list(range(batch))
        sizes = [s.stop - s.start for s in rows]
        assert max(sizes) - min(sizes) <= 1
    with pytest.raises(EdgemetaError, match="--batch-size 3 is smaller than the 4 training processes"):
        shard_slice(3, 0, 4)


def test_torchrun_environment_is_read_and_checked(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert env_context() == DistContext()  # plain `edgemeta train`: one process
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = env_context()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.enabled) == (2, 4, 0, False, True)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(EdgemetaError, match="RANK 4 is outside WORLD_SIZE 4"):
        env_context()


def test_two_processes_hold_the_same_weights_and_equal_one_process_with_the_whole_batch(tmp_path):
    steps, batch = 3, 5  # 5 episodes: rows 0-2 on rank 0, rows 3-4 on rank 1 (uneven on purpose)
    code = (f"import sys; sys.path.insert(0, {str(TESTS / 'training')!r}); from test_distributed import run_rank; "
            f"run_rank({steps}, {batch}, {str(tmp_path / 'two.pt')!r})")
    procs = launch(2, code)
    run_rank(steps, batch, str(tmp_path / "one.pt"))  # meanwhile, here: one process, all 5 episodes
    wait_all(procs)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert two["rows"] == 3 and one["rows"] == 5
    assert two["spread"] == 0.0  # after every step, both ranks' weights are identical
    assert len(two["losses"]) == steps
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)  # global-batch mean loss and accuracy
    for name, w in one["model"].items():
        torch.testing.assert_close(two["model"][name], w, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_torchrun_cli_resumes_a_one_process_run_on_two_processes(tmp_path, data_dir, monkeypatch):
    """`edgemeta train` under torchrun: a one-process run stopped after 2 of 4 steps is resumed on
    two processes (rank 0 alone logs and writes), and ends where 4 steps on one process end."""
    import edgemeta.training.compiled_step
    from edgemeta.training.checkpoint import load_checkpoint
    from edgemeta.cli import main
    from edgemeta.training.presets import preset
    from edgemeta.training.loop import TrainConfig, train

    args = ["train", "--data", str(data_dir), "--episodes", "16", "--batch-size", "4", "--val-every", "1000",
            "--val-episodes", "4", "--ckpt-every", "1", "--threads", "1", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0

    # the same run, stopped after 2 steps (its episode stream ends early; last.pt is at step 2)
    stream = edgemeta.training.compiled_step.batch_stream
    monkeypatch.setattr(edgemeta.training.compiled_step, "batch_stream", lambda b, start, stop, *a: stream(b, start, 2, *a))
    cfg = TrainConfig(episodes=16, batch_size=4, val_every=1000, val_episodes=4, ckpt_every=1, threads=1, device="cpu",
                      data=str(data_dir))
    train(preset("mann").model_config(), cfg, tmp_path / "split", progress=False, log=lambda *a: None)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 2

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
                "-m", "edgemeta"]
    done = subprocess.run(torchrun + args + ["--out", str(tmp_path / "split"), "--resume"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("resumed") == 1 and done.stdout.count("training on 2 processes") == 1, done.stdout
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 4
    lines = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [4]  # one validation, by rank 0 alone
    for name, w in a["model"].items():
        torch.testing.assert_close(b["model"][name], w, rtol=1e-4, atol=1e-5, msg=name)


def test_the_processes_benchmark_times_all_three_loops():
    """benchmarks/train_processes.py: the one-process loops against data-parallel processes, one table."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "train_processes.py"
    proc = subprocess.run([sys.executable, str(script), "--processes", "2", "--threads", "1", "--batch", "4",
                           "--episode-length", "10", "--iters", "1", "--warmup", "0", "--no-compile"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0] for line in proc.stdout.splitlines()[-3:]}
    assert rows == {"reference", "plain", "2"}, proc.stdout
