"""Faults survived: the runtime killed while saving state, a full or read-only disk under every writer,
a video source that stops delivering mid-run.

Already covered elsewhere (docs/reliability.md lists them): training killed with SIGKILL and resumed to the
same weights (test_train_faults.py), a process dying half-way through a state file (test_runtime_state.py),
a failed export check keeping the previous export (test_export_errors.py), a camera that drops and comes
back in the demo (test_demo.py), reconnection backoff in VideoSource (test_video.py).
"""
from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_toy import toy_learner

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.runtime import Learner

DEV_FULL = Path("/dev/full")  # every write fails with ENOSPC: the disk-full error exactly as the kernel gives it


@pytest.fixture
def toy(tmp_path):
    return toy_learner(tmp_path / "toy.onnx")


def one_line_error(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# --- the runtime killed while it saves its state ------------------------------------------------------

CHILD = r"""
import os, sys, numpy as np
from edgemeta.runtime import Learner
model, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
learner = Learner.load(model)
if os.path.exists(path):
    learner.load_state(path)
print("resumed", learner.num_taught, flush=True)
rng = np.random.default_rng(seed)
while True:  # what a device does all day, squeezed: learn, save, learn, save
    learner.teach((rng.random((8, 8)) < 0.3).astype(np.float32), int(rng.integers(3)))
    learner.save_state(path)
"""


@pytest.mark.filterwarnings("ignore::edgemeta.runtime.EpisodeLengthWarning")
def test_runtime_sigkilled_at_random_moments_while_saving_keeps_a_loadable_state(toy, tmp_path):
    path = tmp_path / "state.npz"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    taught, rounds = 0, 4
    for round_ in range(rounds):
        proc = subprocess.Popen([sys.executable, "-W", "ignore", "-c", CHILD, str(toy), str(path), str(round_)],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            # it starts from what the last killed process saved
            assert proc.stdout.readline().split() == ["resumed", str(taught)], f"seed {seed}"
            def published():  # every save renames a new file over the old one
                st = path.stat() if path.exists() else None
                return st and (st.st_ino, st.st_mtime_ns)

            before = published()
            deadline = time.monotonic() + 60
            while published() in (None, before) and time.monotonic() < deadline:
                time.sleep(0.005)  # at least one new save, so every round adds something
            time.sleep(rng.uniform(0.0, 0.25))  # then a random moment: most of the loop's time is in save_state
        finally:
            proc.kill()  # SIGKILL: no handler, no cleanup, no flush
            proc.wait()
        with Learner.load(toy) as learner:
            learner.load_state(path)  # intact: a complete file, the old one or the new one, never a mix
            state, counts, pending = learner.state(), learner.counts, learner.pending_label
            # the toy's `count` state sums the labels that entered with committed steps: every label taught
            # except the pending one. Tensors and counters therefore come from the same save.
            np.testing.assert_array_equal(state["count"][0] + np.eye(3)[pending], counts, err_msg=f"seed {seed}")
            assert learner.num_taught > taught, f"seed {seed}"
            taught = learner.num_taught
    # a killed write can leave its hidden temporary file behind (one per kill at most), never a damaged state
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".state.npz.")]
    assert len(leftovers) <= rounds, leftovers


# --- a full or read-only disk under every writer ------------------------------------------------------


def _full_disk(real, position: int):
    """Wrap a writer so that its bytes go to /dev/full: it fails with whatever the real library raises on a
    full disk (OSError(ENOSPC) from Python files; torch's C++ writer raises RuntimeError), after starting."""
    def write(*args, **kwargs):
        args = list(args)
        if hasattr(args[position], "write"):  # the caller's file object: swap in one on the full device
            with open(DEV_FULL, "wb") as full:
                args[position] = full
                return real(*args, **kwargs)
        args[position] = str(DEV_FULL)
        return real(*args, **kwargs)
    return write


