"""Annotated frames to a video file (--record), published atomically when the run ends well."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import PendingFile
from edgemeta.runtime.write_error import disk_is_full, write_error


class VideoRecorder:
    """Frames to an .mp4 (mp4v): written to a hidden temporary file beside the target, renamed over it by
    close(), removed by abort(); an old recording survives a failed run.

    A video has one frame size, the first frame's: a frame of another size (a folder of images of mixed
    sizes) is scaled to it and counted in `resized`, where OpenCV's writer would drop it without a word.
    OpenCV's writer does not report a full disk either: close() checks that the file it wrote can be read
    back before publishing it.

    The temporary file keeps the target's extension because OpenCV picks the container from it.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, fourcc: str = "mp4v"):
        self.path = Path(path)
        self.fps = float(fps)
        self.fourcc = fourcc
        try:
            self._pending = PendingFile(self.path, suffix=self.path.suffix or ".mp4")
        except OSError as e:
            raise write_error("video", self.path, e) from None
        self.writer = None
        self.size: tuple[int, int] | None = None  # (width, height) of every frame in the file
        self.frames = 0
        self.resized = 0  # frames of another size, scaled to `size`

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self.writer is None:
            self.size = (w, h)
            self.writer = cv2.VideoWriter(str(self._pending.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                self.abort()
                raise EdgemetaError(f"cannot write video {self.path}: use an .mp4 or .avi file name in a writable folder")
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
            self.resized += 1
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Publish the recording; None (and no file) if no frame was written."""
        if self.writer is None:
            self.abort()
            return None
        self.writer.release()
        self.writer = None
        if not self._readable():
            full = disk_is_full(self.path.parent)
            self.abort()
            if full:
                raise write_error("video", self.path)
            raise EdgemetaError(f"cannot write video {self.path}: OpenCV's writer produced no readable file; "
                                "the previous file was kept")
        try:
            return self._pending.publish()
        except OSError as e:
            raise write_error("video", self.path, e) from None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self._pending.discard()

    def _readable(self) -> bool:
        """The container opens and its first frame decodes (a full disk leaves an mp4 without its index)."""
        video = cv2.VideoCapture(str(self._pending.tmp))
        try:
            return video.isOpened() and video.read()[0]
        finally:
            video.release()
