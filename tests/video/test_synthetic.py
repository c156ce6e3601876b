"""The synthetic camera: determinism, ground truth, the schedule, parameters, and what a frame looks like."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import omniglot as og
from edgemeta.runtime.camera.synthetic import SyntheticCamera, parse_params, synthetic_opener
from edgemeta.runtime.camera.sources import VideoSource

SMALL = "synthetic://omniglot?classes=3&shots=2&frames_per_shot=4&gap=1&width=160&height=120"


def _session(omniglot, uri):
    src = VideoSource(uri, open_backend=synthetic_opener(dataset=omniglot))
    frames, truths = [], []
    while (f := src.read()) is not None:
        frames.append(f)
        truths.append(src.backend.truth_of(src.frame_index))
    assert src.ended
    return src, frames, truths


def test_same_seed_same_session_other_seed_other_session(omniglot):
    _, a, ta = _session(omniglot, SMALL + "&seed=3")
    _, b, tb = _session(omniglot, SMALL + "&seed=3")
    _, c, tc = _session(omniglot, SMALL + "&seed=4")
    assert len(a) == len(b) == 3 * 2 * (4 + 1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and ta == tb
    assert [t.omniglot_class for t in ta] != [t.omniglot_class for t in tc]
    cam = SyntheticCamera(parse_params("omniglot", {"classes": "3", "shots": "2", "frames_per_shot": "4", "gap": "1",
                                                    "width": "160", "height": "120", "seed": "3"}), dataset=omniglot)
    frame, truth = cam.render(17)  # random access gives the same frame as reading through
    assert np.array_equal(frame, a[17]) and truth == ta[17]


def test_ground_truth_and_schedule(omniglot):
    from edgemeta.runtime.omniglot import split_classes

    src, frames, truths = _session(omniglot, SMALL + "&seed=0")
    cam = src.backend
    test_classes = set(split_classes()["test"].tolist())
    assert set(cam.omniglot_classes.tolist()) <= test_classes  # held-out characters only
    assert len(cam.class_names) == 3
    assert [t.frame for t in truths] == list(range(len(frames)))
    cards = [t for t in truths if t.card]
    assert len(cards) == 3 * 2 * 4 and all(not t.card and t.label is None for t in truths[::5])  # gap frame first
    # Shots come in rounds: every class once per round, in a random order; each shot a different drawing
    for t in cards:
        assert t.shot // 3 == t.class_shot and t.omniglot_class == cam.omniglot_classes[t.label]
        assert 0 <= t.shot_frame < 4
    for label in range(3):
        drawings = {t.drawing for t in cards if t.label == label}
        assert len(drawings) == 2
    shots = [cam.shot_labels[s] for s in range(6)]
    assert sorted(shots[:3]) == sorted(shots[3:]) == [0, 1, 2] and shots[2] != shots[3]
    assert sum(cam.is_middle(t) for t in truths) == 6


def test_frames_look_like_a_camera_session(omniglot):
    _, frames, truths = _session(omniglot, SMALL + "&seed=1")
    f = frames[7]
    assert f.shape == (120, 160, 3) and f.dtype == np.uint8
    grey = f.mean(axis=2)
    blank = frames[0].mean(axis=2)
    assert blank.mean() > 140  # paper
    assert blank.std() > 1.0  # noise, texture and lighting: not a flat synthetic fill
    # a card frame has dark ink the blank paper does not
    assert (grey < 0.6 * np.median(grey)).sum() > 40 and (blank < 0.6 * np.median(blank)).sum() == 0
    # the card moves a little between frames of a shot (motion), but the shot is the same drawing
    same_shot = [i for i, t in enumerate(truths) if t.card and t.shot == truths[7].shot]
    assert not np.array_equal(frames[same_shot[0]], frames[same_shot[1]])


def test_distance_offset_and_tilt(omniglot):
    """card= puts the character on a card of about that side on a darker desk; offset= moves it off the centre;
    a character the frame's edge cuts has whole=False in its ground truth."""
    base = "synthetic://omniglot?classes=3&shots=2&frames_per_shot=3&gap=1&width=640&height=480"
    far_src, far, far_truths = _session(omniglot, base + "&card=150&tilt=30")
    near_src, near, near_truths = _session(omniglot, base + "&card=600")
    for frames, truths, lo, hi in ((far, far_truths, 0.02, 0.25), (near, near_truths, 0.6, 1.0)):
        blank, card = frames[0].mean(axis=2), frames[1].mean(axis=2)
        assert truths[0].whole is None and truths[1].whole is True
        paper = card > 0.75 * np.percentile(card, 99)  # the card (and its character's strokes are dark)
        assert lo < paper.mean() < hi
        assert np.median(blank) < 0.6 * np.percentile(card, 99)  # between shots: the desk, darker than the card
    _, off, off_truths = _session(omniglot, base + "&card=560&offset=20&seed=2")
    assert any(t.card and not t.whole for t in off_truths)  # some cards held close and off-centre are cut
    ink = [np.argwhere(f.mean(axis=2) < 90).mean(0) for f, t in zip(off, off_truths) if t.card and t.whole]
    assert max(np.abs(c - (240, 320)).max() for c in ink) > 40  # and the characters are not all in the middle
    with pytest.raises(EdgemetaError, match="card=20 is too small"):
        parse_params("omniglot", {"card": "20"})
    with pytest.raises(EdgemetaError, match="offset=60 is out of range"):
        parse_params("omniglot", {"offset": "60"})


