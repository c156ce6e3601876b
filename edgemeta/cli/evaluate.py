"""`edgemeta eval`: the paper's table on the 423 meta-test classes."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgemeta.cli.options import data_option


def run_eval(run, data=None, ways=5, instances=10, episodes=1000, seed=0, device="auto", batch=100,
             plot=True, out_dir=None, threads=None, backend="ort", precision=None) -> dict:
    from edgemeta import EdgemetaError
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint, resolve_checkpoint
    from edgemeta.runtime.omniglot import load_omniglot, split_classes
    from edgemeta.evaluation.accuracy import accuracy_by_instance, paper_table
    from edgemeta.training.loop import pick_device

    if _is_exported(run):
        return _run_onnx_eval(run, data, ways, instances, episodes, seed, batch, plot, out_dir, threads or 1, backend,
                              precision)
    if backend != "ort" or precision is not None:
        raise EdgemetaError("--backend and --precision choose how an exported learner (.onnx or a shipped name) runs; "
                            f"{run} is a checkpoint, evaluated by PyTorch")
    ckpt = load_checkpoint(run)
    if ckpt.get("task") == "quadratic":
        from edgemeta.quadratic import run_quadratic_eval

        return run_quadratic_eval(run, episodes=episodes, seed=seed, device=device, out_dir=out_dir)
    if ckpt.get("task", "omniglot") != "omniglot":
        raise EdgemetaError(f"{ckpt['path']} is a {ckpt['task']} learner; `edgemeta eval` knows omniglot and quadratic")
    learner = learner_from_checkpoint(ckpt)
    if ways > learner.cfg.num_classes:
        raise EdgemetaError(f"--ways {ways} exceeds the learner's {learner.cfg.num_classes} classes")
    dev = pick_device(device)
    learner.to(dev)
    images = load_omniglot(data).images(learner.cfg.image_size)[split_classes()["test"]]
    result = accuracy_by_instance(learner, images, ways, instances, episodes, seed=seed, batch=batch, device=str(dev),
                                  progress=True)
    result["checkpoint"] = ckpt["path"]
    result["step"] = ckpt["step"]
    click.echo(paper_table(result))
    _write(result, Path(out_dir) if out_dir else resolve_checkpoint(run).parent, plot)
    return result


def _is_exported(run) -> bool:
    """An ONNX learner file or a shipped learner name (not a checkpoint or run directory)."""
    p = Path(str(run))
    return p.suffix == ".onnx" or (not p.exists() and not p.suffix and "/" not in str(run))


def _run_onnx_eval(run, data, ways, instances, episodes, seed, batch, plot, out_dir, threads=1, backend="ort",
                   precision=None) -> dict:
    """The same table for an exported learner, run by ONNX Runtime (or the native C step) on the CPU."""
    from edgemeta import EdgemetaError
    from edgemeta.runtime.omniglot import load_omniglot, split_classes
    from edgemeta.evaluation.accuracy import accuracy_by_instance, paper_table
    from edgemeta.evaluation.onnx_eval import NativeUnroller, OnnxUnroller
    from edgemeta.runtime.learner import resolve_learner

    path = resolve_learner(run)
    if backend == "native":
        runner = NativeUnroller(path, precision or "int8")
    elif precision is not None:
        raise EdgemetaError("--precision applies to --backend native; ONNX Runtime runs the precision of the file "
                            "(e.g. mann-int8)")
    else:
        runner = OnnxUnroller(path, threads)
    if runner.metadata.get("task", "omniglot") != "omniglot":
        raise EdgemetaError(f"{path} is a {runner.metadata['task']} learner; evaluate its checkpoint instead")
    if ways > runner.cfg.num_classes:
        raise EdgemetaError(f"--ways {ways} exceeds the learner's {runner.cfg.num_classes} classes")
    images = load_omniglot(data).images(runner.cfg.image_size)[split_classes()["test"]]
    result = accuracy_by_instance(runner, images, ways, instances, episodes, seed=seed, batch=batch, progress=True)
    result["learner"] = str(path)
    result["backend"] = backend
    result["precision"] = runner.precision if backend == "native" else runner.metadata.get("precision", "fp32")
    click.echo(paper_table(result))
    _write(result, Path(out_dir) if out_dir else Path.cwd(), plot)
    return result


def _write(result: dict, out_dir: Path, plot: bool) -> None:
    from edgemeta.runtime.atomic import atomic_write_text

    atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    if plot:
        from edgemeta.evaluation.plot import plot_accuracy

        plot_accuracy(result, out_dir / "eval.png")
    click.echo(f"wrote {out_dir / 'eval.json'}" + (f" and {out_dir / 'eval.png'}" if plot else ""))


@click.command()
@click.argument("run")
@data_option
@click.option("--ways", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--instances", type=click.IntRange(1, 20), default=10, show_default=True)
@click.option("--episodes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where eval.json and eval.png go. [the checkpoint's folder]")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
@click.option("--threads", type=click.IntRange(0, 256), default=0,
              help="CPU threads (0: torch's choice). 1 on a machine whose other cores are busy: spinning threads "
                   "that wait for a busy core slow evaluation many times over.")
@click.option("--backend", type=click.Choice(["ort", "native"]), default="ort", show_default=True,
              help="Exported learners: ONNX Runtime, or the runtime's native C step (MANN learners with a flat encoder).")
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default=None,
              help="--backend native: int8 (its default) or fp32 weights.")
def command(run, data, ways, instances, episodes, seed, device, out_dir, no_plot, threads, backend, precision):
    """Evaluate RUN (a run directory or checkpoint; or an exported learner: a .onnx file or a shipped
    name such as mann-int8, run by ONNX Runtime) on the 423 meta-test classes: accuracy by instance."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    run_eval(run, data=data, ways=ways, instances=instances, episodes=episodes, seed=seed, device=device,
             plot=not no_plot, out_dir=out_dir, threads=threads or None, backend=backend, precision=precision)
