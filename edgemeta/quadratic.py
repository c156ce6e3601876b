"""`edgemeta train --task quadratic`: an LSTM that learns a new quadratic function every episode.

Hochreiter, Younger & Conwell 2001 ("Learning to learn using gradient descent"): the task, its data
and the least-squares oracle are in edgemeta/data/quadratic.py. Here: the learner (one explicit-state
step, as for Omniglot, so it exports the same way), training, evaluation and export.

At step t the learner sees x_t [B, 2] and prev_target = f(x_{t-1}) [B, 1] (0 at t = 0) and predicts
f(x_t). Its weights never change within an episode: it must learn the function in its state.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint, training_payload
from edgemeta.data.quadratic import (
    oracle_predictions, running_mean_predictions, nmse_by_index, sample_episodes,
)
from edgemeta.models.lstm import LSTMController
from edgemeta.models.step_learner import ExplicitState

ARCH = "quadratic-lstm"
TABLE_INDICES = (1, 2, 5, 10, 20, 30, 35, 40, 50)  # example indices printed in the table (1-based)
# Generator tags: training draws step k from default_rng([seed, k]); validation and test draw from
# three-word seeds ending in a non-zero tag, so they never replay a training batch.
VAL_STREAM, TEST_STREAM = (7, 1), (7, 2)
SETTLE_THRESHOLDS = (0.1, 0.05, 0.01)  # NMSE levels at which we call a function "learned" (see learned_from)
PARITY_TOL = 1e-4  # max abs difference torch vs ONNX Runtime over a whole episode


# --- configuration ------------------------------------------------------------------------------
@dataclass
class QuadraticModelConfig:
    arch: str = ARCH
    hidden: int = 64  # LSTM units

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuadraticModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown or d.get("arch", ARCH) != ARCH:
            raise EdgemetaError(f"not a quadratic-task model config ({d}); export it with its own task's tools")
        return cls(**d)


@dataclass
class QuadraticConfig:
    episodes: int = 100_000  # training episodes in all (optimizer steps = episodes / batch_size)
    batch_size: int = 32  # episodes (functions) per optimizer step
    lr: float = 1e-3  # Adam learning rate
    seed: int = 0  # seeds weights and every episode
    device: str = "auto"  # cpu | cuda | auto
    steps: int = 50  # examples per episode (the paper's table goes to 50)
    threads: int = 0  # torch CPU threads, 0 = torch's default
    hidden: int = 64  # LSTM units
    lr_min_ratio: float = 0.1  # cosine decay to lr * lr_min_ratio by the last step
    grad_clip: float = 10.0  # global gradient-norm clip
    val_every: int = 100  # optimizer steps between validations (and best-checkpoint updates)
    val_episodes: int = 500  # fixed validation functions
    ckpt_every: int = 100  # optimizer steps between last-checkpoint saves
    eval_episodes: int = 1000  # fresh test functions for the final table (0: skip it)

    def __post_init__(self) -> None:
        for name in ("episodes", "batch_size", "steps", "hidden", "val_every", "val_episodes", "ckpt_every"):
            if int(getattr(self, name)) < 1:
                raise EdgemetaError(f"quadratic option {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 2:
            raise EdgemetaError(f"--steps must be >= 2 for the quadratic task, got {self.steps}")
        if not self.lr > 0:
            raise EdgemetaError(f"learning rate must be > 0, got {self.lr}")

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.episodes / self.batch_size))

    def model_config(self) -> QuadraticModelConfig:
        return QuadraticModelConfig(hidden=self.hidden)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuadraticConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# --- the learner --------------------------------------------------------------------------------
class QuadraticLearner(ExplicitState, nn.Module):
    """LSTM over (x_t, f(x_{t-1})) with a linear read-out of f(x_t); state h, c (zeros = fresh)."""

    def __init__(self, cfg: QuadraticModelConfig):
        super().__init__()
        self.cfg = cfg
        self.controller = LSTMController(3, 0, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, 1)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"h": (self.cfg.hidden,), "c": (self.cfg.hidden,)}

    def _core(self, x_proj, state):
        h, c = self.controller(x_proj, state["h"], state["c"])
        return self.out(h), {"h": h, "c": c}

    def step(self, x: torch.Tensor, prev_target: torch.Tensor, state: dict[str, torch.Tensor]):
        """x [B, 2], prev_target [B, 1] -> (prediction [B, 1], next state)."""
        return self._core(self.controller.project(torch.cat([x, prev_target], dim=1)), state)

    def unroll(self, x: torch.Tensor, prev_target: torch.Tensor, state: dict[str, torch.Tensor] | None = None):
        """x [B, T, 2], prev_target [B, T, 1] -> (predictions [B, T, 1], final state)."""
        x_proj = self.controller.project(torch.cat([x, prev_target], dim=2))  # all T steps in one matmul
        state = self.zero_state(x.shape[0], x.device) if state is None else state
        preds = []
        for t in range(x.shape[1]):
            p, state = self._core(x_proj[:, t], state)
            preds.append(p)
        return torch.stack(preds, dim=1), state


def learner_from_quadratic_checkpoint(ckpt: dict) -> QuadraticLearner:
    if ckpt.get("task") != "quadratic":
        raise EdgemetaError(f"{ckpt.get('path', 'checkpoint')} is a {ckpt.get('task')} learner, not a quadratic one")
    learner = QuadraticLearner(QuadraticModelConfig.from_dict(ckpt["model_config"]))
    try:
        learner.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise EdgemetaError(f"{ckpt.get('path', 'checkpoint')}: weights do not match its model config ({detail})") from None
    return learner.eval()


def episode_tensors(ep, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """QuadraticEpisodes -> x [B, T, 2], prev_target [B, T, 1], y [B, T] on `device`."""
    x = torch.from_numpy(ep.x).to(device)
    prev = torch.from_numpy(ep.prev_target).unsqueeze(-1).to(device)
    return x, prev, torch.from_numpy(ep.y).to(device)


# --- evaluation ---------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_quadratic(learner: QuadraticLearner, episodes: int, steps: int, rng: np.random.Generator,
                       batch: int = 500, device="cpu", baselines: bool = True) -> dict:
    """Normalised MSE by example index 1..steps on fresh functions, with the oracle and mean baselines."""
    learner.eval()
    preds, ys, xs = [], [], []
    for start in range(0, episodes, batch):
        ep = sample_episodes(min(batch, episodes - start), steps, rng)
        x, prev, _ = episode_tensors(ep, device)
        preds.append(learner.unroll(x, prev)[0][..., 0].cpu().numpy())
        ys.append(ep.y)
        xs.append(ep.x)
    y = np.concatenate(ys)
    result = {
        "episodes": int(episodes),
        "steps": int(steps),
        "normalisation": "MSE / Var f over the family (98/135); predicting 0 scores 1.0",
        "index": list(range(1, steps + 1)),
        "nmse": nmse_by_index(np.concatenate(preds), y).tolist(),
    }
    result["learned_from"] = {f"{th:g}": settled_index(result["nmse"], th) for th in SETTLE_THRESHOLDS}
    if baselines:
        x = np.concatenate(xs)
        result["oracle"] = nmse_by_index(oracle_predictions(x, y), y).tolist()
        result["mean_baseline"] = nmse_by_index(running_mean_predictions(y), y).tolist()
    return result


def settled_index(nmse, threshold: float) -> int | None:
    """First example index (1-based) from which the NMSE stays below `threshold` to the episode's end."""
    above = [i for i, v in enumerate(nmse, start=1) if v >= threshold]
    last_above = above[-1] if above else 0
    return last_above + 1 if last_above < len(nmse) else None


