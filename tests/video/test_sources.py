"""Video sources by URI: parsing for every scheme, files, image folders, reconnection."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.sources import VideoSource, csi_pipeline, parse_uri


def _frames(n, w=64, h=48):
    """Distinct frames: frame i is filled with grey level 20*i + 10 (survives lossy video codecs)."""
    return [np.full((h, w, 3), 20 * i + 10, np.uint8) for i in range(n)]


def _write_video(path, frames, fps=10.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


# --- URI parsing (opens nothing) ---


@pytest.mark.parametrize("uri, target", [("0", 0), ("2", 2), ("/dev/video1", "/dev/video1"),
                                         ("v4l2:///dev/video3", "/dev/video3"), ("v4l2://1", 1)])
def test_cameras_parse_to_v4l2(uri, target):
    spec = parse_uri(uri)
    assert (spec.kind, spec.target, spec.api, spec.live) == ("v4l2", target, cv2.CAP_V4L2, True)


def test_csi_builds_an_nvargus_pipeline():
    spec = parse_uri("csi://1", width=1920, height=1080, fps=60)
    assert spec.kind == "csi" and spec.api == cv2.CAP_GSTREAMER and spec.live
    assert spec.target == csi_pipeline(1, 1920, 1080, 60)
    assert spec.target.startswith("nvarguscamerasrc sensor-id=1 ! ")
    assert "width=(int)1920, height=(int)1080" in spec.target and "framerate=(fraction)60/1" in spec.target
    assert spec.target.endswith("appsink drop=1 max-buffers=1")
    with pytest.raises(EdgemetaError, match="csi://N"):
        parse_uri("csi://front")


def test_rtsp_and_synthetic_parse():
    spec = parse_uri("rtsp://cam.local:8554/live")
    assert (spec.kind, spec.target, spec.api, spec.live) == ("rtsp", "rtsp://cam.local:8554/live", cv2.CAP_FFMPEG, True)
    spec = parse_uri("synthetic://omniglot?classes=3&seed=7&data=/x")
    assert (spec.kind, spec.target, spec.live) == ("synthetic", "omniglot", False)
    assert spec.params == {"classes": "3", "seed": "7", "data": "/x"}


def test_files_and_folders_parse(tmp_path):
    clip = tmp_path / "clip.mp4"
    _write_video(clip, _frames(3))
    for uri in (str(clip), f"file://{clip}"):
        spec = parse_uri(uri)
        assert (spec.kind, spec.target, spec.api, spec.live) == ("file", clip, cv2.CAP_FFMPEG, False)
    for uri in (str(tmp_path), f"file://{tmp_path}"):
        assert parse_uri(uri).kind == "images"
    single = tmp_path / "card.png"
    cv2.imwrite(str(single), _frames(1)[0])
    assert parse_uri(str(single)).kind == "images"


@pytest.mark.parametrize("uri, message", [
    ("http2://x", "unknown video source scheme 'http2://'"),
    ("webcam://0", "unknown video source scheme 'webcam://'"),
    ("/no/such/clip.mp4", "does not exist"),
    ("file:///no/such/clip.mp4", "does not exist"),
    ("", "empty video source"),
])
def test_bad_uris_are_one_line_errors(uri, message):
    with pytest.raises(EdgemetaError, match=message) as e:
        parse_uri(uri)
    assert "\n" not in str(e.value)


def test_unreadable_file_is_an_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(EdgemetaError, match="cannot read video .*convert it") as e:
        VideoSource(str(junk))
    assert "\n" not in str(e.value)


def test_camera_that_cannot_open_is_an_error():
    # /dev/video63 does not exist on a test machine: opening must fail with the fix, not hang or crash.
    with pytest.raises(EdgemetaError, match="cannot open camera '/dev/video63': check that it is plugged in"):
        VideoSource("/dev/video63", reconnect_tries=0)


# --- reading ---


def test_file_source_reads_every_frame_then_ends(tmp_path):
    frames = _frames(6)
    clip = tmp_path / "clip.mp4"
    _write_video(clip, frames)
    with VideoSource(f"file://{clip}") as src:
        assert len(src) == 6
        got = []
        while (f := src.read()) is not None:
            got.append(f)
        assert src.ended and src.read() is None
    assert len(got) == 6 and src.frame_index == 5
    assert all(g.shape == (48, 64, 3) and g.dtype == np.uint8 for g in got)
    levels = [float(g.mean()) for g in got]
    assert levels == pytest.approx([20 * i + 10 for i in range(6)], abs=4)  # right frames, in order


def test_folder_source_reads_images_in_natural_order(tmp_path):
    frames = _frames(11)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), f if i % 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    (tmp_path / "notes.txt").write_text("ignored")
    src = VideoSource(str(tmp_path))
    got = [src.read() for _ in range(11)]
    assert src.read() is None and src.ended
    assert all(g.shape == (48, 64, 3) for g in got)  # grey images come out BGR too
    assert [int(g[0, 0, 0]) for g in got] == [20 * i + 10 for i in range(11)]  # img10 after img9


def test_empty_folder_and_undecodable_image_are_errors(tmp_path):
    with pytest.raises(EdgemetaError, match="no images"):
        VideoSource(str(tmp_path))
    (tmp_path / "a.png").write_bytes(b"not a png")
    src = VideoSource(str(tmp_path))
    with pytest.raises(EdgemetaError, match="cannot decode image .*a.png"):
        src.read()


class _FlakyCamera:
    """A capture backend that delivers `good` frames, then fails."""

    def __init__(self, good, start):
        self.left, self.value = good, start
        self.closed = False

    def read(self):
        if self.left == 0:
            return None
        self.left -= 1
        self.value += 1
        return np.full((4, 4, 3), self.value, np.uint8)

    def close(self):
        self.closed = True


def test_lost_camera_is_reopened_with_backoff():
    opened, sleeps = [], []
    plan = iter([("ok", 2), ("fail", 0), ("fail", 0), ("ok", 3)])  # opened, lost, two failed reopenings, back

    def open_backend(spec):
        kind, good = next(plan)
        if kind == "fail":
            raise EdgemetaError("cannot open camera")
        cam = _FlakyCamera(good, start=10 * len(opened))
        opened.append(cam)
        return cam

    src = VideoSource("0", open_backend=open_backend, backoff_s=0.1, max_backoff_s=0.3, sleep=sleeps.append)
    got = [src.read() for _ in range(8)]
    values = [None if f is None else int(f[0, 0, 0]) for f in got]
    # 2 frames, the drop (None), two failed reopenings (None, None), then the reopened camera's frames
    assert values == [1, 2, None, None, None, 11, 12, 13]
    assert sleeps == [0.1, 0.2, 0.3]  # doubling, capped
    assert opened[0].closed and src.reconnects == 1 and not src.ended
    assert src.frame_index == 4  # frame numbers count delivered frames only


def test_camera_that_never_comes_back_is_an_error():
    def open_backend(spec, state={"n": 0}):
        state["n"] += 1
        if state["n"] > 1:
            raise EdgemetaError("cannot open camera")
        return _FlakyCamera(1, 0)

    src = VideoSource("/dev/video0", open_backend=open_backend, reconnect_tries=3, sleep=lambda s: None)
    assert src.read() is not None
    for _ in range(4):  # the drop, then three failed reopenings
        assert src.read() is None
    with pytest.raises(EdgemetaError, match="could not reopen it after 3 tries") as e:
        src.read()
    assert "\n" not in str(e.value)
