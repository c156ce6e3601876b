"""Checkpoints: configs, weights, step and metrics in one file, written atomically, loaded without code.

A checkpoint is a plain dict saved with torch.save and read back with `weights_only=True`, so a
file from the internet can never execute code on load. It carries everything `edgemeta export`
and `edgemeta eval` need: no other file has to travel with it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_path

KIND = "edgemeta-checkpoint"
FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    payload = {"kind": KIND, "format": FORMAT, **payload}
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except OSError as e:
        raise EdgemetaError(f"cannot write checkpoint {path}: {e.strerror or e}; the previous file was kept") from None


def resolve_checkpoint(path: str | os.PathLike, prefer: str = BEST) -> Path:
    """A run directory -> its best (else last) checkpoint; a file -> itself."""
    p = Path(path)
    if p.is_dir():
        for name in (prefer, BEST, LAST):
            if (p / name).is_file():
                return p / name
        raise EdgemetaError(f"{p} holds no checkpoint ({BEST} or {LAST}); train into it with `edgemeta train --out {p}`")
    if not p.is_file():
        raise EdgemetaError(f"checkpoint {p} does not exist")
    return p


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # a file that is not a checkpoint can make the unpickler raise almost anything
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgemetaError(f"{p} is not a readable edgemeta checkpoint ({first[:160]}); re-train or re-download it") from None
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

    cfg = ModelConfig.from_dict(ckpt["model_config"])
    learner = build_learner(cfg)
    try:
        learner.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise EdgemetaError(f"{ckpt.get('path', 'checkpoint')}: weights do not match its model config ({detail})") from None
    learner.eval()
    return learner
