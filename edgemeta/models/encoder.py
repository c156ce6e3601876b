"""Image encoders: what the controller sees of x_t."""
from __future__ import annotations

import torch
from torch import nn

from edgemeta.models.config import ModelConfig


class FlatEncoder(nn.Module):
    """The paper's input: the raw S*S pixels, flattened."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.out_features = cfg.image_size * cfg.image_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.flatten(1)


class ConvEncoder(nn.Module):
    """A small CNN (3x3 conv, ReLU, 2x2 max-pool blocks) then a linear embedding.

    No batch norm on purpose: the learner runs one image at a time on the device, and
    train/eval statistics mismatch would silently change what was meta-learned.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 1, cfg.image_size
        for out in cfg.conv_channels:
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels, size = out, size // 2
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(channels * size * size, cfg.embedding)
        self.norm = FixedLength(cfg.embedding) if cfg.embedding_norm else nn.LayerNorm(cfg.embedding)
        self.out_features = cfg.embedding

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """The CNN's embedding (what encoder pretraining trains, and what the controller sees)."""
        return self.norm(self.proj(self.body(image).flatten(1)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.embed(image)


class FixedLength(nn.Module):
    """x scaled to length sqrt(dim): unit-sized entries on average, as the controller's other inputs."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = float(dim) ** 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.scale / torch.sqrt((x * x).sum(dim=1, keepdim=True) + 1e-12))


def build_encoder(cfg: ModelConfig) -> nn.Module:
    return ConvEncoder(cfg) if cfg.encoder == "conv" else FlatEncoder(cfg)
