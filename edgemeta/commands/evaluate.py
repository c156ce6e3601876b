"""`edgemeta eval`: the paper's table on the 423 meta-test classes."""
from __future__ import annotations

import json
from pathlib import Path

import click

from edgemeta.commands.options import data_option


def run_eval(run, data=None, ways=5, instances=10, episodes=1000, seed=0, device="auto", batch=100,
             plot=True, out_dir=None) -> dict:
    from edgemeta import EdgemetaError
    from edgemeta.checkpoint import learner_from_checkpoint, load_checkpoint, resolve_checkpoint
    from edgemeta.data.omniglot import load_omniglot, split_classes
    from edgemeta.evaluate import accuracy_by_instance, paper_table
    from edgemeta.runtime.atomic import atomic_write_text
    from edgemeta.train import pick_device

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
    out_dir = Path(out_dir) if out_dir else resolve_checkpoint(run).parent
    atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    if plot:
        from edgemeta.plot import plot_accuracy

        plot_accuracy(result, out_dir / "eval.png")
    click.echo(f"wrote {out_dir / 'eval.json'}" + (f" and {out_dir / 'eval.png'}" if plot else ""))
    return result


@click.command()
@click.argument("run", type=click.Path(exists=True))
@data_option
@click.option("--ways", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--instances", type=click.IntRange(1, 20), default=10, show_default=True)
@click.option("--episodes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where eval.json and eval.png go. [the checkpoint's folder]")
@click.option("--no-plot", is_flag=True, help="Skip the PNG plot.")
def command(run, data, ways, instances, episodes, seed, device, out_dir, no_plot):
    """Evaluate RUN (a run directory or checkpoint) on the 423 meta-test classes: accuracy by instance."""
    run_eval(run, data=data, ways=ways, instances=instances, episodes=episodes, seed=seed, device=device,
             plot=not no_plot, out_dir=out_dir)
