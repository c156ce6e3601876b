"""Model configuration: one dataclass, serialised as plain JSON inside checkpoints and exports."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgemeta import EdgemetaError

ARCHS = ("mann", "lstm")
ENCODERS = ("flat", "conv")
KEY_INITS = ("random", "embedding")


@dataclass
class ModelConfig:
    arch: str = "mann"  # "mann" (LSTM controller + LRUA memory) or "lstm" (no external memory)
    image_size: int = 20  # S: the learner's input is [B, 1, S, S], ink = 1.0
    num_classes: int = 5  # C: size of the label space (logits and prev_label)
    encoder: str = "flat"  # "flat": raw pixels into the controller (the paper); "conv": a small CNN first
    conv_channels: tuple[int, ...] = (16, 32, 64)  # conv encoder: channels per 3x3 conv + 2x2 max-pool block
    embedding: int = 128  # conv encoder: output features
    # conv encoder: also pass the raw pixels on. A random CNN maps all characters to similar features,
    # so memory lookups start blind; raw pixels give them a useful similarity from the first step while
    # the CNN learns better features.
    pixel_skip: bool = False
    # conv encoder: scale the embedding to a fixed length (sqrt(embedding)): its direction, not its
    # length, carries the class (what encoder pretraining trains for; see edgemeta/training/pretrain.py).
    embedding_norm: bool = False
    controller: int = 200  # LSTM controller units (paper: 200)
    memory_slots: int = 128  # external memory rows (paper: 128)
    memory_width: int = 40  # external memory row width (paper: 40)
    read_heads: int = 4  # read heads; LRUA writes with as many write heads (paper: 4)
    gamma: float = 0.95  # usage decay of LRUA
    novelty: bool = False  # add a `novelty` head trained to fire on the first instance of a class
    # Label-aligned writes: each memory row also stores the label that arrived one step late, written
    # together with the previous step's key, so a read returns the label of similar past inputs.
    # False gives the paper's exact LRUA (slower to learn: the LSTM must carry x_{t-1} to bind it to y_{t-1}).
    label_memory: bool = True
    # How the heads' keys start: "random" (a learned projection from a random start) or "embedding":
    # keys start as tanh(KEY_SCALE * embedding) (the features' share of the key weights an identity, the
    # controller's share zero), so the first reads are a nearest neighbour on the pretrained embedding
    # and meta-training refines that instead of finding a projection from scratch. Needs a conv encoder
    # without pixel_skip and memory_width == embedding.
    key_init: str = "random"
    # False: the key weights (the heads' key rows) get no gradient and keep their start; with
    # key_init="embedding" every key is then tanh(KEY_SCALE * embedding) for good, so memory reads stay a
    # cosine nearest neighbour on the pretrained embedding on any alphabet, and meta-training learns
    # only when and how sharply to read and write, and what to answer.
    train_keys: bool = True

    def __post_init__(self) -> None:
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        if self.arch not in ARCHS:
            raise EdgemetaError(f"unknown model arch {self.arch!r}; valid: {', '.join(ARCHS)}")
        if self.encoder not in ENCODERS:
            raise EdgemetaError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        for name in ("image_size", "num_classes", "controller", "memory_slots", "memory_width", "read_heads"):
            if int(getattr(self, name)) < 1:
                raise EdgemetaError(f"model option {name} must be >= 1, got {getattr(self, name)}")
        if (self.pixel_skip or self.embedding_norm) and self.encoder != "conv":
            raise EdgemetaError("pixel_skip and embedding_norm shape a conv encoder's output; set encoder='conv' or drop them")
        if self.key_init not in KEY_INITS:
            raise EdgemetaError(f"unknown key_init {self.key_init!r}; valid: {', '.join(KEY_INITS)}")
        if self.key_init == "embedding" and (self.encoder != "conv" or self.pixel_skip
                                             or self.memory_width != self.embedding):
            raise EdgemetaError("key_init='embedding' starts keys as the conv embedding: needs encoder='conv', "
                                f"no pixel_skip and memory_width == embedding ({self.embedding}), got {self.memory_width}")
        if not self.train_keys and self.key_init != "embedding":
            raise EdgemetaError("train_keys=False keeps the keys at their start; that start must be key_init='embedding'")
        if self.read_heads > self.memory_slots:
            raise EdgemetaError("read_heads must not exceed memory_slots")
        if not 0.0 < self.gamma <= 1.0:
            raise EdgemetaError(f"gamma must lie in (0, 1], got {self.gamma}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise EdgemetaError(f"model config has unknown keys {unknown}; valid: {sorted(known)}")
        return cls(**d)


# Named presets: what `--model NAME` means.
PRESETS: dict[str, dict] = {
    # Santoro et al. 2016, Omniglot: 20x20 pixels, 5 classes, LSTM(200) + 128x40 memory, 4 heads.
    "mann": dict(arch="mann", image_size=20, num_classes=5, encoder="flat"),
    # The paper's LSTM baseline: same input protocol, no external memory.
    "lstm": dict(arch="lstm", image_size=20, num_classes=5, encoder="flat"),
    # The product learner for the live demo: CNN encoder (pretrained as a classifier, then meta-trained
    # with the rest), up to 10 classes, novelty head.
    # Its CNN is twice the width of the config's default (32/64/128 channels): pretrained, that moved a
    # nearest neighbour over an episode's embeddings from 96.6% to 97.9% at the 2nd instance on meta-test.
    # Its memory is as wide as the embedding and its keys start as the embedding (key_init): the learner's
    # 2nd-instance accuracy on new alphabets had trailed a plain nearest neighbour on its own embedding.
    "default": dict(arch="mann", image_size=28, num_classes=10, encoder="conv", conv_channels=(32, 64, 128),
                    embedding_norm=True, novelty=True, memory_width=128, key_init="embedding"),
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise EdgemetaError(f"unknown model {name!r}; valid: {', '.join(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
