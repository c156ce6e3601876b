"""Camera views of drawings (edgemeta/data/camera_views.py) and their use in episodes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.data.camera_views import CameraViewParams, camera_view, camera_views
from edgemeta.data.episodes import EpisodeSampler
from edgemeta.runtime.camera.frames import read_region
from edgemeta.runtime.preprocess import omniglot_to_input

STILL = CameraViewParams(tilt=0, rotation=0, span=(105, 105), pen=0, blur=0, noise=0, contrast=(0.8, 0.8),
                         distance=(1e6, 1e6))  # a card facing the camera at the data set's scale, sharp, no noise


def drawing(seed: int = 0) -> np.ndarray:
    """A character-like drawing as Omniglot holds one: 105 x 105 uint8, paper = 1, ink = 0, 3-4 px strokes."""
    rng = np.random.default_rng(seed)
    ink = np.zeros((105, 105), np.uint8)
    points = rng.integers(25, 80, (4, 2))
    cv2.polylines(ink, [points.astype(np.int32)], False, 1, thickness=4)
    cv2.circle(ink, tuple(int(v) for v in rng.integers(35, 70, 2)), 9, 1, thickness=3)
    return 1 - ink


def drawings(n: int) -> np.ndarray:
    return np.stack([drawing(i) for i in range(n)])


def test_a_view_is_the_learners_input_with_the_characters_ink():
    d = drawing()
    view = camera_view(d, np.random.default_rng(0), 28)
    assert view.shape == (28, 28) and view.dtype == np.float32
    assert 0.0 <= view.min() and view.max() <= 1.0 + 1e-5  # area resize rounding, as in the demo
    clean = omniglot_to_input(d, 28)
    assert 0.3 < view.sum() / clean.sum() < 4.0  # the character's ink, not a blank or a blot
    assert np.abs(view - clean).mean() > 0.02  # and not the clean input


def test_views_are_deterministic_per_seed_and_vary_between_draws():
    d = drawings(6)
    a = camera_views(d, np.random.default_rng(3), 28)
    b = camera_views(d, np.random.default_rng(3), 28)
    c = camera_views(d, np.random.default_rng(4), 28)
    assert np.array_equal(a, b)
    assert all(not np.array_equal(a[i], c[i]) for i in range(len(d)))


def test_a_still_view_is_what_the_front_end_makes_of_the_drawing():
    """No tilt, turn, pen, blur or noise: the view is the front end's reading of the drawing itself."""
    d = drawing(1)
    view = camera_view(d, np.random.default_rng(0), 28, STILL)
    page = np.pad(np.where(d == 1, 220, 40).astype(np.uint8), 22, constant_values=220)
    direct = read_region(page, 28, (0, 0, *page.shape[::-1]), margin=None, work_size=160, min_contrast=0.2,
                         min_ink=0.002, max_ink=0.3, normalize_strokes=True)
    assert direct.found
    ink_view, ink_direct = view > 0.5, direct.image > 0.5
    assert (ink_view & ink_direct).sum() / (ink_view | ink_direct).sum() > 0.8


@pytest.mark.parametrize("knob", [dict(tilt=25), dict(rotation=15), dict(span=(40, 60)), dict(pen=1), dict(blur=1.5),
                                  dict(noise=0.1)])
def test_every_distortion_changes_the_view(knob):
    d = drawing(2)
    still = camera_view(d, np.random.default_rng(0), 28, STILL)
    moved = CameraViewParams(**{**STILL.__dict__, **knob})
    assert any(not np.array_equal(camera_view(d, np.random.default_rng(seed), 28, moved), still) for seed in range(5))


def test_a_view_the_front_end_cannot_read_is_the_clean_input():
    blank = np.ones((105, 105), np.uint8)
    assert np.array_equal(camera_view(blank, np.random.default_rng(0), 28), omniglot_to_input(blank, 28))


def test_bad_input_is_refused():
    with pytest.raises(EdgemetaError, match=r"received shape \(28, 28\); expected \(105, 105\)"):
        camera_view(np.ones((28, 28), np.uint8), np.random.default_rng(0), 28)
    with pytest.raises(EdgemetaError, match="out of range"):
        CameraViewParams(span=(200, 100))


def _sampler(camera_views: float, with_drawings: bool = True) -> EpisodeSampler:
    d = drawings(12)[:, None].repeat(2, axis=1)  # 12 classes of 2 drawings each
    images = np.stack([[omniglot_to_input(x, 28) for x in c] for c in d])
    return EpisodeSampler(images, 5, (2, 5), steps=10, augment=True, camera_views=camera_views,
                          drawings=d if with_drawings else None)


def test_episodes_without_camera_views_are_unchanged_by_the_option():
    a = _sampler(0.0, with_drawings=False).sample(3, np.random.default_rng(7))
    b = _sampler(0.0).sample(3, np.random.default_rng(7))
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_episodes_with_camera_views_show_views_of_the_right_classes():
    sampler = _sampler(1.0)
    ep = sampler.sample(2, np.random.default_rng(5))
    again = sampler.sample(2, np.random.default_rng(5))
    assert np.array_equal(ep.images, again.images)
    assert ep.images.shape == (2, 10, 28, 28) and ep.images.dtype == np.float32
    flat = ep.images.reshape(-1, 28, 28)
    clean = sampler.images.reshape(-1, 28, 28)
    # every example is a view: hardly any equals a clean image, in any of the four class rotations (those are
    # the few views the front end could not read: too faint after the blur)
    same = sum(any(np.array_equal(np.rot90(c, k), img) for c in clean for k in range(4)) for img in flat)
    assert same <= 0.1 * len(flat)
    assert (flat.reshape(len(flat), -1).sum(1) > 5).all()  # each holds a character


def test_camera_views_need_the_drawings():
    with pytest.raises(ValueError, match="needs the drawings"):
        _sampler(0.5, with_drawings=False)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        _sampler(1.5)
