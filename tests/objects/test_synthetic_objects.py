"""synthetic://objects: things on a desk, seen from a new view every shot, with ground truth; the shipped objects
learner, taught one shot per class, names the later shots."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from edgemeta import EdgemetaError  # noqa: E402
from edgemeta.runtime.camera.sources import VideoSource  # noqa: E402

URI = "synthetic://objects?classes=3&shots=3&frames_per_shot=5&gap=1&seed=4"


def _frames(uri: str) -> list[np.ndarray]:
    out = []
    with VideoSource(uri) as video:
        while (frame := video.read()) is not None:
            out.append(frame)
    return out


def test_a_session_shows_its_things_from_a_new_view_every_shot_with_ground_truth():
    frames = _frames(URI)
    assert len(frames) == 3 * 3 * (5 + 1) and frames[0].shape == (480, 640, 3) and frames[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(frames, _frames(URI)))  # a seed is a session
    with VideoSource(URI) as video:
        camera = video.backend
        truths = [camera.truth_of(i) for i in range(len(camera))]
        assert len(set(camera.class_names)) == 3 and camera.data_source.startswith("Tango icon theme")
    assert [t.card for t in truths[:2]] == [False, True]
    firsts = [i for i, t in enumerate(truths) if t.card and t.shot_frame == 2]
    same_class = [i for i in firsts if truths[i].label == truths[firsts[0]].label]
    a, b = (frames[i].astype(np.int16) for i in same_class[:2])
    assert np.abs(a - b).mean() > 10  # the same thing, another shot: another desk, light and pose
    empty, card = frames[0].astype(np.int16), frames[2].astype(np.int16)
    assert np.abs(card - empty).max() > 60  # the thing is in the second shot's view, not the gap's


def test_bad_objects_parameters_are_one_line():
    for uri, message in [("synthetic://objects?classes=11", "classes=11 is out of range; use 1..10"),
                         ("synthetic://objects?tilt=3", "unknown parameter 'tilt'"),
                         ("synthetic://objects?seed=-1", "seed='-1' is not a non-negative integer"),
                         ("synthetic://things", "valid: synthetic://omniglot, synthetic://objects")]:
        with pytest.raises(EdgemetaError, match=message) as e:
            VideoSource(uri).read()
        assert "\n" not in str(e.value)


def test_the_shipped_objects_learner_taught_one_shot_per_class_names_the_later_shots():
    from edgemeta.runtime.camera.scoring import RIGHT, WRONG
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner

    with Learner.load("objects", threads=1) as learner:
        core = DemoCore(learner)
        with FrameFeed(VideoSource(URI), core.prepare) as feed:
            result = run_headless(feed, core, shots_to_teach=1, progress=False, echo=lambda _: None)
    assert result.taught == 3
    later = result.curve.tallies[1]
    assert later.frames == 2 * 3 * 5 + 3 * 2  # the later shots, and the first shots after the taught frame
    # Never a wrong name; the rest is '?' (below the demo's confidence threshold), more of it in a short session.
    assert later.counts[WRONG] == 0 and later.share(RIGHT) >= 0.75
