"""Meta-training: episodes in, a learner out. Readable top to bottom, resumable, deterministic on CPU.

Every batch of episodes is drawn from a generator seeded by (seed, step), so a run resumed from
step k sees exactly the episodes an uninterrupted run would have seen, whatever happened before.
Under torchrun (see edgemeta/training/distributed.py) the same global batch is split among the processes,
so this holds across world sizes too; rank 0 alone validates, logs and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from edgemeta import EdgemetaError
from edgemeta.data.tasks import training_task
from edgemeta.models import ModelConfig, build_learner
from edgemeta.training.checkpoint import BEST, LAST, PRETRAIN, load_checkpoint, save_checkpoint, training_payload
from edgemeta.training.config import TrainConfig
from edgemeta.training.run_dir import METRICS, RunLock, refuse_or_clear, truncate_metrics


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgemetaError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise EdgemetaError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


def param_groups(learner, cfg: TrainConfig) -> list[dict]:
    """One Adam group, or two where the encoder learns at its own rate (--encoder-lr-scale), or one
    without the encoder where that rate is 0 (a frozen encoder: see _train)."""
    if cfg.encoder_lr_scale == 1.0:
        return [{"params": list(learner.parameters())}]
    encoder = list(learner.encoder.parameters())
    ids = {id(p) for p in encoder}
    rest = [p for p in learner.parameters() if id(p) not in ids]
    if cfg.encoder_lr_scale == 0.0:
        return [{"params": rest}]
    return [{"params": rest}, {"params": encoder, "lr": cfg.lr * cfg.encoder_lr_scale}]


def uses_device_sampler(cfg: TrainConfig, device: torch.device) -> bool:
    # camera views run the front end on the host (numpy + OpenCV)
    return cfg.sampler == "device" or (cfg.sampler == "auto" and device.type == "cuda" and not cfg.workers
                                       and not cfg.camera_views)


def train(model_cfg: ModelConfig, cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          log=print, overwrite: bool = False) -> dict:
    """Meta-train into `out` (last.pt, best.pt, metrics.jsonl). Returns the final metrics.

    An `out` that holds a run is continued (resume), started over (overwrite) or refused; it is locked while
    this trains (edgemeta/training/run_dir.py).

    Started by torchrun, every process calls this; they train together (see edgemeta/training/distributed.py).
    """
    from edgemeta.training import distributed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from edgemeta.runtime.stop_signals import stop_signals_interrupt

    # From the first line on, SIGTERM and SIGHUP stop as Ctrl-C does (a KeyboardInterrupt): during the setup
    # (data, model, pretraining's start) there is nothing to save yet, and the phases that follow save theirs.
    with stop_signals_interrupt():
        ctx, device = distributed.setup(pick_device(cfg.device))
        try:
            return _train(model_cfg, cfg, Path(out), resume, progress, log, ctx, device, overwrite)
        finally:
            distributed.teardown(ctx)


def _resume_point(out: Path, model_cfg: ModelConfig, cfg: TrainConfig, resume: bool, overwrite: bool, ctx):
    """Rank 0 creates and locks `out`, refuses or clears a run there that is not resumed, reads last.pt, else
    pretrain.pt (if resuming), and hands them to every rank:
    -> (meta-training checkpoint or None, pretraining checkpoint or None, message, error, the lock or None)."""
    ckpt, pretrain, message, error, lock = None, None, None, None, None
    if ctx.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            error = f"cannot create the run directory {out}: {e.strerror or e}"
    if ctx.is_main and error is None:
        try:
            lock = RunLock(out)
            refuse_or_clear(out, resume, overwrite)
        except EdgemetaError as e:
            error = str(e)
    if ctx.is_main and resume and error is None:
        try:
            if (out / LAST).exists():
                ckpt = _matching(load_checkpoint(out / LAST), model_cfg)
            elif (out / PRETRAIN).exists():
                pretrain = _matching(load_checkpoint(out / PRETRAIN), model_cfg)
                epochs = pretrain["pretrain"]["epochs"]
                if epochs != cfg.pretrain_epochs:
                    raise EdgemetaError(f"{out / PRETRAIN} pretrains for {epochs} epochs; resume with --pretrain-epochs "
                                        f"{epochs}, or use a new --out")
            else:
                message = f"nothing to resume in {out}; starting fresh"
        except EdgemetaError as e:
            error = str(e)
    if error is not None and lock is not None:
        lock.release()
        lock = None
    # one broadcast: the other ranks need not see `out` (multi-node runs without a shared disk)
    ckpt, pretrain, message, error = ctx.broadcast((ckpt, pretrain, message, error))
    return ckpt, pretrain, message, error, lock


def _matching(ckpt: dict, model_cfg: ModelConfig) -> dict:
    if ModelConfig.from_dict(ckpt["model_config"]) != model_cfg:
        raise EdgemetaError(f"{ckpt['path']} was trained with a different model config; use a new --out or the same options")
    return ckpt


def _train(model_cfg: ModelConfig, cfg: TrainConfig, out: Path, resume: bool, progress: bool, log, ctx,
           device: torch.device, overwrite: bool = False) -> dict:
    if cfg.pretrain_epochs and model_cfg.encoder != "conv":
        raise EdgemetaError(f"--pretrain-epochs trains a conv encoder; the {cfg.model} learner reads raw pixels "
                            "(use --model default, or drop the option)")
    # The data before --out: a missing or malformed dataset is reported before anything is written.
    task = training_task(model_cfg, cfg)
    init = _matching(load_checkpoint(cfg.init), model_cfg) if cfg.init else None
    existed = out.exists()
    ckpt, pretrain_ckpt, message, error, lock = _resume_point(out, model_cfg, cfg, resume, overwrite, ctx)
    try:
        if error:
            raise EdgemetaError(error)
        return _train_locked(model_cfg, cfg, out, progress, log, ctx, device, task, ckpt, pretrain_ckpt, message, init)
    except KeyboardInterrupt:
        if ctx.is_main and not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # stopped before anything was saved: no empty run folder stays behind
            log(f"interrupted before anything was trained; nothing saved, {out} not created")
        raise
    finally:
        if lock is not None:
            lock.release()


def _train_locked(model_cfg: ModelConfig, cfg: TrainConfig, out: Path, progress: bool, log, ctx, device: torch.device,
                  task, ckpt, pretrain_ckpt, message, init=None) -> dict:
    from tqdm import tqdm

    from edgemeta.evaluation.accuracy import accuracy_by_instance
    from edgemeta.evaluation.torch_runner import TorchEpisodes
    from edgemeta.training.compiled_step import (EpisodeBatches, TrainStep, batch_stream, compile_core, default_span,
                                    device_batch_stream,
                                    uses_cuda_graphs)

    if not ctx.is_main:
        log = _silent
    torch.manual_seed(cfg.seed)
    learner = build_learner(model_cfg).to(device)
    opt = torch.optim.Adam(param_groups(learner, cfg), lr=cfg.lr)
    total = cfg.total_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    step, best, history = 0, -1.0, []
    if ckpt is not None and _data_key(ckpt.get("dataset", task.describe())) != _data_key(task.describe()):
        raise EdgemetaError(f"{out / LAST} was trained on other data ({ckpt['dataset']['kind']}, class list "
                            f"{ckpt['dataset'].get('class_hash', '-')}); resume with that --data, or use a new --out")
    if message:
        log(message)
    if ckpt is not None:
        learner.load_state_dict(ckpt["model"])
        try:
            opt.load_state_dict(ckpt["optimizer"])
        except ValueError as e:  # e.g. another --encoder-lr-scale: one parameter group instead of two
            raise EdgemetaError(f"{out / LAST}: its optimizer does not fit these options ({e}); resume with the "
                                "options it was trained with, or use a new --out") from None
        sched.load_state_dict(ckpt["scheduler"])
        step, best = ckpt["step"], ckpt["metrics"].get("best_val", -1.0)
        if ctx.is_main:
            truncate_metrics(out, step)
        log(f"resumed {out / LAST} at step {step}/{total}")
        old_lr = sched.base_lrs[0]
        if not math.isclose(old_lr, cfg.lr):
            # The scheduler's state carries the base rates it was made with; --lr given now wins.
            ratio = cfg.lr / old_lr
            sched.base_lrs = [base * ratio for base in sched.base_lrs]
            for group in opt.param_groups:
                group["lr"] *= ratio
            log(f"learning rate: base {cfg.lr:g} from --lr (the checkpoint's run used {old_lr:g})")
    fresh = ckpt is None
    del ckpt
    if fresh and init is not None:
        learner.load_state_dict(init["model"])
        log(f"starting from the weights of {init['path']} (step {init['step']})")
    del init

    def payload(metrics: dict) -> dict:
        return {**training_payload(cfg.task, model_cfg, cfg, learner, opt, sched, step, metrics), "dataset": task.describe()}

    def save(name: str, metrics: dict) -> None:
        if ctx.is_main:
            save_checkpoint(out / name, payload(metrics))

    if fresh and cfg.pretrain_epochs and ctx.is_main:
        # Rank 0 alone, before TrainStep wraps the learner: DistributedDataParallel hands rank 0's weights
        # to the other ranks when it wraps them (they wait for it there meanwhile).
        result = _pretrain(learner, model_cfg, cfg, task, out, pretrain_ckpt, device, progress, log)
        # A checkpoint at step 0, so that --resume from here on does not pretrain again.
        save(LAST, {"step": 0, "best_val": best, "pretrain": result})
        (out / PRETRAIN).unlink(missing_ok=True)
    del pretrain_ckpt

    if cfg.encoder_lr_scale == 0.0:
        learner.encoder.requires_grad_(False)  # frozen (after any pretraining): no gradients computed for it
    core = None
    if cfg.compile:
        core = compile_core(learner, device, cfg.compile_mode, span=cfg.span or default_span(device))
    train_step = TrainStep(learner, opt, sched, ctx, device, cfg.batch_size, cfg.novelty_weight, cfg.grad_clip, core,
                           cuda_graphs=uses_cuda_graphs(device, cfg.compile, cfg.compile_mode))
    if uses_device_sampler(cfg, device):
        stream = device_batch_stream(task.device_sampler(model_cfg, cfg, device), cfg.seed, ctx.shard(cfg.batch_size),
                                     step, total, ctx.rank)
    else:
        batches = EpisodeBatches(task.train, model_cfg.num_classes, cfg.seed, cfg.batch_size, ctx.shard(cfg.batch_size))
        stream = batch_stream(batches, step, total, device, cfg.workers)
    if ctx.enabled:
        log(f"training on {ctx.world_size} processes ({device.type}), {cfg.batch_size} episodes per step in all")

    interrupted = False

    def on_sigterm(signum, frame):  # a service manager or a closed terminal gets the same clean save as Ctrl-C
        raise KeyboardInterrupt

    old_handlers = {s: signal.signal(s, on_sigterm) for s in _SIGNALS if s != signal.SIGINT}
    t0, seen0 = time.perf_counter(), step
    run_loss = run_acc = None
    metrics: dict = {"best_val": best}
    # Reading a step's loss makes the host wait for the device to finish that step. On a GPU, read
    # them every `read_every` optimizer steps so the host queues the next ones meanwhile (same running means).
    read_every = 1 if device.type == "cpu" else 25
    pending: list[torch.Tensor] = []
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.model}", unit="step", disable=not (progress and ctx.is_main),
               dynamic_ncols=True)
    try:
        for x, prev, labels in stream:
            pending.append(train_step(x, prev, labels))
            step += 1
            validate = ctx.is_main and (step % cfg.val_every == 0 or step == total)
            checkpoint = step % cfg.ckpt_every == 0 or step == total
            if len(pending) >= read_every or validate or checkpoint:
                for loss, acc in torch.stack(pending).tolist():
                    run_loss = loss if run_loss is None else 0.98 * run_loss + 0.02 * loss
                    run_acc = acc if run_acc is None else 0.98 * run_acc + 0.02 * acc
                pending.clear()
                eps = (step - seen0) * cfg.batch_size / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{run_loss:.3f}", acc=f"{run_acc:.3f}", eps=f"{eps:.0f}/s")
                metrics = {"step": step, "loss": run_loss, "train_acc": run_acc, "episodes_per_s": eps, "best_val": best}
            bar.update(1)
            if validate:
                val = accuracy_by_instance(TorchEpisodes(learner, device), task.validation_images,
                                           min(5, model_cfg.num_classes), 10, cfg.val_episodes, seed=cfg.seed + 1)
                score = float(np.mean(val["accuracy"][1:]))  # instances 2..10: what few-shot learning is about
                metrics.update(val=val["accuracy"], val_score=score, elapsed_s=time.perf_counter() - t0)
                history.append(metrics)
                with open(out / METRICS, "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                bar.write(f"step {step}: val acc by instance {val['accuracy']}")
                if score > best:
                    best = score
                    metrics["best_val"] = best
                    save(BEST, metrics)
            if checkpoint:
                save(LAST, metrics)
        ctx.barrier()  # every rank returns once rank 0's last checkpoint is on disk
    except KeyboardInterrupt:
        interrupted = True
        save(LAST, metrics)
        if ctx.is_main:
            bar.write(f"interrupted at step {step}; continue with --resume")
    finally:
        bar.close()
        for s, handler in old_handlers.items():
            signal.signal(s, handler)
    log(f"last checkpoint: {out / LAST} (step {step})")
    log(f"best checkpoint: {out / BEST} (validation {best:.2f}%)" if best >= 0 else
        f"best checkpoint: none yet ({out / BEST} is written at the first validation)")
    if interrupted:
        raise KeyboardInterrupt
    return metrics


# What stops a run cleanly (a save, then exit): Ctrl-C, `kill`, and the terminal closing.
_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _pretrain(learner, model_cfg: ModelConfig, cfg: TrainConfig, task, out: Path, ckpt: dict | None, device, progress: bool,
              log) -> dict:
    """Encoder pretraining, resumable: pretrain.pt after every epoch and when a stop signal arrives (then
    KeyboardInterrupt); `ckpt` is such a file to continue from. -> the pretraining's result."""
    from edgemeta.training.pretrain import EncoderPretraining

    pretraining = EncoderPretraining(learner.encoder, task.train_images, task.validation_images, cfg.pretrain_epochs,
                                     cfg.seed, device)
    if ckpt is not None:
        learner.load_state_dict(ckpt["model"])
        pretraining.load_state_dict(ckpt["pretrain"])
        log(f"resumed pretraining from {out / PRETRAIN} at epoch {pretraining.epoch + 1}/{cfg.pretrain_epochs}, "
            f"batch {pretraining.position}/{pretraining.batches_per_epoch}")
    else:
        log(f"pretraining the encoder for {cfg.pretrain_epochs} epochs as a character classifier before meta-training "
            "(skip it with --pretrain-epochs 0)")

    def save() -> None:
        save_checkpoint(out / PRETRAIN, {"task": cfg.task, "model_config": model_cfg.to_dict(), "train_config": cfg.to_dict(),
                                         "model": learner.state_dict(), "step": 0, "metrics": {},
                                         "pretrain": pretraining.state_dict()})

    with _stop_requested() as stopped:
        finished = pretraining.run(stop=stopped, on_epoch=save, progress=progress, log=log)
    if not finished:
        save()
        log(f"interrupted: pretraining saved to {out / PRETRAIN} (epoch {pretraining.epoch + 1}/{cfg.pretrain_epochs}, "
            f"batch {pretraining.position}/{pretraining.batches_per_epoch}); continue with --resume. "
            "No last.pt or best.pt yet.")
        raise KeyboardInterrupt
    return pretraining.result


@contextlib.contextmanager
def _stop_requested():
    """Yields a function that says whether a stop signal arrived; the signals only set that flag, so the
    work in progress (an optimizer step) always completes before the caller stops."""
    arrived: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield lambda: False
        return
    old = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in _SIGNALS}
    try:
        yield lambda: bool(arrived)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _data_key(dataset: dict) -> tuple:
    """What must match for a run to continue on a data set: its kind and class list."""
    return dataset.get("kind"), dataset.get("class_hash")


def _silent(*args, **kwargs) -> None:
    """`log` on ranks other than 0: one voice per job."""