@pytest.mark.parametrize("query, message", [
    ({"classes": "0"}, "classes=0 is out of range"),
    ({"shots": "21"}, "shots=21 is out of range"),
    ({"frames": "3"}, "unknown parameter 'frames'"),
    ({"seed": "x"}, "seed='x' is not an integer"),
])
def test_bad_parameters_are_one_line_errors(query, message):
    with pytest.raises(EdgemetaError, match=message):
        parse_params("omniglot", query)
    with pytest.raises(EdgemetaError, match="unknown synthetic generator 'mnist'"):
        parse_params("mnist", {})


@pytest.fixture
def no_data_anywhere(tmp_path, monkeypatch):
    """No $EDGEMETA_DATA and no conventional folder: the lookup finds nothing."""
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(og, "CHECKOUT", None)
    monkeypatch.chdir(tmp_path)


def test_with_no_data_folder_the_embedded_demo_set_is_used(tmp_path, no_data_anywhere):
    demo = og.load_demo_set()
    src = VideoSource("synthetic://omniglot?classes=5&shots=2&frames_per_shot=2&gap=0&width=160&height=120")
    cam = src.backend
    assert cam.data_source == demo.source and cam.data_source.startswith("the embedded demo set (40 ")
    assert set(cam.omniglot_classes.tolist()) <= set(demo.classes.tolist())
    assert src.read() is not None
    with pytest.raises(EdgemetaError, match="classes=41, but the embedded demo set .* has 40: .*edgemeta data download DIR"):
        VideoSource("synthetic://omniglot?classes=41")
    # a folder the user names is never silently replaced by the embedded set
    with pytest.raises(EdgemetaError, match=f"needs the Omniglot dataset: Omniglot directory {tmp_path / 'nope'} does not exist"):
        VideoSource(f"synthetic://omniglot?data={tmp_path / 'nope'}")


def test_the_embedded_demo_set_is_small_licensed_meta_test_characters():
    folder = og.DEMO_SET.parent
    assert og.DEMO_SET.stat().st_size < 300 * 1024
    licence = (folder / "LICENSE").read_text()
    assert "MIT License" in licence and "Brenden Lake" in licence and "brendenlake/omniglot" in (folder / "README.md").read_text()
    demo = og.load_demo_set()
    assert len(demo.classes) == 40 and set(demo.classes.tolist()) <= set(og.split_classes()["test"].tolist())
    assert np.array_equal(demo.meta_test_classes(), demo.classes)
    masks = demo.drawings(demo.classes)
    assert masks.shape == (40, 20, 105, 105)
    ink = (1 - masks).reshape(40 * 20, -1).sum(1)
    assert ink.min() > 20  # every drawing has strokes
    assert all(demo.name(c).startswith("images_evaluation/") for c in demo.classes)
    missing = int(np.setdiff1d(og.split_classes()["test"], demo.classes)[0])
    with pytest.raises(EdgemetaError, match=f"does not hold classes \\[{missing}\\]"):
        demo.drawings(np.array([demo.classes[0], missing]))


def test_the_embedded_demo_set_is_the_full_sets_drawings(omniglot):
    demo = og.load_demo_set()
    assert np.array_equal(demo.drawings(demo.classes), omniglot.drawings(demo.classes))
    assert [demo.name(c) for c in demo.classes] == [omniglot.names[c] for c in demo.classes]


def test_the_data_folder_is_passed_explicitly_and_the_uri_wins(tmp_path, no_data_anywhere):
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(EdgemetaError, match=f"Omniglot directory {elsewhere} does not exist"):
        VideoSource("synthetic://omniglot", open_backend=synthetic_opener(data=elsewhere))
    with pytest.raises(EdgemetaError, match=f"Omniglot directory {tmp_path / 'uri'} does not exist"):
        VideoSource(f"synthetic://omniglot?data={tmp_path / 'uri'}", open_backend=synthetic_opener(data=elsewhere))


def test_video_and_synthetic_modules_do_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import edgemeta.runtime.camera.sources, edgemeta.runtime.camera.synthetic, edgemeta.runtime.demo.events, "
            "edgemeta.runtime.camera.overlay, edgemeta.runtime.demo.core\n"
            "import edgemeta.runtime.omniglot\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_drawing_a_card_frame_shows(omniglot):
    """drawing(truth): the Omniglot drawing itself (paper = 1), one per shot, for benchmarks that bypass the camera."""
    src, frames, truths = _session(omniglot, SMALL + "&seed=1")
    cards = [t for t in truths if t.card]
    first = src.backend.drawing(cards[0])
    assert first.shape == (105, 105) and 0 < (first == 0).mean() < 0.5
    same_shot = [t for t in cards if t.shot == cards[0].shot]
    assert all(np.array_equal(src.backend.drawing(t), first) for t in same_shot)
    assert not np.array_equal(src.backend.drawing(next(t for t in cards if t.label != cards[0].label)), first)
