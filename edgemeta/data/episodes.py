"""Episodes for meta-learning: `ways` classes, a few instances each, shuffled, fresh labels.

At step t the learner sees image x_t and the one-hot label of x_{t-1} (zeros at t = 0) and must
predict y_t. Labels are a fresh random assignment every episode, so the weights cannot memorise
classes: they have to learn how to learn them from the label that arrives one step late.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Episodes:
    images: np.ndarray  # (B, T, S, S) float32, ink = 1.0
    labels: np.ndarray  # (B, T) int64, in [0, num_classes)
    instance: np.ndarray  # (B, T) int64, 1-based: how many times this class has been shown so far
    ways: int

    @property
    def steps(self) -> int:
        return self.labels.shape[1]

    def step_inputs(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """What a learner's step is fed: images (B, T, 1, S, S) float32 and the previous labels'
        one-hot (B, T, C) float32, zeros at t = 0."""
        return self.images[:, :, None], prev_label_onehot(self.labels, num_classes)


def instance_index(labels: np.ndarray) -> np.ndarray:
    """(B, T) labels -> (B, T) 1-based count of each label's appearances up to and including t."""
    onehot = labels[..., None] == np.arange(labels.max() + 1)
    return (np.cumsum(onehot, axis=1) * onehot).sum(-1)


def prev_label_onehot(labels, num_classes: int):
    """(B, T) labels -> (B, T, C) float32 one-hot of y_{t-1}, zeros at t = 0 (no label yet).

    labels: a numpy array, or a torch tensor (the device sampler's episodes), which gives a tensor on
    its device.
    """
    if isinstance(labels, np.ndarray):
        onehot = np.zeros((*labels.shape, num_classes), np.float32)
        classes = np.arange(num_classes)
    else:
        import torch

        onehot = torch.zeros((*labels.shape, num_classes), dtype=torch.float32, device=labels.device)
        classes = torch.arange(num_classes, device=labels.device)
    onehot[:, 1:] = labels[:, :-1, None] == classes
    return onehot


def episodes_to_tensors(ep: Episodes, num_classes: int, device):
    """Episodes -> torch tensors on `device`: images [B, T, 1, S, S], previous-label one-hot [B, T, C], labels [B, T]."""
    import torch

    images, prev = ep.step_inputs(num_classes)
    return tuple(torch.from_numpy(a).to(device) for a in (images, prev, ep.labels))


