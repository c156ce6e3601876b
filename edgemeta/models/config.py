"""Model configuration: one dataclass, serialised as plain JSON inside checkpoints and exports."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgemeta import EdgemetaError

ARCHS = ("mann", "lstm", "custom")
ENCODERS = ("flat", "conv", "efficientnet_lite0")
# encoders that take RGB [B, 3, S, S] in [0, 1] (the rest take one ink channel, [B, 1, S, S])
RGB_ENCODERS = ("efficientnet_lite0",)
# encoders with a learned `embedding`-wide output (the rest pass pixels through)
EMBEDDING_ENCODERS = ("conv", "efficientnet_lite0")
KEY_INITS = ("random", "embedding")


@dataclass
class ModelConfig:
    arch: str = "mann"  # "mann" (LSTM controller + LRUA memory), "lstm" (no external memory), "custom" (`module`)
    image_size: int = 20  # S: the learner's input is [B, 1, S, S], ink = 1.0
    num_classes: int = 5  # C: size of the label space (logits and prev_label)
    # "flat": raw pixels into the controller (the paper); "conv": a small CNN first; "efficientnet_lite0": the
    # ImageNet-pretrained backbone on RGB, then a linear projection to `embedding` (the `objects` learner)
    encoder: str = "flat"
    conv_channels: tuple[int, ...] = (16, 32, 64)  # conv encoder: channels per 3x3 conv + 2x2 max-pool block
    embedding: int = 128  # conv encoder: output features
    # conv encoder: scale the embedding to a fixed length (sqrt(embedding)): its direction, not its
    # length, carries the class (what encoder pretraining trains for; see edgemeta/training/pretrain.py).
    embedding_norm: bool = False
    controller: int = 200  # LSTM controller units (paper: 200)
    memory_slots: int = 128  # external memory rows (paper: 128)
    memory_width: int = 40  # external memory row width (paper: 40)
    read_heads: int = 4  # read heads; LRUA writes with as many write heads (paper: 4)
    gamma: float = 0.95  # usage decay of LRUA
    novelty: bool = False  # add a `novelty` head trained to fire on the first instance of a class
    # How the heads' keys start: "random" (a learned projection from a random start) or "embedding":
    # keys start as tanh(KEY_SCALE * embedding) (the features' share of the key weights an identity, the
    # controller's share zero), so the first reads are a nearest neighbour on the pretrained embedding
    # and meta-training refines that instead of finding a projection from scratch. Needs a conv encoder
    # and memory_width == embedding.
    key_init: str = "random"
    # arch "custom": the user's step module, "path/to/file.py:ClassName" (edgemeta/models/user_learner.py)
    module: str = ""

    def __post_init__(self) -> None:
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        if self.arch not in ARCHS:
            raise EdgemetaError(f"unknown model arch {self.arch!r}; valid: {', '.join(ARCHS)}")
        if self.encoder not in ENCODERS:
            raise EdgemetaError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        for name in ("image_size", "num_classes", "controller", "memory_slots", "memory_width", "read_heads"):
            if int(getattr(self, name)) < 1:
                raise EdgemetaError(f"model option {name} must be >= 1, got {getattr(self, name)}")
        if self.embedding_norm and self.encoder not in EMBEDDING_ENCODERS:
            raise EdgemetaError("embedding_norm shapes a conv encoder's output; set encoder='conv' or drop it")
        if self.key_init not in KEY_INITS:
            raise EdgemetaError(f"unknown key_init {self.key_init!r}; valid: {', '.join(KEY_INITS)}")
        if self.key_init == "embedding" and (self.encoder not in EMBEDDING_ENCODERS or self.memory_width != self.embedding):
            raise EdgemetaError("key_init='embedding' starts keys as the conv embedding: needs encoder='conv' and "
                                f"memory_width == embedding ({self.embedding}), got {self.memory_width}")
        if (self.arch == "custom") != bool(self.module):
            raise EdgemetaError("a custom learner names its module (module='path/to/file.py:ClassName'), and only "
                                f"a custom one does: arch {self.arch!r}, module {self.module!r}")
        if self.read_heads > self.memory_slots:
            raise EdgemetaError("read_heads must not exceed memory_slots")
        if not 0.0 < self.gamma <= 1.0:
            raise EdgemetaError(f"gamma must lie in (0, 1], got {self.gamma}")

    @property
    def channels(self) -> int:
        """The image's channels: 3 (RGB in [0, 1]) for a pretrained RGB backbone, else 1 (ink = 1.0)."""
        return 3 if self.encoder in RGB_ENCODERS else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        if not self.module:
            del d["module"]  # edgemeta's own learners keep the config they have always stored
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**known_keys(cls, d, "model config"))


def known_keys(cls, d: dict, what: str) -> dict:
    """`d` itself when every key names a field of dataclass `cls`; otherwise one EdgemetaError naming the
    unknown keys and the valid ones: a config read from a checkpoint is never silently trimmed."""
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise EdgemetaError(f"{what} has unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                            f"valid: {', '.join(valid)}")
    return dict(d)
