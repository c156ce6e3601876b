"""`edgemeta train`: meta-train a learner on a task."""
from __future__ import annotations

import click

from edgemeta.cli.options import ModelOption, WaysRange, data_option

TASKS = ("omniglot", "quadratic")
# Per-model training defaults; any option given on the command line wins.
MODEL_DEFAULTS = {
    "mann": dict(ways=(5, 5), instances=10, steps=None, pretrain_epochs=0, encoder_lr_scale=1.0),
    "lstm": dict(ways=(5, 5), instances=10, steps=None, pretrain_epochs=0, encoder_lr_scale=1.0),
    # the product learner's CNN is pretrained as a character classifier, then kept as it is: fine-tuning
    # it with the rest (--encoder-lr-scale 0.1) learned slower and made its features worse on new alphabets;
    # 12 epochs over 6 lifted validation 1-shot a little and the meta-trained learner more (docs/training.md)
    "default": dict(ways=(2, 10), instances=None, steps=100, pretrain_epochs=12, encoder_lr_scale=0.0),
}


@click.command()
@click.option("--task", type=click.Choice(TASKS), default="omniglot", show_default=True, help="What to meta-learn.")
@data_option
@click.option("--model", "model_name", type=click.Choice(["mann", "lstm", "default"]), default="mann", show_default=True,
              help="Learner preset: the paper's MANN, the paper's LSTM baseline, or the product learner.")
@click.option("--model-option", "model_options", type=ModelOption(), multiple=True,
              help="Change one field of the preset's model config, e.g. memory_width=128 (repeatable; the "
                   "checkpoint records the config).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory (checkpoints, metrics).")
@click.option("--ways", type=WaysRange(), default=None, help="Classes per episode: N or MIN-MAX. [model's default]")
@click.option("--instances", type=click.IntRange(1, 20), default=None, help="Examples per class. [model's default]")
@click.option("--steps", type=click.IntRange(2, 1000), default=None, help="Fixed episode length instead of --instances.")
@click.option("--episodes", type=click.IntRange(1), default=100_000, show_default=True, help="Training episodes in all.")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Episodes per optimizer step in all (under torchrun: split among the processes).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds weights and every episode.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(0, 256), default=0, help="torch CPU threads (0: torch's choice).")
@click.option("--val-every", type=click.IntRange(1), default=200, show_default=True, help="Steps between validations.")
@click.option("--val-episodes", type=click.IntRange(1), default=500, show_default=True)
@click.option("--ckpt-every", type=click.IntRange(1), default=100, show_default=True, help="Steps between checkpoints.")
@click.option("--eval-episodes", type=click.IntRange(0), default=0, show_default=True,
              help="After training, evaluate best.pt on this many meta-test episodes and print the paper's table.")
@click.option("--pretrain-epochs", type=click.IntRange(0, 1000), default=None,
              help="Conv encoder: epochs of training as a character classifier before meta-training. [model's default]")
@click.option("--encoder-lr-scale", type=click.FloatRange(0, 1), default=None,
              help="The encoder's learning rate as a fraction of --lr. [model's default]")
@click.option("--no-augment", is_flag=True, help="Turn off the paper's rotation/jitter augmentation.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--workers", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Processes sampling episodes ahead of training (0: sample in the training loop).")
@click.option("--sampler", type=click.Choice(["auto", "host", "device"]), default="auto", show_default=True,
              help="Where episodes are drawn: host (numpy + OpenCV), device (batched torch ops on the training "
                   "device), auto (device on CUDA, host on CPU).")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the learner's step for training: same numbers, faster, after a compile of a minute or so.")
@click.option("--compile-mode", type=click.Choice(["auto", "default", "reduce-overhead", "max-autotune",
                                                   "max-autotune-no-cudagraphs"]),
              default="auto", show_default=True, help="torch.compile mode for --compile (auto: CUDA graphs on CUDA).")
@click.option("--compile-steps", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Steps of time per compiled graph for --compile (0: 10 on CPU, 1 on CUDA); longer graphs run "
                   "faster on a CPU and take longer to compile.")
def command(task, data, model_name, model_options, out, ways, instances, steps, episodes, batch_size, lr, seed, device, threads,
            val_every, val_episodes, ckpt_every, eval_episodes, pretrain_epochs, encoder_lr_scale, no_augment, resume, workers, sampler, compile_, compile_mode,
            compile_steps):
    """Meta-train a learner: every episode brings new classes with freshly shuffled labels."""
    from edgemeta import EdgemetaError

    if model_options and task != "omniglot":
        raise EdgemetaError("--model-option changes an Omniglot learner's config; the quadratic task has its own")
    if task == "quadratic":
        from edgemeta.training.distributed import env_context

        if env_context().enabled:
            raise EdgemetaError("--task quadratic trains in one process; run it without torchrun")
        from edgemeta.quadratic import QuadraticConfig, train_quadratic

        qcfg = QuadraticConfig(episodes=episodes, batch_size=batch_size, lr=lr, seed=seed, device=device,
                               steps=steps or 50, threads=threads, val_every=val_every, val_episodes=val_episodes,
                               ckpt_every=ckpt_every, eval_episodes=eval_episodes or 1000)
        train_quadratic(qcfg, out, resume=resume)
        return

    from edgemeta.models import preset
    from edgemeta.training.loop import TrainConfig, train

    defaults = MODEL_DEFAULTS[model_name]
    if steps is not None and instances is not None:
        raise EdgemetaError("give --instances or --steps, not both")
    if steps is None and instances is None:
        instances, steps = defaults["instances"], defaults["steps"]
    model_cfg = preset(model_name, **dict(model_options))
    cfg = TrainConfig(
        task=task, model=model_name, ways=ways or defaults["ways"], instances=instances, steps=steps,
        episodes=episodes, batch_size=batch_size, lr=lr, seed=seed, val_every=val_every, val_episodes=val_episodes,
        ckpt_every=ckpt_every, device=device, threads=threads, data=data, augment=not no_augment,
        workers=workers, sampler=sampler, compile=compile_, compile_mode=compile_mode,
        compile_steps=compile_steps,
        pretrain_epochs=defaults["pretrain_epochs"] if pretrain_epochs is None else pretrain_epochs,
        encoder_lr_scale=defaults["encoder_lr_scale"] if encoder_lr_scale is None else encoder_lr_scale,
    )
    try:
        train(model_cfg, cfg, out, resume=resume)
    except KeyboardInterrupt:
        raise SystemExit(130)
    from edgemeta.training.distributed import is_main_process

    if eval_episodes and is_main_process():  # under torchrun: evaluate once, not once per process
        from edgemeta.cli.evaluate import run_eval

        run_eval(out, data=data, ways=5, instances=10, episodes=eval_episodes, seed=seed, device=device)