class EpisodeSampler:
    """Draws batches of episodes from a set of classes, seeded by the caller's generator.

    images: (n_classes, drawings, S, S) float32 of the classes this sampler may use.
    num_classes: the learner's label space C (outputs); each episode uses `ways` <= C of them.
    instances: examples per class (episode length = ways * instances), or
    steps: a fixed episode length split as evenly as possible among the ways.
    augment: the paper's augmentation: each class rotated by a random multiple of 90 degrees (a new
      class), and each example shifted/rotated slightly.
    rotate: whether augment includes the 90-degree class rotations (an Omniglot trick: a rotated character
      is a plausible new character, a rotated photo is not); the small jitter stays either way.
    camera_views: the share of examples replaced by a camera view of their drawing (data/camera_views.py):
      what the demo's symbol front end makes of it. Those skip the jitter (the front end re-centres them);
      the class rotations apply to them as to the rest.
    drawings: with camera_views, the 105 x 105 drawings (paper = 1) behind `images`, (n_classes, drawings, 105, 105).
    """

    def __init__(
        self,
        images: np.ndarray,
        num_classes: int,
        ways: int | tuple[int, int],
        instances: int | None = None,
        steps: int | None = None,
        augment: bool = False,
        rotate: bool = True,
        camera_views: float = 0.0,
        drawings: np.ndarray | None = None,
    ):
        if (instances is None) == (steps is None):
            raise ValueError("give exactly one of instances or steps")
        self.images = images
        self.num_classes = num_classes
        self.ways_range = (ways, ways) if isinstance(ways, int) else tuple(ways)
        lo, hi = self.ways_range
        if not 1 <= lo <= hi <= num_classes:
            raise ValueError(f"ways {self.ways_range} must lie in [1, num_classes={num_classes}]")
        if hi > len(images):
            raise ValueError(f"ways {hi} exceeds the {len(images)} classes available")
        self.instances = instances
        self.steps = steps
        self.augment = augment
        self.rotate = rotate
        if not 0.0 <= camera_views <= 1.0:
            raise ValueError(f"camera_views is a share of the examples, in [0, 1]; got {camera_views}")
        if camera_views and (drawings is None or drawings.shape[:2] != images.shape[:2]):
            raise ValueError("camera_views needs the drawings behind the images, (n_classes, drawings, 105, 105); got "
                             f"{None if drawings is None else drawings.shape} for images {images.shape}")
        self.camera_views = camera_views
        self.drawings = drawings

    def counts(self, ways: int) -> np.ndarray:
        """Examples of each of `ways` classes: `instances` each, or `steps` split as evenly as possible."""
        if self.instances is not None:
            return np.full(ways, self.instances)
        counts = np.full(ways, self.steps // ways)
        counts[: self.steps % ways] += 1
        return counts

    def sample(self, batch: int, rng: np.random.Generator) -> Episodes:
        lo, hi = self.ways_range
        ways = int(rng.integers(lo, hi + 1))
        counts = self.counts(ways)
        steps = int(counts.sum())
        size = self.images.shape[-1]
        n_drawings = self.images.shape[1]
        out = np.empty((batch, steps, size, size), dtype=np.float32)
        labels = np.empty((batch, steps), dtype=np.int64)
        for b in range(batch):
            classes = rng.choice(len(self.images), size=ways, replace=False)
            label_of = rng.choice(self.num_classes, size=ways, replace=False)
            cls_seq = np.repeat(np.arange(ways), rng.permutation(counts) if self.instances is None else counts)
            cls_seq = cls_seq[rng.permutation(steps)]
            # distinct drawings per class while they last (20 per Omniglot character)
            drawing = np.empty(steps, dtype=np.int64)
            for k in range(ways):
                where = np.flatnonzero(cls_seq == k)
                reps = -(-len(where) // n_drawings)
                drawing[where] = np.concatenate([rng.permutation(n_drawings) for _ in range(reps)])[: len(where)]
            imgs = self.images[classes[cls_seq], drawing]
            viewed = np.zeros(steps, bool)
            if self.camera_views:  # before the class rotations: a rotated class is seen through the camera too
                from edgemeta.data.camera_views import camera_views

                viewed = rng.random(steps) < self.camera_views
                imgs[viewed] = camera_views(self.drawings[classes[cls_seq[viewed]], drawing[viewed]], rng, size)
            if self.augment and self.rotate:
                quarter = rng.integers(0, 4, size=ways)[cls_seq]
                for q in (1, 2, 3):
                    sel = quarter == q
                    imgs[sel] = np.rot90(imgs[sel], k=q, axes=(1, 2))
            if self.augment:
                imgs[~viewed] = jitter(imgs[~viewed], rng)
            out[b] = imgs
            labels[b] = label_of[cls_seq]
        return Episodes(images=out, labels=labels, instance=instance_index(labels), ways=ways)


def jitter(images: np.ndarray, rng: np.random.Generator, max_shift: float = 1.5, max_degrees: float = 10.0) -> np.ndarray:
    """Small random rotation and translation of each (S, S) image, as in the paper's augmentation."""
    import cv2

    size = images.shape[-1]
    centre = ((size - 1) / 2, (size - 1) / 2)
    out = np.empty_like(images)
    angles = rng.uniform(-max_degrees, max_degrees, len(images))
    shifts = rng.uniform(-max_shift, max_shift, (len(images), 2))
    for i, img in enumerate(images):
        m = cv2.getRotationMatrix2D(centre, angles[i], 1.0)
        m[:, 2] += shifts[i]
        out[i] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return out
