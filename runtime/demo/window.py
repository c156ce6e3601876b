"""The demo window: the live frame with its overlay; keys teach, reset, save, load, show help and quit."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.overlay import class_name, draw
from edgemeta.runtime.demo.core import DemoCore, Fps, Observation, finish_outputs, open_recorder
from edgemeta.runtime.demo.feed import FrameFeed

WINDOW = "edgemeta demo"
STATUS_SECONDS = 2.0
BLANK = np.full((480, 640, 3), 32, np.uint8)  # shown until the first frame arrives
KEY_QUIT = (ord("q"), 27)


def key_to_label(key: int) -> Optional[int]:
    """Keys 1-9 -> classes 0-8, key 0 -> class 9; anything else -> None."""
    if ord("1") <= key <= ord("9"):
        return key - ord("1")
    if key == ord("0"):
        return 9
    return None


def check_display() -> None:
    """Fail with a one-line fix instead of letting the GUI toolkit abort the process."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise EdgemetaError("no display for the demo window (DISPLAY is not set): run with --headless, "
                            "or under a virtual display: xvfb-run edgemeta demo ...")


def run_interactive(
    feed: FrameFeed,
    core: DemoCore,
    *,
    state_path: Optional[os.PathLike] = None,
    log: Optional[os.PathLike] = None,
    record: Optional[os.PathLike] = None,
    max_frames: Optional[int] = None,
    window: str = WINDOW,
) -> int:
    """The window: live frame with overlay; keys teach, reset, save, load, help, quit. Returns frames shown.

    At the end of a finite source the last frame stays up (it can still be taught) until q/Esc.
    """
    import cv2

    from edgemeta.runtime.demo.events import JsonlLog, log_header

    check_display()
    try:
        cv2.namedWindow(window, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    except cv2.error as e:
        raise EdgemetaError(f"cannot open a window ({str(e).strip().splitlines()[-1]}): this OpenCV has no GUI "
                            "(opencv-python-headless?); install opencv-python, or use --headless") from None
    state_path = Path(state_path) if state_path else Path("edgemeta-state.npz")
    writer = JsonlLog(log, header=log_header(feed.source)) if log else None
    recorder = open_recorder(record, feed.source)
    fps, status, status_until, show_help = Fps(), "", 0.0, False
    obs: Optional[Observation] = None
    shown = 0
    ok = False
    try:
        while True:
            fresh = False
            if not feed.ended and (max_frames is None or shown < max_frames):
                captured = feed.next()
                if captured is not None:
                    obs = core.observe(captured.frame, shown, captured.symbol)
                    shown += 1
                    fresh = True
                elif not feed.ended:
                    status, status_until = "waiting for the camera...", time.monotonic() + STATUS_SECONDS
            elif status_until < time.monotonic():
                status, status_until = "end of video: keys still work, q quits", float("inf")
            if time.monotonic() > status_until:
                status = ""
            hud = core.hud(fps.tick() if fresh else fps.value, status, show_help)
            canvas = draw(obs.frame if obs is not None else BLANK, obs, hud)  # a copy: BLANK stays blank
            cv2.imshow(window, canvas)
            key = cv2.waitKey(1 if fresh else 30) & 0xFF
            if key in KEY_QUIT or _window_closed(cv2, window):
                break
            label = key_to_label(key)
            message = None
            if label is not None:
                message = _teach_key(core, obs, label)
                if obs is not None and obs.taught is not None and not fresh and writer:
                    writer.write(obs.record())  # a taught held frame gets its own record
            elif key == ord("r"):
                core.learner.reset()
                message = "reset: every class forgotten"
            elif key == ord("s"):
                core.learner.save_state(state_path)
                message = f"saved state to {state_path}"
            elif key == ord("l"):
                message = _load_state(core, state_path)
            elif key == ord("h"):
                show_help = not show_help
            if message:
                status, status_until = message, time.monotonic() + STATUS_SECONDS
            if fresh:
                if writer:
                    writer.write(obs.record())
                if recorder:
                    recorder.write(canvas)
        ok = True
    except KeyboardInterrupt:  # Ctrl-C in the terminal: quit as q does
        ok = True
    finally:
        try:
            finish_outputs(writer, recorder, ok)
        finally:
            cv2.destroyWindow(window)
            cv2.waitKey(1)
    return shown


def _teach_key(core: DemoCore, obs: Optional[Observation], label: int) -> str:
    if label >= core.num_classes:
        return f"this model knows at most {core.num_classes} classes (keys 1-{min(core.num_classes, 9)})"
    if obs is None:
        return "no frame yet"
    if obs.taught is not None:
        return f"already taught this frame as {class_name(obs.taught)}"
    if not core.teach(obs, label):
        return "no symbol found: not taught"
    return f"taught class {class_name(label, core.names())} ({int(core.counts()[label])} examples)"


def _load_state(core: DemoCore, path: Path) -> str:
    if not path.exists():
        return f"no saved state at {path} (press s to save)"
    try:
        core.learner.load_state(path)
    except EdgemetaError as e:
        return f"cannot load {path}: {e}"
    return f"loaded state from {path}"


def _window_closed(cv2, window: str) -> bool:
    try:
        return cv2.getWindowProperty(window, cv2.WND_PROP_VISIBLE) < 1
    except cv2.error:
        return True
