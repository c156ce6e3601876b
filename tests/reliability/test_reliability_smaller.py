"""Issue 20's "Smaller" list: each case as the adversarial round reported it, failing before its fix.
docs/reliability.md lists them with the rest."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner

EVENTS_HEAD = "frame,label\n"


def _one_line_error(main, argv, capsys) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- NaN logits: "?" on screen and null in the log ---------------------------------------------------------

class _Pred:
    def __init__(self, probs, novelty=None):
        self.probs, self.novelty = np.asarray(probs, np.float32), novelty


class _NanLearner:
    input_size, num_classes, num_taught, counts = 8, 3, 1, np.array([1, 0, 0])

    def predict(self, image):
        return _Pred([np.nan, np.nan, np.nan], novelty=np.array([np.nan]))


def test_nan_logits_say_unknown_and_log_null(tmp_path):
    from edgemeta.runtime.camera.frames import FrameResult
    from edgemeta.runtime.camera.overlay import draw
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.events import JsonlLog, read_log

    core = DemoCore(_NanLearner())
    symbol = FrameResult(found=True, image=np.zeros((8, 8), np.float32), bbox=(0, 0, 8, 8), roi=(0, 0, 8, 8),
                         ink_fraction=0.1, contrast=0.5)
    obs = core.observe(np.zeros((64, 64, 3), np.uint8), 0, symbol=symbol)
    assert obs.unknown and obs.pred is None
    draw(obs.frame, obs, core.hud())  # the overlay draws "?" without choking on NaN
    log = JsonlLog(tmp_path / "log.jsonl")
    log.write(obs.record())
    log.close()
    text = (tmp_path / "log.jsonl").read_text()
    assert "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    (record,) = read_log(tmp_path / "log.jsonl")[1]
    assert record["confidence"] is None and record["novelty"] is None and record["unknown"] is True


# --- the events file --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["+10", " 3_0 ", "\u0663", "１０"], ids=["plus", "underscore", "arabic-indic", "fullwidth"])
def test_the_events_parser_takes_only_plain_digits(cell):
    from edgemeta.runtime.demo.events import parse_events

    with pytest.raises(EdgemetaError, match="two integers"):
        parse_events(f"{EVENTS_HEAD}{cell},1\n")
    with pytest.raises(EdgemetaError, match="two integers"):
        parse_events(f"{EVENTS_HEAD}1,{cell}\n")
    assert parse_events(f"{EVENTS_HEAD} 10 , 1 \n") == {10: 1}  # spaces around a cell are fine


def test_an_over_long_events_line_is_not_echoed_whole(tmp_path, capsys):
    from edgemeta.cli import main

    script = tmp_path / "events.csv"
    script.write_text(EVENTS_HEAD + "1," + "x" * 1_000_000 + "\n")
    err = _one_line_error(main, ["demo", "--headless", "--script", str(script), "--max-frames", "1"], capsys)
    assert "events.csv:2" in err and "1,000,002 characters" in err and len(err) < 400, err[:500]


# --- --threshold nan ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--threshold", "--novelty-threshold"])
def test_a_nan_threshold_is_refused(flag, capsys):
    from edgemeta.cli import main

    err = _one_line_error(main, ["demo", "--headless", flag, "nan", "--max-frames", "1"], capsys)
    assert flag in err and "not a number" in err


# --- counts stored as uint64 --------------------------------------------------------------------------------

def test_uint64_counts_beyond_int64_are_refused_not_wrapped(tmp_path):
    path = tmp_path / "s.npz"
    with Learner.load("mann") as learner:
        learner.save_state(path)
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
        members["counts"] = np.full(members["counts"].shape, np.iinfo(np.uint64).max, np.uint64)
        with open(path, "wb") as f:
            np.savez(f, **members)
        with pytest.raises(EdgemetaError, match="'counts' holds 18446744073709551615, beyond int64"):
            learner.load_state(path)
        assert (learner.counts >= 0).all()


# --- "does not exist" only for what does not exist ----------------------------------------------------------

@pytest.mark.parametrize("flag", ["--model", "--script"])
@pytest.mark.parametrize("kind", ["device", "directory", "missing"])
def test_a_path_that_is_not_a_file_is_named_for_what_it_is(flag, kind, tmp_path, capsys):
    from edgemeta.cli import main

    path = {"device": "/dev/zero", "directory": str(tmp_path), "missing": str(tmp_path / "absent")}[kind]
    err = _one_line_error(main, ["demo", "--headless", flag, path, "--max-frames", "1"], capsys)
    want = {"device": "is a device", "directory": "is a directory", "missing": "does not exist"}[kind]
    if flag == "--model" and kind == "directory":
        want = "holds no learner.onnx"  # a folder is where an export goes
    assert want in err, err
    if kind != "missing":
        assert "does not exist" not in err, err


@pytest.mark.parametrize("kind", ["device", "directory"])
def test_a_checkpoint_path_that_is_not_a_file_is_named_for_what_it_is(kind, tmp_path):
    from edgemeta.training.checkpoint import resolve_checkpoint

    path = "/dev/zero" if kind == "device" else tmp_path  # an empty directory: no run in it
    with pytest.raises(EdgemetaError) as e:
        resolve_checkpoint(path)
    assert "does not exist" not in str(e.value)
    assert ("is a device" if kind == "device" else "holds no checkpoint") in str(e.value)


# --- --record: frames of another size -----------------------------------------------------------------------

def test_record_keeps_frames_of_another_size_and_says_so(tmp_path):
    from edgemeta.runtime.camera.recorder import VideoRecorder

    path = tmp_path / "out.mp4"
    recorder = VideoRecorder(path, fps=10)
    sizes = [(240, 320), (240, 320), (480, 640), (120, 200), (240, 320)]
    for h, w in sizes:
        recorder.write(np.full((h, w, 3), 128, np.uint8))
    assert recorder.close() == path and recorder.resized == 2
    video = cv2.VideoCapture(str(path))
    frames = 0
    while video.read()[0]:
        frames += 1
    video.release()
    assert frames == len(sizes)  # none dropped


def test_the_demo_reports_resized_frames(tmp_path, capsys):
    from edgemeta.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (h, w) in enumerate([(240, 320), (300, 400), (240, 320)]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((h, w, 3), 200, np.uint8))
    assert main(["demo", "--headless", "--source", str(folder), "--record", str(tmp_path / "o.mp4")]) == 0
    assert "wrote" in (out := capsys.readouterr().out) and "1 frames of another size scaled" in out, out


# --- mann past its training episodes ------------------------------------------------------------------------

def test_teaching_past_the_training_episodes_says_accuracy_falls_to_chance_and_the_demo_shows_it():
    from edgemeta.runtime.demo.core import PAST_EPISODES, DemoCore
    from edgemeta.runtime.learner import EpisodeLengthWarning

    rng = np.random.default_rng(0)
    with Learner.load("mann") as learner:
        core = DemoCore(learner)
        assert core.hud().status == ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(learner._limit + 1):
                learner.teach(rng.random((learner.input_size,) * 2, dtype=np.float32), i % learner.num_classes)
        (w,) = [c for c in caught if issubclass(c.category, EpisodeLengthWarning)]
        assert "accuracy falls to chance" in str(w.message) and "may drop" not in str(w.message)
        assert learner.past_training_episodes
        assert core.hud().status == PAST_EPISODES and "chance" in PAST_EPISODES
        assert core.hud(status="taught class 2").status == "taught class 2"  # a key's message still shows
        learner.reset()
        assert not learner.past_training_episodes and core.hud().status == ""