def _raise(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


class CheckpointWriter:
    error = "cannot write checkpoint"

    def __init__(self, tmp_path):
        self.path = tmp_path / "run" / "last.pt"

    def write(self, version: int, capsys) -> None:
        import torch

        from edgemeta.training.checkpoint import save_checkpoint

        save_checkpoint(self.path, {"task": "omniglot", "model_config": {}, "train_config": {},
                                    "model": {"w": torch.full((4096,), float(version))}, "step": version, "metrics": {}})

    def read(self):
        from edgemeta.training.checkpoint import load_checkpoint

        return load_checkpoint(self.path)["step"]

    def break_writes(self, monkeypatch) -> None:
        import torch

        monkeypatch.setattr(torch, "save", _full_disk(torch.save, 1))


class StateWriter:
    error = "cannot write state file"

    def __init__(self, tmp_path):
        self.path = tmp_path / "run" / "state.npz"
        self.model = toy_learner(tmp_path / "toy.onnx")

    def write(self, version: int, capsys) -> None:
        with Learner.load(self.model) as learner:
            for _ in range(version):
                learner.teach(np.ones((8, 8), np.float32), 1)
            learner.save_state(self.path)

    def read(self):
        with Learner.load(self.model) as learner:
            learner.load_state(self.path)
            return learner.num_taught

    def break_writes(self, monkeypatch) -> None:
        from edgemeta.runtime import state_file

        monkeypatch.setattr(state_file.np, "savez", _full_disk(np.savez, 0))


class ExportWriter:
    """`edgemeta export` over a previous export; what is read back is every file of the directory."""

    error = "cannot write to"

    def __init__(self, tmp_path):
        from toy_checkpoint import FLAT, make_checkpoint

        self.path = tmp_path / "run" / "export"
        self.ckpt = tmp_path / "c.pt"
        make_checkpoint(self.ckpt, FLAT)

    def write(self, version: int, capsys) -> None:
        if version == 1:
            # A previous export, as far as the staging cares (an export.json listing its files marks one): the
            # real thing would cost a full export and parity check, and this test is about the files surviving.
            self.path.mkdir(parents=True)
            (self.path / "learner.onnx").write_bytes(b"the previous learner")
            (self.path / "export.json").write_text('{"files": {"learner.onnx": {}}}\n')
            return
        code = main(["export", str(self.ckpt), "--out", str(self.path)])
        if code != 0:
            raise EdgemetaError(one_line_error(capsys.readouterr().err))

    def read(self):
        return {p.name: p.read_bytes() for p in self.path.iterdir()}

    def break_writes(self, monkeypatch) -> None:
        import onnx

        monkeypatch.setattr(onnx, "save", _full_disk(onnx.save, 1))


WRITERS = {"checkpoint": CheckpointWriter, "state": StateWriter, "export": ExportWriter}
FAULTS = ["disk fills while writing", "disk full at fsync", "read-only file system", "rename refused"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_full_or_read_only_disk_is_a_clear_error_and_keeps_the_old_file(writer, fault, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)  # export parity on synthetic drawings: fast
    w = WRITERS[writer](tmp_path)
    w.write(1, capsys)
    old = w.read()
    expected = {"read-only file system": "Read-only file system", "rename refused": "Read-only file system"}.get(
        fault, "No space left on device")
    if fault == "disk fills while writing":
        if not DEV_FULL.exists():
            pytest.skip("needs /dev/full (Linux)")
        w.break_writes(monkeypatch)
    elif fault == "disk full at fsync":
        monkeypatch.setattr(os, "fsync", _raise(errno.ENOSPC))
    elif fault == "read-only file system":  # creating the temporary file is where a read-only disk says no
        monkeypatch.setattr(tempfile, "mkstemp", _raise(errno.EROFS))
        monkeypatch.setattr(tempfile, "mkdtemp", _raise(errno.EROFS))
    elif writer != "export":  # files are published with os.replace
        monkeypatch.setattr(os, "replace", _raise(errno.EROFS))
    else:  # an export directory is swapped in with two renames: refuse the second, after the first moved the old one
        real_rename, calls = os.rename, []

        def rename(src, dst):
            calls.append(src)
            if len(calls) == 2:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(EdgemetaError) as e:
        w.write(2, capsys)
    message = str(e.value)
    assert w.error in message and expected in message and "\n" not in message, message
    assert "kept" in message or "pass a writable" in message, message
    monkeypatch.undo()
    assert w.read() == old  # the old file (or export) is untouched and still loads
    hidden = [p.name for p in w.path.parent.iterdir() if p.name.startswith(".")]
    assert hidden == [], hidden  # no temporary file or folder left behind


def test_checkpoint_under_a_regular_file_is_a_clear_error(tmp_path):
    import torch

    from edgemeta.training.checkpoint import save_checkpoint

    (tmp_path / "runs").write_text("a file where the run directory should be")
    with pytest.raises(EdgemetaError, match="cannot write checkpoint .*runs/x/last.pt") as e:
        save_checkpoint(tmp_path / "runs" / "x" / "last.pt", {"model_config": {}, "model": {"w": torch.zeros(1)}, "step": 0})
    assert "\n" not in str(e.value)
    assert (tmp_path / "runs").read_text() == "a file where the run directory should be"


def test_demo_refuses_an_unwritable_state_path_before_the_session(toy, tmp_path, capsys):
    """A --state that cannot be written would lose the whole session's learning at the end: fail at the start."""
    frames = _symbol_folder(tmp_path / "frames", 3)
    (tmp_path / "blocker").write_text("x")
    for state, needle in [(tmp_path / "blocker" / "s.npz", "is a file, not a directory"),
                          (tmp_path / "frames", "is a directory")]:
        code = main(["demo", "--model", str(toy), "--source", str(frames), "--headless", "--state", str(state)])
        captured = capsys.readouterr()
        assert code != 0 and needle in one_line_error(captured.err)
        assert "processed" not in captured.out  # nothing ran
    assert (tmp_path / "blocker").read_text() == "x"


# --- the video source stops delivering mid-run --------------------------------------------------------

SYMBOLS = [  # three drawings the frame preprocessing finds on white paper
    lambda p: (cv2.line(p, (130, 80), (190, 160), 20, 7), cv2.line(p, (190, 80), (130, 160), 20, 7)),
    lambda p: cv2.circle(p, (160, 120), 35, 20, 7),
    lambda p: (cv2.line(p, (160, 75), (160, 165), 20, 7), cv2.line(p, (125, 120), (195, 120), 20, 7)),
]


def _frame(i: int) -> np.ndarray:
    page = np.full((240, 320), 225, np.uint8)
    SYMBOLS[i % 3](page)
    return cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)


def _symbol_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i}.png"), _frame(i))
    return folder


