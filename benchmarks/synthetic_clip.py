"""A synthetic camera session recorded as a video clip, with the teach events of a scripted user."""
from __future__ import annotations

from pathlib import Path


def record_session(path: Path, uri: str, frames: int) -> tuple[dict[int, int], list]:
    """Write up to `frames` frames of `uri` (a synthetic:// session) to `path`.

    Returns {frame: label} teaching the middle frame of each class's first shot, and the frames written.
    """
    from edgemeta.runtime.camera.recorder import VideoRecorder
    from edgemeta.runtime.camera.sources import VideoSource

    src = VideoSource(uri)
    camera, rec, events, kept = src.backend, VideoRecorder(path, fps=30), {}, []
    for i in range(frames):
        frame = src.read()
        if frame is None:
            break
        t = camera.truth_of(src.frame_index)
        if t.card and t.class_shot == 0 and t.shot_frame == camera.middle_frame:
            events[i] = t.label
        rec.write(frame)
        kept.append(frame)
    rec.close()
    return events, kept
