"""Small untrained checkpoints for export, evaluation and fault tests: the contract and parity do not
depend on training, and untrained learners keep those tests fast."""
from __future__ import annotations

import torch

from edgemeta.models import ModelConfig, build_learner
from edgemeta.training.checkpoint import save_checkpoint
from edgemeta.training.config import TrainConfig

FLAT = ModelConfig(arch="mann", image_size=12, num_classes=3, controller=32, memory_slots=16, memory_width=8, read_heads=2)
CONV = ModelConfig(arch="mann", image_size=16, num_classes=4, encoder="conv", conv_channels=(4, 8), embedding=16,
                   controller=32, memory_slots=16, memory_width=8, read_heads=2, novelty=True)


def make_checkpoint(path, cfg: ModelConfig, seed: int = 0, metrics=None, **train) -> None:
    torch.manual_seed(seed)
    learner = build_learner(cfg)
    save_checkpoint(path, {
        "task": "omniglot", "model_config": cfg.to_dict(), "train_config": TrainConfig(**train).to_dict(),
        "model": learner.state_dict(), "step": 0, "metrics": metrics or {},
    })
