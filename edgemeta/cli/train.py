"""`edgemeta train`: meta-train a learner on Omniglot episodes."""
from __future__ import annotations

import click

from edgemeta.cli.options import ModelName, ModelOption, WaysRange, folder_data_option, preset_option
from edgemeta.training.config import COMPILE_MODES, DEVICES, SAMPLERS
from edgemeta.training.presets import PRESETS

# Options that set a TrainConfig field of the same name over the chosen preset's value.
TRAIN_FIELDS = ("ways", "instances", "episode_length", "episodes", "batch_size", "lr", "seed", "device", "threads",
                "val_every", "val_episodes", "ckpt_every", "pretrain_epochs", "encoder_lr_scale", "workers", "sampler",
                "compile_mode", "span", "camera_views")


@click.command()
@folder_data_option
@click.option("--model", "model_name", type=ModelName(), default="mann", show_default=True,
              help="Learner preset: " + "; ".join(f"{name}: {p.summary}" for name, p in PRESETS.items()) +
                   "; or your own step module as path/to/file.py:ClassName (docs/own_learner.md), trained with "
                   "the mann preset's options.")
@click.option("--model-option", "model_options", type=ModelOption(), multiple=True,
              help="Change one field of the preset's model config, e.g. memory_width=128 (repeatable; the "
                   "checkpoint records the config).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory (checkpoints, metrics).")
@preset_option("ways", "--ways", type=WaysRange(), help="Classes per episode: N or MIN-MAX.")
@preset_option("instances", "--instances", type=click.IntRange(1, 20), help="Examples per class.")
@preset_option("episode_length", "--episode-length", type=click.IntRange(2, 1000),
               help="Time steps per episode, split among the ways (instead of --instances).")
@preset_option("episodes", "--episodes", type=click.IntRange(1), help="Training episodes in all.")
@preset_option("batch_size", "--batch-size", type=click.IntRange(1, 4096),
               help="Episodes per optimizer step in all (under torchrun: split among the processes).")
@preset_option("lr", "--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate.")
@preset_option("seed", "--seed", type=int, help="Seeds weights and every episode.")
@preset_option("device", "--device", type=click.Choice(DEVICES), help="Training device.")
@preset_option("threads", "--threads", type=click.IntRange(0, 256), help="torch CPU threads (0: torch's choice).")
@preset_option("val_every", "--val-every", type=click.IntRange(1), help="Optimizer steps between validations.")
@preset_option("val_episodes", "--val-episodes", type=click.IntRange(1), help="Episodes per validation.")
@preset_option("ckpt_every", "--ckpt-every", type=click.IntRange(1), help="Optimizer steps between checkpoints.")
@click.option("--eval-episodes", type=click.IntRange(0), default=0, show_default=True,
              help="After training, evaluate best.pt on this many meta-test episodes and print the paper's table.")
@preset_option("pretrain_epochs", "--pretrain-epochs", type=click.IntRange(0, 1000),
               help="Conv encoder: epochs of training as a character classifier before meta-training (minutes "
                    "each on a CPU; 0 skips it). Saved to OUT/pretrain.pt after every epoch and on Ctrl-C or "
                    "SIGTERM; --resume continues it.")
@preset_option("encoder_lr_scale", "--encoder-lr-scale", type=click.FloatRange(0, 1),
               help="The encoder's learning rate as a fraction of --lr (0: frozen).")
@preset_option("camera_views", "--camera-views", type=click.FloatRange(0, 1),
               help="Share of the examples shown as the symbol camera would see them: a tilted, turned, near or far "
                    "view of the drawing, another pen, blur, then the demo's own front end (Omniglot only; costs "
                    "about 0.8 ms of one core per view).")
@click.option("--init", type=click.Path(exists=True), default=None,
              help="Start from this checkpoint's weights (a run directory or a .pt with the same model config, e.g. "
                   "edgemeta/learners/default.pt) instead of fresh ones: a fine-tune. Skips pretraining.")
@click.option("--no-augment", is_flag=True, help="Turn off the paper's rotation/jitter augmentation.")
@click.option("--rotations/--no-rotations", default=None,
              help="Augment with 90-degree rotations as new classes.  [default: on for Omniglot, off for image folders]")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint (or its pretraining).")
@click.option("--overwrite", is_flag=True,
              help="Start over in an --out that holds a run: its checkpoints and metrics are deleted. Without it "
                   "(or --resume) such an --out is refused.")
@preset_option("workers", "--workers", type=click.IntRange(0, 64),
               help="Processes sampling episodes ahead of training (0: sample in the training loop).")
@preset_option("sampler", "--sampler", type=click.Choice(SAMPLERS),
               help="Where episodes are drawn: host (numpy + OpenCV), device (batched torch ops on the training "
                    "device), auto (device on CUDA, host on CPU).")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the learner's step for training: same numbers, faster, after a compile of a minute or so.")
@preset_option("compile_mode", "--compile-mode", type=click.Choice(COMPILE_MODES),
               help="torch.compile mode for --compile (auto: CUDA graphs on CUDA).")
@preset_option("span", "--span", type=click.IntRange(0, 1000),
               help="Time steps per compiled graph for --compile (0: 10 on CPU, 1 on CUDA); longer spans run "
                    "faster on a CPU and take longer to compile.")
def command(data, model_name, model_options, out, eval_episodes, no_augment, rotations, resume, overwrite, compile_,
            init, **options):
    """Meta-train a learner: every episode brings new classes with freshly shuffled labels.

    Checkpoints go to OUT/last.pt (every --ckpt-every optimizer steps) and OUT/best.pt (best validation);
    Ctrl-C or SIGTERM saves and exits, --resume continues.
    """
    from edgemeta import EdgemetaError

    if options["instances"] is not None and options["episode_length"] is not None:
        raise EdgemetaError("give --instances or --episode-length, not both")
    if resume and overwrite:
        raise EdgemetaError("give --resume or --overwrite, not both")

    from edgemeta.training.loop import train
    from edgemeta.training.presets import preset

    custom = {}
    if ":" in model_name:  # the user's own step module, with the mann preset's training options
        from edgemeta.models.user_learner import load_user_class, resolve_module_spec

        spec = resolve_module_spec(model_name)
        custom = {"arch": "custom", "module": spec}
        model_name, named = "mann", load_user_class(spec).__name__
    chosen = preset(model_name)
    given = {k: v for k, v in options.items() if k in TRAIN_FIELDS and v is not None}
    if "episode_length" in given:
        given.setdefault("instances", None)
    if "instances" in given:
        given.setdefault("episode_length", None)
    if init:
        given["init"] = init
        given.setdefault("pretrain_epochs", 0)  # the encoder comes with the checkpoint
    if custom:
        given["model"] = named  # the learner's name in its checkpoint, export metadata and model card
    cfg = chosen.train_config(data=data, augment=not no_augment, rotations=rotations, compile=compile_, **given)
    model_cfg = chosen.model_config(**{**custom, **dict(model_options)})
    try:
        train(model_cfg, cfg, out, resume=resume, overwrite=overwrite)
    except KeyboardInterrupt:
        raise SystemExit(130)
    from edgemeta.training.distributed import is_main_process

    if eval_episodes and is_main_process():  # under torchrun: evaluate once, not once per process
        from edgemeta.cli.evaluate import run_eval

        run_eval(out, data=data, ways=5, instances=10, episodes=eval_episodes, seed=options["seed"],
                 device=options["device"])
