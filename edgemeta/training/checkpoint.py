"""Checkpoints: configs, weights, step and metrics in one file, written atomically, loaded without code.

A checkpoint is a plain dict saved with torch.save and read back with `weights_only=True`, so a
file from the internet can never execute code on load. It carries everything `edgemeta export`
and `edgemeta eval` need: no other file has to travel with it.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_path
from edgemeta.runtime.file_kind import not_a_file

KIND = "edgemeta-checkpoint"
FORMAT = 1
LAST, BEST = "last.pt", "best.pt"
PRETRAIN = "pretrain.pt"  # encoder pretraining in progress (edgemeta/training/pretrain.py)


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    payload = {"kind": KIND, "format": FORMAT, **payload}
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            # Through a Python file: on a full disk torch's own C++ file writer fails with a cryptic
            # RuntimeError ("unexpected pos ..."), Python's file with OSError(ENOSPC), which we report.
            torch.save(payload, f)
    except OSError as e:
        raise EdgemetaError(f"cannot write checkpoint {path}: {e.strerror or e}; the previous file was kept") from None
    except RuntimeError as e:
        cause = _os_error_behind(e)
        if cause is None:
            raise
        # torch's zip writer wraps the file's OSError (a full disk: errno 28) in "[enforce fail at inline_container.cc]"
        raise EdgemetaError(f"cannot write checkpoint {path}: {cause.strerror or cause}; the previous file was kept") from None


def _os_error_behind(e: BaseException) -> OSError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def training_payload(task: str, model_cfg, train_cfg, learner, optimizer, scheduler, step: int, metrics: dict) -> dict:
    """What every training loop saves: enough to export, evaluate or resume with nothing else."""
    return {
        "task": task,
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "model": learner.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "metrics": metrics,
    }


def resolve_checkpoint(path: str | os.PathLike, prefer: str = BEST) -> Path:
    """A run directory -> its best (else last) checkpoint; a file -> itself."""
    p = Path(path)
    if p.is_dir():
        for name in (prefer, BEST, LAST):
            if (p / name).is_file():
                return p / name
        raise EdgemetaError(f"{p} holds no checkpoint ({BEST} or {LAST}); train into it with `edgemeta train --out {p}`")
    what = not_a_file(p)
    if what is not None:
        raise EdgemetaError(f"checkpoint {p} {what}")
    return p


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's messages here are paragraphs that suggest weights_only=False; say what the file is instead.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:  # weights_only=True met a class or function it will not build: never load it
            raise EdgemetaError(f"{p} holds Python objects besides tensors and plain data ({found.group(1)}); refused "
                                "unloaded, as loading them could run code: use a checkpoint written by `edgemeta train`") from None
        raise EdgemetaError(f"{p} is not a readable edgemeta checkpoint (not a file written by torch.save); "
                            "re-train or re-download it") from None
    except Exception as e:  # a file that is not a checkpoint can make the unpickler raise almost anything
        raise EdgemetaError(f"{p} is not a readable edgemeta checkpoint ({_first_line(e)}); re-train or re-download it") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise EdgemetaError(f"{p} is not an edgemeta checkpoint (no '{KIND}' marker); pass a file written by `edgemeta train`")
    if ckpt.get("format") != FORMAT:
        raise EdgemetaError(f"{p} has checkpoint format {ckpt.get('format')}; this edgemeta reads format {FORMAT}")
    for key in ("model_config", "model", "step"):
        if key not in ckpt:
            raise EdgemetaError(f"{p} is missing '{key}'; the checkpoint is damaged")
    ckpt["path"] = str(p)
    return ckpt


def learner_from_checkpoint(ckpt: dict):
    """Build the learner a checkpoint describes and load its weights, checking they match its config."""
    from edgemeta.models import ModelConfig, build_learner

    where = ckpt.get("path", "checkpoint")
    config = ckpt["model_config"]
    if not isinstance(config, dict):
        raise EdgemetaError(f"{where}: its model config is damaged (a {type(config).__name__}, not a mapping); re-train it")
    try:
        cfg = ModelConfig.from_dict(config)
        _check_size(cfg, ckpt["model"], where)
        learner = build_learner(cfg)
    except EdgemetaError as e:
        raise EdgemetaError(f"{where}: {e}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as e:  # e.g. a number where a name belongs
        raise EdgemetaError(f"{where}: its model config is damaged ({type(e).__name__}: {_first_line(e)}); re-train it") from None
    try:
        learner.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as e:  # wrong shapes or names, or no state dict at all
        detail = " ".join(str(e).split())[:200]
        raise EdgemetaError(f"{where}: weights do not match its model config ({detail})") from None
    learner.eval()
    return learner


# The most memory a learner's own tensors may take (weights and fixed buffers, not an episode's state):
# every learner edgemeta trains is a few MB; a config asking for more was not written by a training run.
MAX_LEARNER_BYTES = 1 << 30


def _check_size(cfg, weights, where: str) -> None:
    """Build the config's learner on the meta device (nothing allocated) and refuse one whose tensors would
    take more than MAX_LEARNER_BYTES, or whose weights' shapes differ from the checkpoint's, before the real
    build allocates them (a memory_slots of 10^9 asks for gigabytes)."""
    from edgemeta.models import build_learner

    try:
        with torch.device("meta"):
            probe = build_learner(cfg)
    except EdgemetaError:
        raise
    except Exception:  # a learner that cannot be built on the meta device is checked by the real build
        return
    tensors = list(probe.parameters()) + list(probe.buffers())
    size = sum(t.numel() * t.element_size() for t in tensors)
    if size > MAX_LEARNER_BYTES:
        raise EdgemetaError(f"its model config asks for a learner of {size / 2**30:.1f} GiB (memory_slots "
                            f"{cfg.memory_slots}, memory_width {cfg.memory_width}, controller {cfg.controller}); no "
                            "trained learner is that large: the checkpoint is damaged or crafted")
    if isinstance(weights, dict):
        expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
        for name, tensor in weights.items():
            shape = tuple(getattr(tensor, "shape", ()))
            if name in expected and expected[name] != shape:
                raise EdgemetaError(f"weights do not match its model config ({name}: {list(shape)} in the file, "
                                    f"{list(expected[name])} in the config)")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__