def quadratic_table(result: dict) -> str:
    """The printed table: NMSE of the LSTM, the least-squares oracle and the running mean by example."""
    cols = [("LSTM", "nmse"), ("oracle", "oracle"), ("mean", "mean_baseline")]
    cols = [(title, key) for title, key in cols if key in result]
    lines = [f"normalised MSE by example index ({result['episodes']} fresh functions; {result['normalisation']})",
             f"{'example':>8}" + "".join(f"{title:>10}" for title, _ in cols)]
    for i in TABLE_INDICES:
        if i <= result["steps"]:
            lines.append(f"{i:>8}" + "".join(f"{result[key][i - 1]:>10.4f}" for _, key in cols))
    lines.append("oracle: least squares on the examples seen so far; mean: running mean of the targets seen so far")
    settled = ", ".join(f"< {th}: {'never' if k is None else f'from example {k}'}"
                        for th, k in result.get("learned_from", {}).items())
    if settled:
        lines.append(f"LSTM NMSE stays {settled}")
    return "\n".join(lines)


def run_quadratic_eval(run, episodes: int = 1000, seed: int = 0, device: str = "auto", out_dir=None,
                       log=print) -> dict:
    """Evaluate a quadratic checkpoint (or run dir) on fresh functions; print the table, write eval.json."""
    from edgemeta.training.checkpoint import resolve_checkpoint
    from edgemeta.runtime.atomic import atomic_write_text
    from edgemeta.training.loop import pick_device

    ckpt = load_checkpoint(run)
    learner = learner_from_quadratic_checkpoint(ckpt)
    dev = pick_device(device)
    steps = int(ckpt.get("train_config", {}).get("steps", 50))
    result = evaluate_quadratic(learner.to(dev), episodes, steps, np.random.default_rng([seed, *TEST_STREAM]),
                                device=dev)
    result.update(checkpoint=ckpt["path"], step=ckpt["step"], seed=seed)
    log(quadratic_table(result))
    out_dir = Path(out_dir) if out_dir else resolve_checkpoint(run).parent
    atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    log(f"wrote {out_dir / 'eval.json'}")
    return result


