"""`edgemeta demo`: headless end to end on synthetic sessions, scripted teaching, the log, recording,
state, a camera that drops mid-run, bad input, and the interactive loop's keys (without a display)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.runtime.demo.core import DemoCore
from edgemeta.runtime.demo.events import read_log
from edgemeta.runtime.demo.feed import FrameFeed
from edgemeta.runtime.demo.headless import run_headless
from edgemeta.runtime.demo.window import key_to_label, run_interactive
from edgemeta.runtime.learner import LEARNERS_DIR
from edgemeta.runtime.camera.synthetic import SessionPlan, SyntheticCamera, parse_params, synthetic_opener
from edgemeta.runtime.camera.sources import VideoSource

# Small frames keep the tests fast; the demo is resolution-independent (the region of interest scales).
SESSION = "synthetic://omniglot?classes=3&shots=6&frames_per_shot=6&gap=1&width=320&height=240&seed=5"


def _headless(learner_path, omniglot, k, uri=SESSION, **kwargs):
    from edgemeta.runtime.learner import Learner

    learner = Learner.load(learner_path, threads=1)
    core = DemoCore(learner)
    with FrameFeed(VideoSource(uri, open_backend=synthetic_opener(dataset=omniglot)), core.prepare) as feed:
        return run_headless(feed, core, shots_to_teach=k, progress=False, echo=lambda s: None, **kwargs), learner


def test_one_taught_shot_per_class_is_recognised_well_above_chance(tiny_onnx, omniglot):
    one, _ = _headless(tiny_onnx, omniglot, k=1)
    three, learner = _headless(tiny_onnx, omniglot, k=3)
    assert one.taught == 3 and three.taught == 9 and learner.num_taught == 9
    rows = {r["taught"]: r for r in one.curve.rows()}
    assert rows[1]["frames"] >= 60 and rows[1]["found"] > 0.9  # the symbol is found on the synthetic frames
    assert rows[0]["frames"] > 0 and rows[0]["accuracy"] is None  # a class not taught yet cannot be named
    assert one.curve.tallies[0].counts["right"] == 0
    chance = 1 / 3
    assert one.curve.accuracy(1) > chance + 0.3, one.curve.format()
    # The tiny test learner (16 memory slots, 1 head) is near its ceiling after one shot, so more shots
    # keep it there; "three shots do better still" is asserted for the shipped learner below.
    assert three.curve.accuracy(3) > chance + 0.3, three.curve.format()


@pytest.mark.slow
def test_shipped_default_learner_on_five_classes_one_shot_and_three(omniglot):
    path = LEARNERS_DIR / "default.onnx"
    if not path.is_file():
        pytest.skip("runtime/learners/default.onnx is not shipped yet (the lead exports it from the product run)")
    correct = {1: [0, 0], 3: [0, 0]}  # k -> [right, frames] at k examples taught, over three sessions
    for seed in (11, 12, 13):
        uri = f"synthetic://omniglot?classes=5&shots=6&frames_per_shot=6&gap=1&width=320&height=240&seed={seed}"
        for k in (1, 3):
            result, _ = _headless(path, omniglot, k=k, uri=uri)
            tally = result.curve.tallies[k]
            correct[k][0] += tally.counts["right"]
            correct[k][1] += tally.found
    acc1, acc3 = (correct[k][0] / correct[k][1] for k in (1, 3))
    assert acc1 > 0.2 + 0.3, f"one shot: {acc1:.2f} (chance 0.20)"
    assert acc3 > acc1, f"one shot: {acc1:.2f}, three shots: {acc3:.2f}"


def _script_for(n_shots_per_class: int, uri=SESSION) -> dict[int, int]:
    """Teach the middle frame of the first shots of each class, as a person with a script would."""
    from urllib.parse import parse_qsl, urlsplit

    plan = SessionPlan(parse_params("omniglot", dict(parse_qsl(urlsplit(uri).query))))
    return {t.frame: t.label for t in plan.truths() if t.card and t.class_shot < n_shots_per_class and plan.is_middle(t)}


def test_scripted_headless_cli_writes_the_log_and_the_video(tiny_onnx, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEMETA_DATA", str(data_dir))
    events = _script_for(1)
    script = tmp_path / "EVENTS.csv"
    script.write_text("frame,label\n" + "".join(f"{f},{l}\n" for f, l in sorted(events.items())))
    log, video = tmp_path / "LOG.jsonl", tmp_path / "OUT.mp4"
    code = main(["demo", "--model", str(tiny_onnx), "--source", SESSION, "--headless", "--script", str(script),
                 "--log", str(log), "--record", str(video)])
    out = capsys.readouterr().out
    assert code == 0, out
    records = read_log(log)[1]
    assert [r["frame"] for r in records] == list(range(3 * 6 * 7))  # every frame, in order
    for r in records:
        assert {"frame", "pred", "confidence", "taught", "found"} <= set(r)
        assert isinstance(r["found"], bool) and isinstance(r["confidence"], float)
        assert r["pred"] is None or (isinstance(r["pred"], int) and 0 <= r["pred"] < 3)
    taught = {r["frame"]: r["taught"] for r in records if r["taught"] is not None}
    assert taught == events  # the scripted frames, as the script's classes
    first = min(events)
    assert records[first]["pred"] is None  # nothing was taught before the first taught frame
    later = [records[f] for f in sorted(events)[1:]]
    assert all(isinstance(r["pred"], int) for r in later)  # the prediction made before teaching
    before_first = [r for r in records if r["frame"] < first]
    assert all(r["pred"] is None for r in before_first)
    untaught = [r for r in records if r["truth"] is not None and r["taught"] is None and r["frame"] > max(events)]
    acc = np.mean([r["pred"] == r["truth"] for r in untaught])
    assert acc > 1 / 3 + 0.15  # the script's labels are the session's classes: recognised above chance
    assert not any(r["found"] for r in records if r["truth"] is None)  # blank paper: no symbol
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 240)
    cap.release()
    assert f"processed {len(records)} frames" in out


def test_ground_truth_mode_prints_the_learning_curve(tiny_onnx, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("EDGEMETA_DATA", str(data_dir))
    code = main(["demo", "--model", str(tiny_onnx), "--source", SESSION, "--headless", "--shots-to-teach", "2",
                 "--max-frames", "80"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "round 1: 0-1 examples taught per class: " in out and "round 2: 1-2 examples taught per class: " in out
    assert "learning curve" in out and "examples taught  frames  symbol found  accuracy     wrong  said '?'" in out
    assert "processed 80 frames" in out and "6 taught" in out


def test_state_file_carries_what_was_learned_to_the_next_run(tiny_onnx, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEMETA_DATA", str(data_dir))
    state = tmp_path / "state.npz"
    script = tmp_path / "EVENTS.csv"
    script.write_text("frame,label\n" + "".join(f"{f},{l}\n" for f, l in sorted(_script_for(1).items())))
    assert main(["demo", "--model", str(tiny_onnx), "--source", SESSION, "--headless", "--script", str(script),
                 "--state", str(state), "--max-frames", "30"]) == 0
    assert state.exists()
    log = tmp_path / "LOG.jsonl"
    assert main(["demo", "--model", str(tiny_onnx), "--source", SESSION, "--headless", "--state", str(state),
                 "--shots-to-teach", "0", "--log", str(log), "--max-frames", "10"]) == 0
    out = capsys.readouterr().out
    assert "loaded learned state" in out and "3 examples taught" in out
    records = read_log(log)[1]
    assert any(r["found"] and r["pred"] is not None for r in records)  # predicts from the first frame: it remembers


class _DroppingSource:
    """A live source whose camera drops after `drop_at` frames and comes back after `gap` empty reads;
    `backend` is the synthetic session the frames were rendered from (it knows their ground truth)."""

    live = True

    def __init__(self, frames, backend, drop_at, gap):
        self.frames, self.backend, self.drop_at, self.gap = frames, backend, drop_at, gap
        self.i, self.nones, self.ended, self.frame_index = 0, 0, False, -1

    def read(self):
        if self.i >= len(self.frames):
            self.ended = True
            return None
        if self.i == self.drop_at and self.nones < self.gap:
            self.nones += 1
            return None
        self.frame_index = self.i
        self.i += 1
        return self.frames[self.i - 1]


def test_camera_dropping_mid_run_keeps_what_was_learned(tiny_onnx, omniglot, tmp_path):
    from edgemeta.runtime.learner import Learner

    cam = SyntheticCamera(parse_params("omniglot", {"classes": "3", "shots": "3", "frames_per_shot": "6", "gap": "1",
                                                    "width": "320", "height": "240", "seed": "5"}), dataset=omniglot)
    rendered = [cam.render(i) for i in range(cam.num_frames)]
    events = {i: t.label for i, (_, t) in enumerate(rendered) if t.card and t.class_shot == 0 and cam.is_middle(t)}
    drop_at = max(events) + 2  # after every class was taught
    source = _DroppingSource([f for f, _ in rendered], cam, drop_at, gap=4)
    learner = Learner.load(tiny_onnx, threads=1)
    log = tmp_path / "LOG.jsonl"
    result = run_headless(FrameFeed(source), DemoCore(learner), events=events, log=log, progress=False)
    assert source.nones == 4 and result.frames == cam.num_frames  # the drop was waited out, no frame lost
    assert learner.num_taught == 3 and list(learner.counts) == [1, 1, 1]
    records = read_log(log)[1]
    assert [r["frame"] for r in records] == list(range(cam.num_frames))
    after = [r for r in records if r["frame"] >= drop_at and r["truth"] is not None]
    assert np.mean([r["pred"] == r["truth"] for r in after]) > 1 / 3 + 0.15  # still knows the classes


def test_reconnecting_video_source_in_the_demo_keeps_state(tiny_onnx, omniglot):
    """The real VideoSource reconnection path: the capture dies, one reopening fails, the next works."""
    from edgemeta.runtime.learner import Learner

    cam = SyntheticCamera(parse_params("omniglot", {"classes": "3", "shots": "2", "frames_per_shot": "4", "gap": "1",
                                                    "width": "160", "height": "120", "seed": "2"}), dataset=omniglot)
    frames = [cam.render(i)[0] for i in range(cam.num_frames)]
    position = {"next": 0, "opens": 0}

    class Capture:
        def __init__(self, limit):
            self.limit = limit

        def read(self):
            if position["next"] >= min(self.limit, len(frames)):
                return None
            position["next"] += 1
            return frames[position["next"] - 1]

        def close(self):
            pass

    def open_backend(spec):
        position["opens"] += 1
        if position["opens"] == 2:
            raise EdgemetaError("cannot open camera")
        return Capture(limit=12 if position["opens"] == 1 else 10**9)

    learner = Learner.load(tiny_onnx, threads=1)
    src = VideoSource("0", open_backend=open_backend, sleep=lambda s: None, reconnect_tries=3)
    events = {3: 0, 8: 1}
    result = run_headless(FrameFeed(src), DemoCore(learner), events=events, max_frames=len(frames), progress=False)
    assert src.reconnects == 1 and position["opens"] == 3
    assert result.frames == len(frames) and learner.num_taught == 2


def test_bad_input_is_a_one_line_error(tiny_onnx, tmp_path, capsys):
    script = tmp_path / "EVENTS.csv"
    script.write_text("frame,label\n4,3\n")  # the tiny learner has 3 classes: 0-2
    cases = [
        (["--source", "ftp://x", "--headless"], "unknown video source scheme 'ftp://'"),
        (["--source", str(tmp_path / "missing.mp4"), "--headless"], "does not exist"),
        (["--source", SESSION, "--headless", "--script", str(script)], "label 3 is out of range for this model's 3 classes"),
        (["--source", SESSION, "--script", str(script)], "--script needs --headless"),
        (["--source", "synthetic://omniglot?classes=5&data=" + str(tmp_path), "--headless"],
         "needs the Omniglot dataset"),
    ]
    for args, message in cases:
        assert main(["demo", "--model", str(tiny_onnx), *args]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert main(["demo", "--model", str(tmp_path / "nope.onnx"), "--headless"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_more_synthetic_classes_than_the_model_has_is_an_error(tiny_onnx, omniglot):
    with pytest.raises(EdgemetaError, match="synthetic session has 5 classes but the model only 3"):
        _headless(tiny_onnx, omniglot, k=1, uri="synthetic://omniglot?classes=5&width=160&height=120")


def test_keys_map_to_classes():
    assert [key_to_label(ord(c)) for c in "1234567890"] == list(range(10))
    assert key_to_label(ord("a")) is None and key_to_label(255) is None


def test_interactive_loop_keys_without_a_display(tiny_onnx, omniglot, tmp_path, monkeypatch):
    """The window loop with OpenCV's window calls replaced: keys teach, reset, save, load, help and quit."""
    from edgemeta.runtime.learner import Learner

    keys = iter([-1, ord("1"), -1, ord("2"), ord("s"), ord("r"), ord("h"), ord("l"), ord("9"), -1, ord("q")])
    shown = []
    monkeypatch.setenv("DISPLAY", ":fake")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, img: shown.append(img.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys, -1))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    learner = Learner.load(tiny_onnx, threads=1)
    # frames 0-1 show the first card, 2-3 the second, 4-5 the third: keys 1 and 2 land on different symbols
    uri = "synthetic://omniglot?classes=3&shots=1&frames_per_shot=2&gap=0&width=160&height=120&seed=1"
    state = tmp_path / "state.npz"
    log = tmp_path / "LOG.jsonl"
    with FrameFeed(VideoSource(uri, open_backend=synthetic_opener(dataset=omniglot))) as feed:
        frames = run_interactive(feed, DemoCore(learner), state_path=state, log=log)
    assert frames == 6 and len(shown) == 11
    assert state.exists()  # s saved after teaching classes 0 and 1
    assert learner.num_taught == 2 and list(learner.counts) == [1, 1, 0]  # r reset, then l loaded them back
    records = read_log(log)[1]
    assert [r["taught"] for r in records[:4]] == [None, 0, None, 1]
    assert all(img.shape == (120, 160, 3) for img in shown)
    def panel_share(img):
        return np.mean(np.all(img == (40, 32, 28), axis=2))

    assert panel_share(shown[7]) > panel_share(shown[6]) + 0.2  # h (pressed while 6 was up) drew the help panel


