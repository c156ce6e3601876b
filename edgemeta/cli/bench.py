"""`edgemeta bench`: per-step latency, throughput, state size and memory of a learner."""
from __future__ import annotations

import json
from pathlib import Path

import click


def bench_torch(model: str, batch: int, steps: int, runs: int, threads: int | None) -> dict:
    """Time `learner.step` in PyTorch (CPU, no grad): a checkpoint/run directory, or a preset name
    (random weights: the same arithmetic, so the same speed)."""
    from edgemeta import EdgemetaError

    try:
        import torch
    except ImportError:
        raise EdgemetaError("--backend torch needs PyTorch: pip install edgemeta[train]") from None
    import numpy as np

    from edgemeta.models import build_learner
    from edgemeta.training.presets import PRESETS, preset
    from edgemeta.runtime.bench import peak_rss_bytes, time_steps

    p = Path(model)
    if p.suffix == ".onnx" or p.suffix in (".engine", ".plan"):
        raise EdgemetaError(f"--backend torch times a PyTorch learner: pass a checkpoint or run directory, not {p.name}")
    if p.exists():
        from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint

        learner, source = learner_from_checkpoint(load_checkpoint(p)), str(p)
    elif model in PRESETS:
        torch.manual_seed(0)
        learner, source = build_learner(preset(model).model_config()), f"preset {model} (untrained weights)"
    else:
        raise EdgemetaError(f"{model} is neither a checkpoint nor a preset ({', '.join(PRESETS)}); pass a run directory or .pt")
    if threads:
        torch.set_num_threads(threads)
    cfg = learner.cfg
    learner.eval()
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(64, batch, 1, cfg.image_size, cfg.image_size, generator=gen) < 0.1).float()
    prev = torch.nn.functional.one_hot(torch.randint(0, cfg.num_classes, (64, batch), generator=gen), cfg.num_classes).float()
    state = learner.zero_state(batch, "cpu")

    def step(i):
        nonlocal state
        _, _, state = learner.step(images[i % 64], prev[i % 64], state)

    with torch.inference_mode():
        timings = time_steps({"torch learner.step": step}, steps, runs)
    nbytes = sum(4 * batch * int(np.prod(s)) for s in learner.state_shapes().values())
    return {
        "model": getattr(cfg, "arch", "?"), "path": source,
        "backend": f"torch {torch.__version__} CPU, {torch.get_num_threads()} thread(s)",
        "batch": batch, "steps": steps, "runs": runs, "state_bytes": nbytes, "state_tensors": len(learner.state_shapes()),
        "timings": {n: t.as_dict(batch) for n, t in timings.items()}, "peak_rss_bytes": peak_rss_bytes(),
    }


@click.command()
@click.argument("model")
@click.option("--backend", type=click.Choice(["ort", "trt", "native", "torch"]), default="ort", show_default=True,
              help="ort: ONNX Runtime on learner.onnx; trt: a TensorRT engine; native: the MANN step as one compiled C "
                   "function (mann); torch: the PyTorch step of a checkpoint.")
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default=None,
              help="--backend native only: int8 weights (the default) or float32.")
@click.option("--batch", type=click.IntRange(1, 4096), default=1, show_default=True, help="Independent streams per step.")
@click.option("--steps", type=click.IntRange(10), default=2000, show_default=True, help="Steps per timed run.")
@click.option("--runs", type=click.IntRange(1, 100), default=5, show_default=True, help="Timed runs; the median of their medians is reported.")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True, help="CPU threads for the step.")
@click.option("--provider", "providers", multiple=True,
              help="ONNX Runtime execution provider(s) in order (cpu, cuda, tensorrt or full names). [best available]")
@click.option("--baseline", default=None,
              help="Learner the naive session.run loop runs (e.g. mann, to time mann-int8 against the float32 file). [MODEL]")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON here.")
def command(model, backend, precision, batch, steps, runs, threads, providers, baseline, json_out):
    """Time one learner step: median/p90/p99 latency, steps/s, state size and peak memory.

    MODEL is an exported learner.onnx (or .engine), an export directory, a shipped learner name
    (mann, default), or for --backend torch a checkpoint, run directory or preset name.
    For ONNX Runtime and native the naive loop (plain session.run with dict feeds) is timed in the same
    run, on MODEL or on --baseline.
    """
    from tqdm import tqdm

    from edgemeta.runtime.atomic import atomic_write_text
    from edgemeta.runtime.bench import bench_learner, format_report

    if precision and backend != "native":
        raise click.UsageError("--precision applies to --backend native (ONNX Runtime runs the file's own precision)")
    if backend == "torch":
        if baseline:
            raise click.UsageError("--baseline times a naive ONNX Runtime loop; it does not apply to --backend torch")
        report = bench_torch(model, batch, steps, runs, threads)
    else:
        from edgemeta.runtime.learner import Learner, resolve_learner

        baseline_path = resolve_learner(baseline) if baseline else None
        with Learner.load(model, backend=backend, providers=list(providers) or None, threads=threads, batch=batch,
                          precision=precision) as learner:
            with tqdm(total=runs, desc="bench", unit="run", leave=False) as bar:
                report = bench_learner(learner, steps=steps, runs=runs, threads=threads,
                                       providers=list(providers) or None, progress=bar.update, baseline=baseline_path)
    report["threads"] = threads
    click.echo(format_report(report))
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_out}")