# --- training -----------------------------------------------------------------------------------
def train_quadratic(cfg: QuadraticConfig, out: str | Path, resume: bool = False, progress: bool = True,
                    log=print) -> dict:
    """Meta-train into `out` (last.pt, best.pt, metrics.jsonl, eval.json). Returns the final metrics.

    Ctrl-C (or SIGTERM) saves last.pt and re-raises KeyboardInterrupt; `resume=True` continues from it
    with exactly the episodes an uninterrupted run would have drawn.
    """
    from tqdm import tqdm

    from edgemeta.training.loop import pick_device

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgemetaError(f"cannot create run directory {out}: {e.strerror or e}; pick a writable --out") from None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model_cfg = cfg.model_config()
    learner = QuadraticLearner(model_cfg).to(device)
    opt = torch.optim.Adam(learner.parameters(), lr=cfg.lr)
    total = cfg.total_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    step, best = 0, math.inf
    if resume and (out / LAST).exists():
        ckpt = load_checkpoint(out / LAST)
        if ckpt.get("task") != "quadratic" or ckpt["model_config"] != model_cfg.to_dict():
            raise EdgemetaError(f"{out / LAST} was trained with a different task or model; "
                                "use a new --out or the same options")
        learner.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step, best = ckpt["step"], ckpt["metrics"].get("best_val", math.inf)
        log(f"resumed {out / LAST} at step {step}/{total}")
    elif resume:
        log(f"nothing to resume in {out}; starting fresh")

    def payload(metrics: dict) -> dict:
        return training_payload("quadratic", model_cfg, cfg, learner, opt, sched, step, metrics)

    def on_sigterm(signum, frame):  # a service manager stopping us gets the same clean save as Ctrl-C
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_sigterm)
    t0, seen0, run_loss = time.perf_counter(), step, None
    metrics: dict = {"step": step, "best_val": best}
    bar = tqdm(total=total, initial=step, desc="train quadratic", unit="step", disable=not progress, dynamic_ncols=True)
    try:
        while step < total:
            learner.train()
            ep = sample_episodes(cfg.batch_size, cfg.steps, np.random.default_rng([cfg.seed, step]))
            x, prev, y = episode_tensors(ep, device)
            loss = torch.mean((learner.unroll(x, prev)[0][..., 0] - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(learner.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
            eps = (step - seen0) * cfg.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(mse=f"{run_loss:.4f}", eps=f"{eps:.0f}/s")
            bar.update(1)
            metrics = {"step": step, "loss": run_loss, "episodes_per_s": eps, "best_val": best}
            if step % cfg.val_every == 0 or step == total:
                val = evaluate_quadratic(learner, cfg.val_episodes, cfg.steps,
                                         np.random.default_rng([cfg.seed, *VAL_STREAM]), device=device, baselines=False)
                score = float(np.mean(val["nmse"]))  # mean NMSE over all example indices: lower is better
                metrics.update(val_nmse=val["nmse"], val_score=score, elapsed_s=time.perf_counter() - t0)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                shown = {i: round(val["nmse"][i - 1], 4) for i in TABLE_INDICES if i <= cfg.steps}
                (bar.write if progress else log)(f"step {step}: val NMSE by example {shown}")
                if score < best:
                    best = metrics["best_val"] = score
                    save_checkpoint(out / BEST, payload(metrics))
            if step % cfg.ckpt_every == 0 or step == total:
                save_checkpoint(out / LAST, payload(metrics))
    except KeyboardInterrupt:
        save_checkpoint(out / LAST, payload(metrics))
        (bar.write if progress else log)(f"interrupted: saved {out / LAST} at step {step}; continue with --resume")
        raise
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, old_term)

    if cfg.eval_episodes:
        result = run_quadratic_eval(out, episodes=cfg.eval_episodes, seed=cfg.seed, device=str(device), log=log)
        table_keys = ("index", "nmse", "oracle", "mean_baseline", "learned_from")
        metrics = {**metrics, "eval": {k: result[k] for k in table_keys}}
        # Keep the table in the checkpoint too: export carries it into the ONNX metadata.
        best_ckpt = load_checkpoint(out / BEST)
        best_ckpt["metrics"] = {**best_ckpt["metrics"], "eval": metrics["eval"]}
        best_ckpt.pop("path", None)
        save_checkpoint(out / BEST, best_ckpt)
    return metrics


# --- export -------------------------------------------------------------------------------------
class _QuadraticStepGraph(nn.Module):
    """Flattens the dict-state step into positional tensors in the contract's order."""

    def __init__(self, learner: QuadraticLearner):
        super().__init__()
        self.learner = learner
        self.names = learner.state_names

    def forward(self, x, prev_target, *state):
        pred, nxt = self.learner.step(x, prev_target, dict(zip(self.names, state)))
        return (pred, *[nxt[n] for n in self.names])


def export_quadratic(ckpt: dict, out_dir: str | Path, batch: int = 4) -> dict:
    """Write out_dir/learner.onnx (the contract's quadratic variant), check it and prove parity.

    Everything is built and checked in a temporary directory beside `out_dir`; only a learner that
    passed onnx.checker and the episode parity check is moved into place, so a failure leaves the
    old output (if any) untouched and nothing that looks valid.
    """
    import onnx

    from edgemeta.export.onnx_export import model_id, pin_output_shapes
    from edgemeta.runtime import contract

    learner = learner_from_quadratic_checkpoint(ckpt).cpu()
    train_cfg = ckpt.get("train_config", {})
    names = list(learner.state_names)
    inputs = [contract.X, contract.PREV_TARGET] + names
    outputs = [contract.PREDICTION] + [contract.state_out(n) for n in names]
    meta = {
        "format": contract.FORMAT,
        "name": "quadratic",
        "task": "quadratic",
        "num_classes": 0,
        "input_size": 2,
        "preprocess": "none",
        "state": [{"name": n, "shape": list(s)} for n, s in learner.state_shapes().items()],
        "config": {"model": ckpt["model_config"], "train": train_cfg},
        "eval": _eval_table(ckpt),
        "model_id": model_id(learner),
        "episode_steps": int(train_cfg.get("steps", 50)),
    }
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        tmp_dir.chmod(0o755)  # mkdtemp makes it private; it becomes out_dir when out_dir is new
    except OSError as e:
        raise EdgemetaError(f"cannot write to {out_dir}: {e.strerror or e}; pick a writable --out") from None
    try:
        onnx_path = tmp_dir / contract.ONNX_FILE
        state = tuple(learner.zero_state(batch, "cpu").values())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(  # the TorchScript exporter: a plain opset-17 graph, as export_step uses
                _QuadraticStepGraph(learner), (torch.zeros(batch, 2), torch.zeros(batch, 1), *state), str(onnx_path),
                input_names=inputs, output_names=outputs,
                dynamic_axes={n: {0: contract.BATCH_AXIS} for n in inputs + outputs},
                opset_version=contract.OPSET, do_constant_folding=True, dynamo=False,
            )
        model = onnx.load(str(onnx_path))
        # only the batch axis is dynamic; the tracer leaves some output axes symbolic
        pin_output_shapes(model, {contract.PREDICTION: (1,),
                                  **{contract.state_out(n): s for n, s in learner.state_shapes().items()}})
        entry = model.metadata_props.add()
        entry.key, entry.value = contract.METADATA_KEY, json.dumps(meta)
        onnx.checker.check_model(model, full_check=True)  # full_check: the pinned shapes are what it computes
        onnx.save(model, str(onnx_path))
        # whole episodes, at least the 50 steps of the paper's table even for a shorter-trained learner
        parity = quadratic_parity(learner, onnx_path, steps=max(50, meta["episode_steps"]), batch=batch)
        if parity["max_abs_diff"] > PARITY_TOL:
            raise EdgemetaError(f"ONNX parity check failed: max abs difference {parity['max_abs_diff']:.2e} over a "
                                f"{parity['steps']}-step episode exceeds {PARITY_TOL:g}; nothing was written")
        try:
            _publish(tmp_dir, out_dir)
        except OSError as e:
            raise EdgemetaError(f"cannot write to {out_dir}: {e.strerror or e}; pick a writable --out") from None
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return {"path": str(out_dir / contract.ONNX_FILE), "metadata": meta, "parity": parity}


def quadratic_parity(learner: QuadraticLearner, onnx_path: str | Path, steps: int = 50, batch: int = 4,
                     seed: int = 0) -> dict:
    """Drive torch and ONNX Runtime through the same fresh episodes, state carried step to step."""
    import onnxruntime as ort

    from edgemeta.runtime import contract

    ep = sample_episodes(batch, steps, np.random.default_rng([seed, 7, 3]))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = list(learner.state_names)
    with torch.no_grad():
        x, prev, _ = episode_tensors(ep, "cpu")
        torch_pred, torch_state = learner.unroll(x, prev)
    state = {n: np.zeros((batch, *s), np.float32) for n, s in learner.state_shapes().items()}
    ort_pred = []
    for t in range(steps):
        feeds = {contract.X: ep.x[:, t], contract.PREV_TARGET: ep.prev_target[:, t, None], **state}
        outs = sess.run(None, feeds)
        ort_pred.append(outs[0])
        state = dict(zip(names, outs[1:]))
    pred_diff = float(np.abs(np.stack(ort_pred, 1) - torch_pred.numpy()).max())
    state_diff = max(float(np.abs(state[n] - torch_state[n].numpy()).max()) for n in names)
    return {"steps": steps, "batch": batch, "prediction_max_abs_diff": pred_diff, "state_max_abs_diff": state_diff,
            "max_abs_diff": max(pred_diff, state_diff), "tolerance": PARITY_TOL}


def _eval_table(ckpt: dict) -> dict:
    """The test table training stored in the checkpoint, else eval.json beside it if it evaluated this
    very checkpoint, else the last validation curve, else {}."""
    metrics = ckpt.get("metrics") or {}
    if metrics.get("eval"):
        return metrics["eval"]
    path = Path(ckpt.get("path", "")).parent / "eval.json"
    if ckpt.get("path") and path.is_file():
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = None
        if isinstance(table, dict) and table.get("checkpoint") == ckpt["path"] and table.get("step") == ckpt["step"]:
            return table
    if metrics.get("val_nmse"):
        return {"split": "validation", "nmse": metrics["val_nmse"], "step": ckpt["step"]}
    return {}


def _publish(tmp_dir: Path, out_dir: Path) -> None:
    """Move the checked files into out_dir: one rename of the whole folder when it is new, else one
    atomic replace per file (other files already in out_dir are left alone)."""
    if not out_dir.exists():
        os.replace(tmp_dir, out_dir)
        return
    if not out_dir.is_dir():
        raise EdgemetaError(f"{out_dir} exists and is not a directory; pick another --out")
    for f in tmp_dir.iterdir():
        os.replace(f, out_dir / f.name)
    tmp_dir.rmdir()
