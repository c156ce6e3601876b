"""--record: annotated frames to a video file, published atomically."""
from __future__ import annotations

import os

import cv2
import numpy as np

from edgemeta.runtime.camera.recorder import VideoRecorder


def _frames(n, w=64, h=48):
    return [np.full((h, w, 3), 20 * i + 10, np.uint8) for i in range(n)]


def _frame_count(path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


def test_recorder_publishes_atomically(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old recording")
    rec = VideoRecorder(out, fps=10)
    for f in _frames(4):
        rec.write(f)
    assert out.read_bytes() == b"old recording"  # nothing replaced until close()
    assert rec.close() == out
    assert _frame_count(out) == 4
    failed = VideoRecorder(out, fps=10)
    failed.write(_frames(1)[0])
    failed.abort()  # a run that failed keeps the previous recording, and leaves no temporary file
    assert _frame_count(out) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_recording_without_frames_writes_nothing_and_gets_the_usual_mode(tmp_path):
    old = os.umask(0o027)
    try:
        assert VideoRecorder(tmp_path / "none.mp4").close() is None
        rec = VideoRecorder(tmp_path / "sub" / "out.mp4", fps=10)
        rec.write(_frames(1)[0])
        path = rec.close()
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert path.stat().st_mode & 0o777 == 0o640  # like any file made under that umask, not mkstemp's 0600
