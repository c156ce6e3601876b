"""The demo's frame feed: frames in order with their ground truth and preprocessing, in the caller's thread or a
capture thread; errors reach the reader; a silent live source times out with None."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.sources import VideoSource
from edgemeta.runtime.demo.feed import FrameFeed


def _folder(tmp_path, n):
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 64, 3), 20 * i + 10, np.uint8))
    return str(tmp_path)


class _Plan:
    def truth_of(self, i):
        return f"truth {i}"


class _Numbered:
    """A finite source of numbered frames whose backend knows each frame's truth by index, as a synthetic
    session does; frame_index moves on with every read()."""

    live = False

    def __init__(self, n):
        self.n, self.frame_index, self.ended, self.closed, self.backend = n, -1, False, False, _Plan()

    def read(self):
        if self.frame_index + 1 == self.n:
            self.ended = True
            return None
        self.frame_index += 1
        return np.full((8, 8, 3), self.frame_index, np.uint8)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("background", [False, True])
def test_each_frame_comes_with_its_own_truth_and_preprocessing(background):
    source = _Numbered(9)
    with FrameFeed(source, lambda frame: int(frame[0, 0, 0]) * 10, background=background) as feed:
        got = []
        while (captured := feed.next()) is not None:
            got.append((int(captured.frame[0, 0, 0]), captured.truth, captured.symbol))
        assert feed.ended and feed.next() is None
    assert got == [(i, f"truth {i}", 10 * i) for i in range(9)]  # nothing dropped, nothing mixed up
    assert source.closed  # the feed owns its source


def test_a_video_source_in_the_background_gives_every_frame_in_order(tmp_path):
    with FrameFeed(VideoSource(_folder(tmp_path, 9)), background=True) as feed:
        got = []
        while (captured := feed.next()) is not None:
            got.append(int(captured.frame[0, 0, 0]))
            assert captured.symbol is None  # no prepare: the loop preprocesses
    assert got == [20 * i + 10 for i in range(9)]


def test_errors_in_the_capture_thread_reach_the_reader(tmp_path):
    _folder(tmp_path, 1)
    (tmp_path / "1.png").write_bytes(b"broken")
    with FrameFeed(VideoSource(str(tmp_path)), background=True) as feed:
        assert feed.next() is not None
        with pytest.raises(EdgemetaError, match="cannot decode image"):
            feed.next()


def test_a_silent_live_source_times_out_with_none_and_is_not_ended():
    class Silent:  # a camera that opened but delivers slower than the timeout
        live, ended = True, False

        def read(self):
            time.sleep(0.5)
            return np.zeros((4, 4, 3), np.uint8)

    with FrameFeed(Silent(), background=True, timeout_s=0.05) as feed:
        assert feed.next() is None and not feed.ended  # a timeout, not the end
        captured = None
        for _ in range(40):
            captured = feed.next()
            if captured is not None:
                break
        assert captured is not None
