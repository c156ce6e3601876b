"""Meta-training: episodes in, a learner out. Readable top to bottom, resumable, deterministic on CPU.

Every batch of episodes is drawn from a generator seeded by (seed, step), so a run resumed from
step k sees exactly the episodes an uninterrupted run would have seen, whatever happened before.
"""
from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgemeta import EdgemetaError
from edgemeta.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from edgemeta.models import ModelConfig, build_learner


@dataclass
class TrainConfig:
    task: str = "omniglot"  # "omniglot" (few-shot classification) or "quadratic" (Hochreiter 2001)
    model: str = "mann"  # preset the model config came from: mann | lstm | default
    ways: tuple[int, int] = (5, 5)  # classes per episode, a range for a varying number of ways
    instances: int | None = 10  # examples per class (episode length = ways * instances) ...
    steps: int | None = None  # ... or a fixed episode length split among the ways
    episodes: int = 100_000  # total training episodes (optimizer steps = episodes / batch_size)
    batch_size: int = 32  # episodes per optimizer step
    lr: float = 1e-3  # Adam learning rate
    lr_min_ratio: float = 0.1  # cosine decay to lr * lr_min_ratio by the last step
    grad_clip: float = 10.0  # global gradient-norm clip: recurrent nets spike now and then
    novelty_weight: float = 0.5  # weight of the novelty loss, where the learner has that head
    augment: bool = True  # the paper's augmentation (90-degree class rotations, small jitter)
    seed: int = 0  # seeds weights and every episode
    val_every: int = 200  # optimizer steps between validations (and best-checkpoint updates)
    val_episodes: int = 500  # validation episodes (5-way, or C-way if C < 5; 10 instances; validation classes)
    ckpt_every: int = 100  # optimizer steps between last-checkpoint saves
    device: str = "auto"  # cpu | cuda | auto
    threads: int = 0  # torch CPU threads, 0 = torch's default
    data: str | None = None  # Omniglot directory (else $EDGEMETA_DATA)

    def __post_init__(self) -> None:
        if isinstance(self.ways, int):
            self.ways = (self.ways, self.ways)
        self.ways = tuple(int(w) for w in self.ways)
        if self.episodes < 1 or self.batch_size < 1:
            raise EdgemetaError("episodes and batch_size must be >= 1")
        if not self.lr > 0:
            raise EdgemetaError(f"learning rate must be > 0, got {self.lr}")

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.episodes / self.batch_size))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ways"] = list(self.ways)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise EdgemetaError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise EdgemetaError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


class OmniglotTask:
    """Samplers over the pinned split, sized for the model's input."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig):
        from edgemeta.data.episodes import EpisodeSampler
        from edgemeta.data.omniglot import load_omniglot, split_classes

        images = load_omniglot(cfg.data).images(model_cfg.image_size)
        split = split_classes()
        if cfg.ways[1] > model_cfg.num_classes:
            raise EdgemetaError(f"--ways {cfg.ways[1]} exceeds the model's {model_cfg.num_classes} classes")
        self.train = EpisodeSampler(
            images[split["train"]], model_cfg.num_classes, cfg.ways, instances=cfg.instances, steps=cfg.steps,
            augment=cfg.augment,
        )
        self.validation_images = images[split["validation"]]


def episode_loss(learner, images, prev, labels, novelty_weight: float):
    logits, novelty, _ = learner.unroll(images, prev)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    if novelty is not None:
        # target: this class has not been shown earlier in the episode
        first = (prev.new_zeros(labels.shape, dtype=torch.bool))
        seen = torch.zeros(labels.shape[0], logits.shape[-1], dtype=torch.bool, device=labels.device)
        for t in range(labels.shape[1]):
            first[:, t] = ~seen.gather(1, labels[:, t : t + 1]).squeeze(1)
            seen.scatter_(1, labels[:, t : t + 1], True)
        loss = loss + novelty_weight * F.binary_cross_entropy_with_logits(novelty, first.float())
    acc = (logits.argmax(-1) == labels).float().mean()
    return loss, acc


def train(model_cfg: ModelConfig, cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          log=print) -> dict:
    """Meta-train into `out` (last.pt, best.pt, metrics.jsonl). Returns the final metrics."""
    from tqdm import tqdm

    from edgemeta.evaluate import accuracy_by_instance, episodes_to_tensors

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    learner = build_learner(model_cfg).to(device)
    opt = torch.optim.Adam(learner.parameters(), lr=cfg.lr)
    total = cfg.total_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    step, best, history = 0, -1.0, []
    if resume and (out / LAST).exists():
        ckpt = load_checkpoint(out / LAST)
        if ckpt["model_config"] != model_cfg.to_dict():
            raise EdgemetaError(f"{out / LAST} was trained with a different model config; use a new --out or the same options")
        learner.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step, best = ckpt["step"], ckpt["metrics"].get("best_val", -1.0)
        log(f"resumed {out / LAST} at step {step}/{total}")
    elif resume:
        log(f"nothing to resume in {out}; starting fresh")

    task = OmniglotTask(model_cfg, cfg)

    def payload(metrics: dict) -> dict:
        return {
            "task": cfg.task,
            "model_config": model_cfg.to_dict(),
            "train_config": cfg.to_dict(),
            "model": learner.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "metrics": metrics,
        }

    interrupted = False

    def on_sigterm(signum, frame):  # a service manager stopping us gets the same clean save as Ctrl-C
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    t0, seen0 = time.perf_counter(), step
    run_loss = run_acc = None
    metrics: dict = {"best_val": best}
    bar = tqdm(total=total, initial=step, desc=f"train {cfg.model}", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        while step < total:
            learner.train()
            ep = task.train.sample(cfg.batch_size, np.random.default_rng([cfg.seed, step]))
            x, prev, labels = episodes_to_tensors(ep, model_cfg.num_classes, device)
            loss, acc = episode_loss(learner, x, prev, labels, cfg.novelty_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
            run_acc = acc.item() if run_acc is None else 0.98 * run_acc + 0.02 * acc.item()
            eps = (step - seen0) * cfg.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{run_loss:.3f}", acc=f"{run_acc:.3f}", eps=f"{eps:.0f}/s")
            bar.update(1)
            metrics = {"step": step, "loss": run_loss, "train_acc": run_acc, "episodes_per_s": eps, "best_val": best}
            if step % cfg.val_every == 0 or step == total:
                val = accuracy_by_instance(learner, task.validation_images, min(5, model_cfg.num_classes), 10,
                                           cfg.val_episodes, seed=cfg.seed + 1, device=str(device))
                score = float(np.mean(val["accuracy"][1:]))  # instances 2..10: what few-shot learning is about
                metrics.update(val=val["accuracy"], val_score=score, elapsed_s=time.perf_counter() - t0)
                history.append(metrics)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                bar.write(f"step {step}: val acc by instance {val['accuracy']}")
                if score > best:
                    best = score
                    metrics["best_val"] = best
                    save_checkpoint(out / BEST, payload(metrics))
            if step % cfg.ckpt_every == 0 or step == total:
                save_checkpoint(out / LAST, payload(metrics))
    except KeyboardInterrupt:
        interrupted = True
        save_checkpoint(out / LAST, payload(metrics))
        bar.write(f"interrupted: saved {out / LAST} at step {step}; continue with --resume")
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old_term)
    if interrupted:
        raise KeyboardInterrupt
    return metrics
