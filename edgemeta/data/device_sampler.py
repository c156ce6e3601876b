"""Episodes sampled with torch ops on the training device: no per-image Python, nothing to copy over.

`EpisodeSampler` (numpy + OpenCV) builds an episode image by image, in Python: fast enough to feed a
CPU, far too slow to feed a GPU. `DeviceEpisodeSampler` keeps the class images on the device and draws
a whole batch with a handful of batched ops:

- classes, label assignment, order of the time steps and drawings per class: argsort of uniform noise
  (a random permutation per row), so every episode has distinct classes, fresh labels, the right
  number of instances of each class, and distinct drawings of a class while they last;
- augmentation in one `grid_sample`: per class a rotation by a multiple of 90 degrees (a new class,
  as in the paper), per example a small random rotation and shift (the same ranges as `jitter`).

It draws from the same distribution as `EpisodeSampler`, not the same episodes (different random
streams), seeded by a `torch.Generator` on the device: the same seed gives the same batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgemeta.data.episodes import EpisodeSampler, prev_label_onehot

MAX_SHIFT = 1.5  # pixels, as edgemeta.data.episodes.jitter
MAX_DEGREES = 10.0


class DeviceEpisodeSampler(EpisodeSampler):
    """EpisodeSampler's episodes (same arguments and checks), drawn with torch ops.

    images: (n_classes, drawings, S, S) float32 tensor, on the training device.
    """

    @property
    def device(self) -> torch.device:
        return self.images.device

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> images [B, T, 1, S, S], one-hot previous labels [B, T, C] (zeros at t = 0), labels [B, T]."""
        dev = self.device
        lo, hi = self.ways_range
        ways = int(torch.randint(lo, hi + 1, (1,), generator=gen, device=dev).item())
        counts_host = self.counts(ways)
        length = int(counts_host.sum())  # from the host copy: no device sync
        counts = torch.as_tensor(counts_host, device=dev)
        n_classes, n_drawings = self.images.shape[0], self.images.shape[1]

        classes = _permutations(batch, n_classes, gen, dev)[:, :ways]  # [B, ways], distinct
        label_of = _permutations(batch, self.num_classes, gen, dev)[:, :ways]  # [B, ways], distinct
        if self.instances is None:
            # which classes get the extra time steps differs per episode, as EpisodeSampler's permutation of counts
            counts_b = torch.gather(counts.expand(batch, -1), 1, _permutations(batch, ways, gen, dev))
        else:
            counts_b = counts.expand(batch, -1)
        # each episode's class sequence in order (0,0,..,1,1,..), then shuffled
        slot = torch.arange(length, device=dev).expand(batch, -1)
        bounds = counts_b.cumsum(1)  # [B, ways]
        ordered = (slot.unsqueeze(2) >= bounds.unsqueeze(1)).sum(2)  # [B, T] class index per sorted time step
        cls_seq = torch.gather(ordered, 1, _permutations(batch, length, gen, dev))

        # occurrence number of each time step's class (0-based) -> a distinct drawing while they last
        onehot = F.one_hot(cls_seq, ways)
        occurrence = ((onehot.cumsum(1) - 1) * onehot).sum(2)  # [B, T]
        drawing_perm = _permutations(batch * ways, n_drawings, gen, dev).view(batch, ways, n_drawings)
        drawing = drawing_perm[torch.arange(batch, device=dev).unsqueeze(1), cls_seq, occurrence % n_drawings]
        class_id = torch.gather(classes, 1, cls_seq)
        imgs = self.images[class_id, drawing]  # [B, T, S, S]
        if self.augment:
            if self.rotate:
                quarter = torch.randint(0, 4, (batch, ways), generator=gen, device=dev)
            else:
                quarter = torch.zeros((batch, ways), dtype=torch.long, device=dev)
            imgs = rotate_and_shift(imgs, torch.gather(quarter, 1, cls_seq), gen)
        labels = torch.gather(label_of, 1, cls_seq)
        return imgs.unsqueeze(2), prev_label_onehot(labels, self.num_classes), labels


def _permutations(rows: int, n: int, gen: torch.Generator, dev) -> torch.Tensor:
    """[rows, n]: an independent uniform random permutation of 0..n-1 in each row."""
    return torch.rand(rows, n, generator=gen, device=dev).argsort(dim=1)


def rotate_and_shift(imgs: torch.Tensor, quarter: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotate each [S, S] image by quarter*90 degrees plus a small random angle about its centre, then
    shift it by a small random offset; bilinear, zeros outside (as cv2.warpAffine in `jitter`)."""
    b, t, s, _ = imgs.shape
    dev = imgs.device
    n = b * t
    small = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * MAX_DEGREES
    angle = (quarter.reshape(n).float() * 90.0 + small) * (math.pi / 180.0)
    shift = (torch.rand(n, 2, generator=gen, device=dev) * 2 - 1) * MAX_SHIFT
    cos, sin = torch.cos(angle), torch.sin(angle)
    # grid_sample maps output coordinates to input ones (the inverse transform), in units where the
    # image spans [-1, 1] between the centres of its corner pixels (align_corners=True): a pixel is 2/(S-1).
    theta = torch.stack([
        torch.stack([cos, -sin, -shift[:, 0] * 2 / (s - 1)], dim=1),
        torch.stack([sin, cos, -shift[:, 1] * 2 / (s - 1)], dim=1),
    ], dim=1)  # [n, 2, 3]
    grid = F.affine_grid(theta, [n, 1, s, s], align_corners=True)
    out = F.grid_sample(imgs.reshape(n, 1, s, s), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(b, t, s, s)
