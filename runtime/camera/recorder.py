"""Annotated frames to a video file (--record), published atomically when the run ends well."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import PendingFile


class VideoRecorder:
    """Frames to an .mp4 (mp4v): written to a hidden temporary file beside the target, renamed over it by
    close(), removed by abort(); an old recording survives a failed run.

    The temporary file keeps the target's extension because OpenCV picks the container from it.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, fourcc: str = "mp4v"):
        self.path = Path(path)
        self.fps = float(fps)
        self.fourcc = fourcc
        self._pending = PendingFile(self.path, suffix=self.path.suffix or ".mp4")
        self.writer = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self._pending.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self.writer.isOpened():
                self.abort()
                raise EdgemetaError(f"cannot write video {self.path}: use an .mp4 or .avi file name in a writable folder")
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Publish the recording; None (and no file) if no frame was written."""
        if self.writer is None:
            self.abort()
            return None
        self.writer.release()
        self.writer = None
        return self._pending.publish()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        self._pending.discard()
