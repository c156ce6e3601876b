"""`edgemeta eval`: the paper's table on the meta-test classes (Omniglot's 423, or an image folder's)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgemeta.cli.options import folder_data_option


def run_eval(run, data=None, ways=5, instances=10, episodes=1000, seed=0, device="auto", batch=100,
             plot=True, out_dir=None, threads=None, backend="ort", precision=None) -> dict:
    """Evaluate a checkpoint (PyTorch) or an exported learner (the runtime, no torch); print the table
    and write eval.json (and eval.png) into `out_dir`, by default the folder RUN lives in (see `command`)."""
    from edgemeta import EdgemetaError
    from edgemeta.data.tasks import meta_test_images
    from edgemeta.evaluation.accuracy import accuracy_by_instance, paper_table

    if is_exported(run):
        runner, out = _exported_runner(run, threads or 1, backend, precision)
    else:
        if backend != "ort" or precision is not None:
            raise EdgemetaError("--backend and --precision choose how an exported learner (.onnx or a shipped name) "
                                f"runs; {run} is a checkpoint, evaluated by PyTorch")
        runner, out = _checkpoint_runner(run, device, threads)
    if ways > runner.num_classes:
        raise EdgemetaError(f"--ways {ways} exceeds the learner's {runner.num_classes} classes")
    images, _ = meta_test_images(data, out["dataset"], runner.image_size)
    result = {**accuracy_by_instance(runner, images, ways, instances, episodes, seed=seed, batch=batch, progress=True),
              **out["result"]}
    click.echo(paper_table(result))
    _write(result, Path(out_dir) if out_dir else out["dir"], plot)
    return result


def is_exported(run) -> bool:
    """An ONNX learner file or a shipped learner name (not a checkpoint or run directory)."""
    p = Path(str(run))
    return p.suffix == ".onnx" or (not p.exists() and not p.suffix and "/" not in str(run))


def _checkpoint_runner(run, device, threads):
    import torch

    from edgemeta import EdgemetaError

    from edgemeta.evaluation.torch_runner import TorchEpisodes
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint, resolve_checkpoint
    from edgemeta.training.loop import pick_device

    if threads:
        torch.set_num_threads(threads)
    ckpt = load_checkpoint(run)
    if ckpt.get("task", "omniglot") != "omniglot":
        raise EdgemetaError(f"{ckpt['path']} is a {ckpt['task']} learner; `edgemeta eval` evaluates Omniglot learners")
    dev = pick_device(device)
    runner = TorchEpisodes(learner_from_checkpoint(ckpt).to(dev), dev)
    return runner, {"dir": resolve_checkpoint(run).parent, "result": {"checkpoint": ckpt["path"], "step": ckpt["step"]},
                    "dataset": ckpt.get("dataset")}


def _exported_runner(run, threads, backend, precision):
    from edgemeta import EdgemetaError
    from edgemeta.evaluation.runtime_runner import RuntimeEpisodes
    from edgemeta.runtime.learner import resolve_learner

    if backend == "ort" and precision is not None:
        raise EdgemetaError("--precision applies to --backend native; ONNX Runtime runs the precision of the file "
                            "(e.g. mann-int8)")
    path = resolve_learner(run)
    runner = RuntimeEpisodes(path, backend, threads, precision or ("int8" if backend == "native" else None))
    shipped = Path(str(run)).suffix != ".onnx"
    result = {"learner": str(path), "backend": backend,
              "precision": runner.precision or runner.metadata.get("precision", "fp32")}
    return runner, {"dir": Path.cwd() if shipped else path.parent, "result": result,
                    "dataset": runner.metadata.get("dataset")}


def _write(result: dict, out_dir: Path, plot: bool) -> None:
    from edgemeta.runtime.atomic import atomic_write_text

    atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    wrote = [out_dir / "eval.json"]
    if plot:
        from edgemeta.evaluation.plot import plot_accuracy

        try:
            plot_accuracy(result, out_dir / "eval.png")
            wrote.append(out_dir / "eval.png")
        except ModuleNotFoundError as e:
            if e.name != "matplotlib":
                raise
            click.echo("no eval.png: the plot needs matplotlib (pip install 'edgemeta[train]'); --no-plot skips it")
    click.echo("wrote " + " and ".join(map(str, wrote)))


@click.command()
@click.argument("run")
@folder_data_option
@click.option("--ways", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--instances", type=click.IntRange(1, 20), default=10, show_default=True)
@click.option("--episodes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where PyTorch runs a checkpoint.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for eval.json and eval.png. [the checkpoint's folder; for a .onnx file its folder; for a "
                   "shipped name the current directory]")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
@click.option("--threads", type=click.IntRange(0, 256), default=0,
              help="CPU threads (0: torch's choice for a checkpoint, 1 for an exported learner). 1 on a machine whose "
                   "other cores are busy: spinning threads that wait for a busy core slow evaluation many times over.")
@click.option("--backend", type=click.Choice(["ort", "native"]), default="ort", show_default=True,
              help="Exported learners: ONNX Runtime, or the runtime's native C step (MANN learners with a flat encoder).")
@click.option("--precision", type=click.Choice(["int8", "fp32"]), default=None,
              help="--backend native: int8 (its default) or fp32 weights.")
def command(run, data, ways, instances, episodes, seed, device, out_dir, no_plot, threads, backend, precision):
    """Evaluate RUN on the 423 meta-test classes: accuracy by instance, the paper's table.

    RUN is a run directory or checkpoint (run by PyTorch), or an exported learner: a .onnx file or a
    shipped name such as mann-int8, run by the runtime (ONNX Runtime or --backend native; no PyTorch needed).
    """
    run_eval(run, data=data, ways=ways, instances=instances, episodes=episodes, seed=seed, device=device,
             plot=not no_plot, out_dir=out_dir, threads=threads or None, backend=backend, precision=precision)
