"""Episode construction: label offset, shuffling, fresh labels, instance counting."""
from __future__ import annotations

import numpy as np
import torch

from edgemeta.data.episodes import EpisodeSampler, episodes_to_tensors, instance_index, prev_label_onehot


def fake_images(n_classes=20, size=8):
    # class k's drawings all carry the value k in pixel (0, 0) so tests can read the class back
    imgs = np.zeros((n_classes, 20, size, size), np.float32)
    imgs[:, :, 0, 0] = np.arange(n_classes)[:, None]
    imgs[:, :, 1, 1] = np.arange(20)[None, :]  # and the drawing id in (1, 1)
    return imgs


def test_label_offset_one_hot_numpy_and_torch_agree():
    labels = np.array([[2, 0, 1, 2], [1, 1, 0, 2]])
    prev = prev_label_onehot(labels, 3)
    assert prev.dtype == np.float32 and prev.shape == (2, 4, 3)
    assert prev[:, 0].sum() == 0  # nothing before the first step
    assert prev[0, 1].tolist() == [0, 0, 1] and prev[0, 3].tolist() == [0, 1, 0] and prev[1, 2].tolist() == [0, 1, 0]
    on_torch = prev_label_onehot(torch.from_numpy(labels), 3)
    assert on_torch.dtype == torch.float32 and np.array_equal(on_torch.numpy(), prev)


def test_episodes_to_tensors_feeds_images_and_previous_labels():
    ep = EpisodeSampler(fake_images(), 5, 5, instances=2).sample(3, np.random.default_rng(0))
    images, prev, labels = episodes_to_tensors(ep, 7, "cpu")
    assert images.shape == (3, 10, 1, 8, 8) and prev.shape == (3, 10, 7) and labels.dtype == torch.int64
    assert np.array_equal(images[:, :, 0].numpy(), ep.images)
    assert np.array_equal(prev[:, 1:].argmax(-1).numpy(), ep.labels[:, :-1]) and prev[:, 0].sum() == 0


def test_instances_and_counts():
    ep = EpisodeSampler(fake_images(), 5, 5, instances=10).sample(8, np.random.default_rng(0))
    assert ep.images.shape == (8, 50, 8, 8) and ep.labels.shape == (8, 50)
    for b in range(8):
        assert sorted(np.bincount(ep.labels[b], minlength=5)) == [10] * 5
        assert ep.instance[b].max() == 10
    assert instance_index(np.array([[1, 1, 0, 1]])).tolist() == [[1, 2, 1, 3]]


def test_labels_follow_classes_and_are_reshuffled_every_episode():
    ep = EpisodeSampler(fake_images(), 5, 5, instances=10).sample(64, np.random.default_rng(1))
    classes = ep.images[:, :, 0, 0].astype(int)
    mappings = set()
    for b in range(64):
        # within an episode one class <-> one label
        pairs = set(zip(classes[b], ep.labels[b]))
        assert len(pairs) == 5 and len({c for c, _ in pairs}) == 5
        mappings.add(tuple(sorted(pairs)))
        # distinct drawings of a class (10 of 20)
        for c in set(classes[b]):
            ids = ep.images[b, classes[b] == c, 1, 1]
            assert len(set(ids)) == len(ids)
        # shuffled order, not blocks of one class
        assert (np.diff(ep.labels[b]) != 0).sum() > 20
    assert len(mappings) > 50  # label assignments differ between episodes


def test_seeded_and_varying_ways():
    s = EpisodeSampler(fake_images(), 10, (2, 10), steps=100)
    a = s.sample(4, np.random.default_rng(7))
    b = s.sample(4, np.random.default_rng(7))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images)
    ways = {s.sample(1, np.random.default_rng(i)).ways for i in range(40)}
    assert min(ways) >= 2 and max(ways) <= 10 and len(ways) > 4
    ep = s.sample(2, np.random.default_rng(3))
    assert ep.steps == 100 and ep.labels.max() < 10
