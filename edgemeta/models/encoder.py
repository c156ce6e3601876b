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


class PretrainedEncoder(nn.Module):
    """EfficientNet-Lite0 (RGB in [0, 1], its normalisation inside) -> 1280 pooled features -> a linear
    projection to a fixed-length `embedding` (the `objects` learner; edgemeta/models/efficientnet_lite.py).

    Built without weights: a checkpoint carries the backbone's (edgemeta/training/objects_learner.py).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        from edgemeta.models.efficientnet_lite import FEATURES, EfficientNetLite0

        self.backbone = EfficientNetLite0()
        del self.backbone._fc  # the ImageNet classifier: not part of the learner
        self.proj = nn.Linear(FEATURES, cfg.embedding)
        self.norm = FixedLength(cfg.embedding) if cfg.embedding_norm else nn.LayerNorm(cfg.embedding)
        self.out_features = cfg.embedding

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(self.backbone.features(image)))


def build_encoder(cfg: ModelConfig) -> nn.Module:
    if cfg.encoder == "efficientnet_lite0":
        return PretrainedEncoder(cfg)
    return ConvEncoder(cfg) if cfg.encoder == "conv" else FlatEncoder(cfg)
