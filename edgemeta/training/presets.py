"""Presets: what `--model NAME` means, for the learner and for its training. The one table of defaults.

Each preset holds a complete ModelConfig and a complete TrainConfig; `edgemeta train` builds its options
from them (an option given on the command line wins) and shows them in `--help`. Torch-free, so the
help works on a device with only the runtime installed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from edgemeta import EdgemetaError
from edgemeta.models.config import ModelConfig
from edgemeta.training.config import TrainConfig


@dataclass(frozen=True)
class Preset:
    summary: str  # one line for `edgemeta train --help`
    model: ModelConfig
    train: TrainConfig

    def model_config(self, **overrides) -> ModelConfig:
        """A fresh copy of the preset's model config with `overrides` (validated)."""
        return replace(self.model, **overrides)

    def train_config(self, **overrides) -> TrainConfig:
        """A fresh copy of the preset's training config with `overrides` (validated)."""
        return replace(self.train, **overrides)


PRESETS: dict[str, Preset] = {
    "mann": Preset(
        "the paper's MANN: 20x20 pixels, 5 classes, LSTM(200) + 128x40 memory with 4 heads",
        ModelConfig(arch="mann", image_size=20, num_classes=5, encoder="flat"),
        TrainConfig(model="mann"),
    ),
    "lstm": Preset(
        "the paper's LSTM baseline: the same input protocol, no external memory",
        ModelConfig(arch="lstm", image_size=20, num_classes=5, encoder="flat"),
        TrainConfig(model="lstm"),
    ),
    # The product learner of the live demo. Its CNN (32/64/128 channels) is pretrained as a character
    # classifier and then kept frozen (encoder_lr_scale 0): meta-training with the rest makes its features
    # worse on new alphabets. The memory is as wide as the embedding and its keys start as the embedding,
    # so the first reads are a nearest neighbour on pretrained features.
    "default": Preset(
        "the product learner: 28x28 pixels, pretrained CNN, up to 10 classes, novelty head",
        ModelConfig(arch="mann", image_size=28, num_classes=10, encoder="conv", conv_channels=(32, 64, 128),
                    embedding_norm=True, novelty=True, memory_width=128, key_init="embedding"),
        TrainConfig(model="default", ways=(2, 10), instances=None, episode_length=100, pretrain_epochs=12,
                    encoder_lr_scale=0.0),
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise EdgemetaError(f"unknown model {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
