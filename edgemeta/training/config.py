"""Training configuration: one dataclass, stored as plain JSON inside every checkpoint (no torch here)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgemeta import EdgemetaError
from edgemeta.models.config import known_keys

TASKS = ("omniglot",)
SAMPLERS = ("auto", "host", "device")
DEVICES = ("auto", "cpu", "cuda")
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    task: str = "omniglot"  # what is meta-learned: few-shot classification of Omniglot characters
    model: str = "mann"  # the preset the model config came from (edgemeta/training/presets.py)
    ways: tuple[int, int] = (5, 5)  # classes per episode, a range for a varying number of ways
    instances: int | None = 10  # examples per class (episode length = ways * instances) ...
    episode_length: int | None = None  # ... or a fixed number of time steps per episode, split among the ways
    episodes: int = 100_000  # total training episodes (optimizer steps = episodes / batch_size)
    batch_size: int = 32  # episodes per optimizer step
    lr: float = 1e-3  # Adam learning rate
    lr_min_ratio: float = 0.1  # cosine decay to lr * lr_min_ratio by the last optimizer step
    grad_clip: float = 10.0  # global gradient-norm clip: recurrent nets spike now and then
    novelty_weight: float = 0.5  # weight of the novelty loss, where the learner has that head
    augment: bool = True  # the paper's augmentation (90-degree class rotations, small jitter)
    rotations: bool | None = None  # augment with 90-degree class rotations; None: the data set's default (Omniglot yes, image folders no)
    seed: int = 0  # seeds weights and every episode
    val_every: int = 200  # optimizer steps between validations (and best-checkpoint updates)
    val_episodes: int = 500  # validation episodes (5-way, or C-way if C < 5; 10 instances; validation classes)
    ckpt_every: int = 100  # optimizer steps between last-checkpoint saves
    device: str = "auto"  # cpu | cuda | auto
    threads: int = 0  # torch CPU threads, 0 = torch's default
    data: str | None = None  # Omniglot directory or an image folder (data/image_folder.py); else $EDGEMETA_DATA
    workers: int = 0  # processes sampling episodes ahead of training (0: sample in the training loop)
    sampler: str = "auto"  # host (numpy + OpenCV) | device (torch ops on the device) | auto (device on CUDA)
    compile: bool = False  # torch.compile the learner's step for training (same numbers, faster; compiles first)
    compile_mode: str = "auto"  # torch.compile mode; auto: CUDA graphs on CUDA, inductor's default on CPU
    span: int = 0  # time steps per compiled graph; 0: 10 on CPU, 1 on CUDA (compiled_step.default_span)
    pretrain_epochs: int = 0  # conv encoder: epochs as a character classifier before meta-training (training/pretrain.py)
    encoder_lr_scale: float = 1.0  # the encoder's learning rate as a fraction of lr (0: frozen after pretraining)
    camera_views: float = 0.0  # share of the examples seen as the symbol camera would (data/camera_views.py); Omniglot only
    init: str | None = None  # a checkpoint whose weights start the run (same model config), instead of fresh ones and pretraining

    def __post_init__(self) -> None:
        if isinstance(self.ways, int):
            self.ways = (self.ways, self.ways)
        self.ways = tuple(int(w) for w in self.ways)
        if self.task not in TASKS:
            raise EdgemetaError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        if len(self.ways) != 2 or not 1 <= self.ways[0] <= self.ways[1]:
            raise EdgemetaError(f"ways must be N or MIN-MAX with 1 <= MIN <= MAX, got {self.ways}")
        if (self.instances is None) == (self.episode_length is None):
            raise EdgemetaError("give instances or episode_length, exactly one (instances=None with an episode_length)")
        if self.episodes < 1 or self.batch_size < 1:
            raise EdgemetaError("episodes and batch_size must be >= 1")
        if not self.lr > 0:
            raise EdgemetaError(f"learning rate must be > 0, got {self.lr}")
        if self.pretrain_epochs < 0:
            raise EdgemetaError(f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")
        if not self.encoder_lr_scale >= 0:
            raise EdgemetaError(f"encoder_lr_scale must be >= 0, got {self.encoder_lr_scale}")
        if not 0.0 <= self.camera_views <= 1.0:
            raise EdgemetaError(f"camera_views is a share of the examples, in [0, 1]; got {self.camera_views}")
        if self.camera_views and self.sampler == "device":
            raise EdgemetaError("--camera-views runs the camera front end (numpy + OpenCV) on the host; drop --sampler device")
        if self.init and self.pretrain_epochs:
            raise EdgemetaError("--init starts from a trained checkpoint's weights, encoder included; pretraining would "
                                "replace its encoder: drop --pretrain-epochs (or set it to 0)")
        if self.workers < 0:
            raise EdgemetaError(f"workers must be >= 0, got {self.workers}")
        if self.sampler not in SAMPLERS:
            raise EdgemetaError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if self.sampler == "device" and self.workers:
            raise EdgemetaError("--workers sample on the host; with --sampler device there is nothing for them to do")
        if self.compile_mode not in COMPILE_MODES:
            raise EdgemetaError(f"unknown compile mode {self.compile_mode!r}; valid: {', '.join(COMPILE_MODES)}")
        if self.span < 0:
            raise EdgemetaError(f"span must be >= 0 (0: automatic), got {self.span}")
        if self.span and not self.compile:
            raise EdgemetaError("--span sets how many time steps one compiled graph spans; add --compile, or drop it")

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return max(1, math.ceil(self.episodes / self.batch_size))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ways"] = list(self.ways)
        # Options left at their defaults are not stored: runs that never chose keep the config they always stored.
        if self.rotations is None:
            del d["rotations"]
        if not self.camera_views:
            del d["camera_views"]
        if self.init is None:
            del d["init"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**known_keys(cls, d, "train config"))

