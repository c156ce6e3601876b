"""The objects learner's data: camera-style views, the never-trained letters, the name-hash split, the
resumable feature cache, and the episodes and cosine nearest neighbour its head is judged against."""
from __future__ import annotations

import numpy as np
import pytest

from edgemeta.data.camera_augment import camera_view
from edgemeta.data.object_domains import held_out, letter_classes


def _square_icon() -> np.ndarray:
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[8:40, 8:40] = (200, 30, 30, 255)
    return rgba


def test_camera_views_differ_and_keep_the_object():
    rng = np.random.default_rng(0)
    views = [camera_view(_square_icon(), rng, 96) for _ in range(4)]
    assert all(v.shape == (96, 96, 3) and v.dtype == np.uint8 for v in views)
    assert len({v.tobytes() for v in views}) == 4
    for v in views:  # the red square is in the middle of every view: the warp keeps it near the centre
        centre = v[40:56, 40:56].astype(int)
        assert (centre[..., 0] - centre[..., 1]).mean() > 40


def test_camera_views_are_reproducible_from_the_rng():
    a = camera_view(_square_icon(), np.random.default_rng(3), 64)
    b = camera_view(_square_icon(), np.random.default_rng(3), 64)
    assert np.array_equal(a, b)


def test_letters_are_distinct_glyphs_in_eight_fonts():
    letters = letter_classes()
    assert len(letters) == 50 and all(len(v) == 8 for v in letters.values())
    a, b = letters["letter-A"][0], letters["letter-B"][0]
    assert a[..., 3].any() and not np.array_equal(a, b)


def test_held_out_split_depends_on_the_name_only():
    names = [f"icon-{i}" for i in range(400)]
    share = np.mean([held_out(n) for n in names])
    assert 0.15 < share < 0.35
    assert [held_out(n) for n in names[:50]] == [held_out(n) for n in names[:50]]


def test_feature_cache_round_trip_and_resume(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from edgemeta.data import feature_cache

    class TinyBackbone(torch.nn.Module):
        def features(self, x):
            return x.mean(dim=(2, 3)).repeat(1, 4)

    monkeypatch.setattr("edgemeta.models.efficientnet_lite.load_pretrained", lambda: TinyBackbone())
    monkeypatch.setattr(feature_cache, "BLOCK", 2)
    classes = {f"c{i}": [_square_icon()] * 3 for i in range(5)}
    feature_cache.cache_domain("toy", classes, tmp_path, 32, 2, 0, mask_only=False, instances=3)
    feats, names, test = feature_cache.load_cache(tmp_path, "toy")
    assert feats.shape == (5, 3, 2, 12) and names == sorted(classes) and test.dtype == bool
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy-000.npz", "toy-001.npz", "toy-002.npz"]
    # a finished block is kept, not recomputed
    before = (tmp_path / "toy-000.npz").stat().st_mtime_ns
    feature_cache.cache_domain("toy", classes, tmp_path, 32, 2, 0, mask_only=False, instances=3)
    assert (tmp_path / "toy-000.npz").stat().st_mtime_ns == before


def test_episodes_show_each_class_in_turn_and_nn_finds_exact_repeats():
    from edgemeta.training import objects_head as oh

    rng = np.random.default_rng(0)
    feats = np.eye(8, dtype=np.float32)[:, None, None, :].repeat(3, 1).repeat(2, 2)  # one direction per class
    x, labels, shows = oh.sample_episodes(feats, np.arange(8), rng, 6)
    assert x.shape == (6, oh.WAYS * oh.SHOWS, 8)
    for b in range(6):
        assert sorted(np.bincount(shows[b])) == [oh.WAYS] * oh.SHOWS
        assert len(set(labels[b])) == oh.WAYS
    acc = oh.by_show(oh.cosine_nn(x, labels, rng) == labels, shows)
    assert acc[1:] == [1.0] * (oh.SHOWS - 1)
    prev = oh.prev_onehot(labels)
    assert prev[:, 0].sum() == 0 and (prev[:, 1:].argmax(-1) == labels[:, :-1]).all()
