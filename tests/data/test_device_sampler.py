"""Episodes drawn with torch ops on the training device (edgemeta/data/device_sampler.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemeta.data.device_sampler import DeviceEpisodeSampler

N_CLASSES, DRAWINGS, S = 30, 20, 12


def coded_images() -> torch.Tensor:
    """Image of class c, drawing d: pixel (0, 0) holds c, pixel (0, 1) holds d (no augmentation keeps them)."""
    imgs = torch.zeros(N_CLASSES, DRAWINGS, S, S)
    imgs[:, :, 0, 0] = torch.arange(N_CLASSES).float().unsqueeze(1)
    imgs[:, :, 0, 1] = torch.arange(DRAWINGS).float().unsqueeze(0)
    return imgs


def test_episodes_have_distinct_classes_fresh_labels_and_distinct_drawings():
    sampler = DeviceEpisodeSampler(coded_images(), num_classes=5, ways=5, instances=10)
    x, prev, labels = sampler.sample(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 50, 1, S, S) and prev.shape == (16, 50, 5) and labels.shape == (16, 50)
    cls, drawing = x[:, :, 0, 0, 0].long(), x[:, :, 0, 0, 1].long()
    for b in range(16):
        classes = cls[b].unique()
        assert len(classes) == 5
        for c in classes:
            steps = cls[b] == c
            assert steps.sum() == 10 and len(labels[b][steps].unique()) == 1  # one label per class
            assert len(drawing[b][steps].unique()) == 10  # distinct drawings while they last
        assert len(labels[b].unique()) == 5  # distinct labels for distinct classes
    assert (prev[:, 0] == 0).all()  # nothing before the first step
    assert torch.equal(prev[:, 1:].argmax(-1), labels[:, :-1]) and (prev.sum(-1)[:, 1:] == 1).all()
    # labels are a fresh assignment: the class -> label map differs between episodes
    first_label = {int(cls[b, 0]): int(labels[b, 0]) for b in range(16)}
    assert len(set(first_label.values())) > 1
    assert not torch.equal(cls[0], cls[1])  # the order of steps is shuffled per episode


def test_fixed_length_episodes_with_varying_ways():
    sampler = DeviceEpisodeSampler(coded_images(), num_classes=10, ways=(2, 10), steps=53)
    ways_seen = set()
    for seed in range(12):
        x, _, labels = sampler.sample(4, torch.Generator().manual_seed(seed))
        assert labels.shape == (4, 53)
        counts = torch.stack([torch.bincount(x[b, :, 0, 0, 0].long(), minlength=N_CLASSES) for b in range(4)])
        ways = int((counts[0] > 0).sum())
        ways_seen.add(ways)
        present = counts[counts > 0]
        assert present.max() - present.min() <= 1 and int(labels.max()) < 10
    assert len(ways_seen) > 3


def test_same_seed_same_batch_other_seed_other_batch():
    sampler = DeviceEpisodeSampler(coded_images(), num_classes=5, ways=5, instances=4, augment=True)
    a = sampler.sample(3, torch.Generator().manual_seed(7))
    b = sampler.sample(3, torch.Generator().manual_seed(7))
    c = sampler.sample(3, torch.Generator().manual_seed(8))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_augmentation_rotates_whole_classes_and_jitters_examples():
    # one class, one drawing: a block in one corner, so the four 90-degree turns are told apart
    img = torch.zeros(1, DRAWINGS, 16, 16)
    img[0, :, 2:7, 2:7] = 1.0
    sampler = DeviceEpisodeSampler(img, num_classes=1, ways=1, instances=8, augment=True)
    x, _, _ = sampler.sample(64, torch.Generator().manual_seed(0))
    x = x[:, :, 0]
    ink = x.sum((-1, -2))
    assert torch.allclose(ink, img[0, 0].sum().expand_as(ink), rtol=0.15)  # moved, not lost
    assert not torch.equal(x[:, 0], x[:, 1])  # examples of a class differ (jitter)

    def quarter(im):  # which 90-degree turn of the original the example overlaps most
        return int(np.argmax([float((im * torch.rot90(img[0, 0], k, (0, 1))).sum()) for k in range(4)]))

    turns = [[quarter(x[b, t]) for t in range(8)] for b in range(64)]
    assert all(len(set(t)) == 1 for t in turns)  # the whole class turns together
    assert len({t[0] for t in turns}) == 4  # and all four turns occur


def test_training_with_the_device_sampler_learns(tmp_path, data_dir):
    from edgemeta.models import ModelConfig
    from edgemeta.training.loop import TrainConfig, train

    # the tiny learner of conftest.py, trained the same way but on device-drawn episodes
    model = ModelConfig(arch="mann", image_size=12, num_classes=3, controller=32, memory_slots=16, memory_width=16, read_heads=1)
    cfg = TrainConfig(model="tiny", ways=(3, 3), instances=5, episodes=150 * 16, batch_size=16, lr=5e-3, lr_min_ratio=1.0,
                      val_every=150, val_episodes=100, ckpt_every=50, threads=1, augment=False, seed=0, sampler="device",
                      data=str(data_dir))
    metrics = train(model, cfg, tmp_path, progress=False, log=lambda *a: None)
    assert np.mean(metrics["val"][1:]) > 100 / 3 + 20  # 3 ways: chance is 33%


def test_device_sampler_rejects_workers():
    from edgemeta import EdgemetaError
    from edgemeta.training.loop import TrainConfig

    with pytest.raises(EdgemetaError, match="--workers sample on the host"):
        TrainConfig(sampler="device", workers=2)
    with pytest.raises(EdgemetaError, match="unknown sampler"):
        TrainConfig(sampler="gpu")