def test_ctrl_c_ends_a_live_run_cleanly_and_keeps_log_and_video(tiny_onnx, tmp_path):
    from edgemeta.runtime.learner import Learner

    class Camera:  # a live camera that the user stops with Ctrl-C after 5 frames
        live, ended = True, False

        def __init__(self):
            self.n = 0

        def read(self):
            if self.n == 5:
                raise KeyboardInterrupt
            self.n += 1
            frame = np.full((120, 160, 3), 210, np.uint8)
            cv2.line(frame, (70, 40), (90, 80), (40, 40, 40), 4)
            return frame

    log, video = tmp_path / "LOG.jsonl", tmp_path / "OUT.mp4"
    result = run_headless(FrameFeed(Camera()), DemoCore(Learner.load(tiny_onnx)), events={1: 2}, log=log, record=video,
                          progress=False)
    assert result.interrupted and result.frames == 5 and result.taught == 1
    assert len(read_log(log)[1]) == 5
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_device_profile_sets_the_runtime_and_bad_profiles_fail(tiny_onnx, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGEMETA_DATA", str(data_dir))
    state = tmp_path / "state.npz"
    assert main(["demo", "--model", str(tiny_onnx), "--device", "x86-cpu", "--source", SESSION, "--headless",
                 "--state", str(state), "--max-frames", "5"]) == 0
    assert state.exists() and "processed 5 frames" in capsys.readouterr().out
    assert main(["demo", "--model", str(tiny_onnx), "--device", "no-such-board", "--headless"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown device profile 'no-such-board'") and err.count("\n") == 1