def _script(path: Path, events: dict) -> Path:
    path.write_text("frame,label\n" + "".join(f"{f},{l}\n" for f, l in sorted(events.items())))
    return path


def test_truncated_video_ends_cleanly_and_saves_what_was_learned(toy, tmp_path, capsys):
    full, cut = tmp_path / "full.avi", tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(40):
        writer.write(_frame(i))
    writer.release()
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])  # a copy that stopped half-way
    cap = cv2.VideoCapture(str(cut))
    readable = 0
    while cap.read()[0]:
        readable += 1
    cap.release()
    assert 5 < readable < 40
    state = tmp_path / "state.npz"
    script = _script(tmp_path / "EVENTS.csv", {0: 0, 1: 1, 2: 2, 35: 0})  # frame 35 is past the cut
    code = main(["demo", "--model", str(toy), "--source", str(cut), "--headless", "--script", str(script),
                 "--state", str(state)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"processed {readable} frames" in captured.out and "3 taught" in captured.out
    assert f"the source ended after {readable} frames; scripted frames 35 never came" in captured.err
    with Learner.load(toy) as learner:
        learner.load_state(state)
        assert learner.counts.tolist() == [1, 1, 1]


def test_camera_that_stalls_is_retried_with_backoff_then_ends_saving_what_was_learned(toy, tmp_path, capsys,
                                                                                     monkeypatch):
    """The camera delivers, stalls (reads return nothing), comes back after one failed reopening, stalls
    for good. The demo waits with doubling backoff, then stops with one line, and --state keeps every class."""
    from edgemeta.runtime.camera import sources as video

    sleeps, opens = [], []
    plan = iter([5, None, 4, None, None])  # frames a successful opening delivers; None: the opening fails

    class StallingCamera:
        def __init__(self, frames: int):
            self.left = frames

        def read(self):
            if self.left == 0:
                return None  # stalled: no frame in time
            self.left -= 1
            return _frame(len(opens) * 7 + self.left)

        def close(self):
            pass

    def open_backend(spec):
        frames = next(plan)
        opens.append(frames)
        if frames is None:
            raise EdgemetaError("cannot open camera")
        return StallingCamera(frames)

    real = video.VideoSource

    def source(uri, **kwargs):  # the CLI's source, with the stalling camera behind it
        kwargs.update(open_backend=open_backend, sleep=sleeps.append, reconnect_tries=2)
        return real(uri, **kwargs)

    def feed(source, prepare, **kwargs):  # no capture thread, so which frames arrive is deterministic
        return real_feed(source, prepare, **{**kwargs, "background": False})

    from edgemeta.runtime.demo import feed as feeds

    real_feed = feeds.FrameFeed
    monkeypatch.setattr(video, "VideoSource", source)
    monkeypatch.setattr(feeds, "FrameFeed", feed)
    state = tmp_path / "state.npz"
    script = _script(tmp_path / "EVENTS.csv", {1: 0, 3: 1, 6: 2})  # two classes before the stall, one after
    code = main(["demo", "--model", str(toy), "--source", "/dev/video0", "--headless", "--script", str(script),
                 "--state", str(state)])
    captured = capsys.readouterr()
    assert code == 1
    assert "could not reopen it after 2 tries" in one_line_error(captured.err)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]  # doubling backoff, started again after the camera came back
    assert opens == [5, None, 4, None, None]
    assert f"saved learned state to {state}" in captured.out
    with Learner.load(toy) as learner:
        learner.load_state(state)
        assert learner.counts.tolist() == [1, 1, 1]  # learned before and after the stall, all kept
