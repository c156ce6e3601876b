"""The demo's frames: read from a video source and preprocessed, optionally in a background thread.

With `background=True` a capture thread reads the next frame and runs `prepare` on it (OpenCV releases
the GIL while it decodes and filters), so both overlap the learner step on a second core. A finite source
then queues a few frames and never drops one; a live source keeps only the newest (lowest latency), and
`next()` returns None when no frame arrives within `timeout_s`.

Each frame comes back as one `Captured` record holding everything that was worked out with it.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from edgemeta.runtime.camera.frames import FrameResult

_END = object()  # the source has no more frames


@dataclass(frozen=True)
class Captured:
    """One frame as the feed delivers it."""

    frame: np.ndarray  # BGR uint8
    truth: object  # the synthetic camera's ground truth for this frame (FrameTruth), else None
    symbol: Optional[FrameResult]  # `prepare(frame)`, or None when the feed has no `prepare`


class FrameFeed:
    """Frames from `source` (a VideoSource, or anything with read() -> frame or None and `.ended` once a finite
    source is exhausted), each with its ground truth (when the source's backend is a synthetic session) and,
    given `prepare`, its preprocessing result.

    next() -> Captured, or None (no frame this time; `.ended` says whether the source is exhausted).
    The feed owns the source: close() stops the capture thread, then closes the source.
    """

    def __init__(self, source, prepare: Callable[[np.ndarray], FrameResult] | None = None, *,
                 background: bool = False, timeout_s: float = 5.0):
        self.source = source
        self.prepare = prepare
        self.timeout_s = float(timeout_s)
        self.live = bool(getattr(source, "live", False))
        self.ended = False
        self._thread = None
        if background:
            self._queue = queue.Queue(maxsize=1 if self.live else 4)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._pump, name="demo capture", daemon=True)
            self._thread.start()

    def next(self) -> Optional[Captured]:
        if self.ended:
            return None
        item = self._take() if self._thread is not None else self._capture()
        if item is _END:
            self.ended = True
            return None
        return item

    def _capture(self):
        """One attempt at the next frame: a Captured, None (a live source had none) or _END."""
        frame = self.source.read()
        if frame is None:
            return _END if getattr(self.source, "ended", False) else None
        return Captured(frame, self._truth(), self.prepare(frame) if self.prepare is not None else None)

    def _truth(self):
        """The synthetic session's ground truth of the frame just read (read now: frame_index moves on)."""
        camera = getattr(self.source, "backend", None)
        return camera.truth_of(self.source.frame_index) if hasattr(camera, "truth_of") else None

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._capture()
            except BaseException as e:  # handed to the reader, which raises it
                item = e
            if self.live:
                try:  # keep only the newest frame: a stale one is worth less than none
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._queue.put(item)
            else:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            if item is _END or isinstance(item, BaseException):
                return

    def _take(self):
        while True:
            try:
                item = self._queue.get(timeout=self.timeout_s if self.live else 0.5)
            except queue.Empty:
                if self.live:
                    return None  # a timeout: no frame this time
                if not self._thread.is_alive():
                    return _END
                continue
            if isinstance(item, BaseException):
                raise item
            return item

    def close(self) -> None:
        """Stop the capture thread, then close the source."""
        if self._thread is not None:
            self._stop.set()
            while True:  # unblock the pump if it waits on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=self.timeout_s + 1.0)
            stuck = self._thread.is_alive()
            self._thread = None
            if stuck:  # blocked in a driver call: closing the source under it could crash; it is a daemon
                return
        close = getattr(self.source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "FrameFeed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
