"""The live demo loop: frames in, predict or teach, log, overlay; headless (scripted) or in a window.

One frame = preprocess (runtime/camera/frames.py) -> `learner.predict` (no commit) or `learner.teach` (commit)
-> a log record and the overlay. The demo's class k is the learner's label k. Predictions are made among
the classes taught so far: an untaught label can never be the right name. Probability the learner puts on
untaught labels (how a MANN says "this is new") lowers the confidence, and below `threshold` (or with the
novelty head above `novelty_threshold`) the demo says "?".

Learned state lives in the learner, never in the video source: a camera that drops and is reopened, or a
`--state` file saved and loaded, keeps every class.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.overlay import OverlayInfo, class_name, draw

WINDOW = "edgemeta demo"
LEARNERS_DIR = Path(__file__).resolve().parent / "learners"
DEFAULT_MODELS = ("default", "mann")  # the product learner first, the paper's MANN as the fallback
STATUS_SECONDS = 2.0


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """--model as given (a path, an export folder or a shipped name; Learner.load resolves it), or, when
    absent, the shipped product learner, else the shipped paper MANN."""
    if model is not None:
        return model
    for name in DEFAULT_MODELS:
        path = LEARNERS_DIR / f"{name}.onnx"
        if path.is_file():
            return path
    raise EdgemetaError(
        f"no shipped learner in {LEARNERS_DIR} ({', '.join(n + '.onnx' for n in DEFAULT_MODELS)}): "
        "pass --model PATH.onnx (make one with `edgemeta export RUN`)"
    )


@dataclass
class Observation:
    """One processed frame."""

    index: int
    frame: np.ndarray
    found: bool
    image: Optional[np.ndarray]
    bbox: Optional[tuple]
    roi: Optional[tuple]
    probs: Optional[np.ndarray] = None  # (C,)
    pred: Optional[int] = None
    confidence: float = 0.0
    novelty: Optional[float] = None
    unknown: bool = False
    taught: Optional[int] = None

    def record(self) -> dict:
        """The LOG.jsonl record (frame, pred, confidence, taught, found, unknown, novelty when present)."""
        rec = {"frame": self.index, "pred": self.pred, "confidence": round(float(self.confidence), 6),
               "taught": self.taught, "found": bool(self.found), "unknown": bool(self.unknown)}
        if self.novelty is not None:
            rec["novelty"] = round(float(self.novelty), 6)
        return rec


class DemoCore:
    """Preprocess + predict/teach for one stream, with the demo's rules for naming classes."""

    def __init__(self, learner, threshold: float = 0.5, novelty_threshold: float = 0.5, prepare=None):
        self.learner = learner
        self.threshold = float(threshold)
        self.novelty_threshold = float(novelty_threshold)
        self.size = int(learner.input_size)
        self.num_classes = int(learner.num_classes)
        self._prepare = prepare or _default_prepare
        self.seconds = {"preprocess": 0.0, "step": 0.0}  # time spent per stage, for benchmarks

    def prepare(self, frame: np.ndarray):
        """Preprocess one frame (runtime/camera/frames.py); thread-safe, so a VideoSource can run it while it
        decodes (VideoSource(transform=core.prepare)) and hand the result over with the frame."""
        t = time.perf_counter()
        prep = self._prepare(frame, self.size)
        self.seconds["preprocess"] += time.perf_counter() - t
        return prep

    def observe(self, frame: np.ndarray, index: int, prep=None) -> Observation:
        """Preprocess (unless `prep` is given) and predict (no commit)."""
        obs = self._preprocessed(frame, index, prep)
        if obs.found and self.learner.num_taught > 0:
            t = time.perf_counter()
            pred = self.learner.predict(obs.image)
            self.seconds["step"] += time.perf_counter() - t
            self._fill(obs, pred, self._taught_classes())
        return obs

    def teach(self, obs: Observation, label: int) -> bool:
        """Teach `obs` as class `label` (commits). Its prediction becomes the one made before teaching.

        False (nothing taught) when no symbol was found: the learner is never taught noise.
        """
        self.check_label(label)
        if not obs.found:
            return False
        taught_before = self._taught_classes()
        t = time.perf_counter()
        pred = self.learner.teach(obs.image, int(label))
        self.seconds["step"] += time.perf_counter() - t
        if taught_before.size:
            self._fill(obs, pred, taught_before)
        else:
            obs.pred, obs.confidence, obs.unknown = None, 0.0, False
        obs.taught = int(label)
        return True

    def process(self, frame: np.ndarray, index: int, teach: Optional[int] = None, prep=None) -> Observation:
        """observe() or, for a taught frame, teach() directly (one learner step either way)."""
        if teach is None:
            return self.observe(frame, index, prep)
        obs = self._preprocessed(frame, index, prep)
        self.teach(obs, teach)
        return obs

    def check_label(self, label: int) -> None:
        if not 0 <= int(label) < self.num_classes:
            raise EdgemetaError(
                f"class {label} is out of range for this model's {self.num_classes} classes (valid: 0-{self.num_classes - 1})"
            )

    def overlay_info(self, obs: Optional[Observation], fps: float = 0.0, status: str = "", help: bool = False) -> OverlayInfo:
        info = OverlayInfo(counts=self.counts(), names=self._names(), fps=fps, status=status, help=help)
        if obs is not None:
            info.roi, info.bbox, info.found, info.image = obs.roi, obs.bbox, obs.found, obs.image
            info.pred, info.confidence, info.unknown, info.probs = obs.pred, obs.confidence, obs.unknown, obs.probs
            info.taught = obs.taught
        return info

    def counts(self) -> np.ndarray:
        return np.asarray(self.learner.counts, dtype=np.int64).reshape(-1)

    def _names(self):
        names = getattr(self.learner, "class_names", None)
        return list(names) if names is not None and any(names) else None

    def _taught_classes(self) -> np.ndarray:
        return np.flatnonzero(self.counts() > 0)

    def _preprocessed(self, frame: np.ndarray, index: int, prep=None) -> Observation:
        if prep is None:
            prep = self.prepare(frame)
        found = bool(prep.found) and prep.image is not None
        return Observation(index=index, frame=frame, found=found, image=prep.image if found else None,
                           bbox=_xywh(getattr(prep, "bbox", None)), roi=_xywh(getattr(prep, "roi", None)))

    def _fill(self, obs: Observation, pred, taught: np.ndarray) -> None:
        probs = np.asarray(pred.probs, dtype=np.float32).reshape(-1)
        best = int(taught[np.argmax(probs[taught])])
        obs.probs, obs.pred, obs.confidence = probs, best, float(probs[best])
        novelty = getattr(pred, "novelty", None)
        obs.novelty = None if novelty is None else float(np.asarray(novelty).reshape(-1)[0])
        obs.unknown = obs.confidence < self.threshold or (
            obs.novelty is not None and obs.novelty > self.novelty_threshold
        )


def configure_opencv() -> None:
    """One OpenCV thread: the demo's images are small, so splitting each call across cores costs more
    than it saves, and the second core is busy decoding the next frame (VideoSource prefetch)."""
    import cv2

    cv2.setNumThreads(1)


def _default_prepare(frame: np.ndarray, size: int):
    from edgemeta.runtime.camera.frames import frame_to_input

    return frame_to_input(frame, size)


def _xywh(box) -> Optional[tuple]:
    if box is None:
        return None
    return tuple(int(v) for v in box)


# --- headless ---------------------------------------------------------------------------------------


@dataclass
class HeadlessResult:
    frames: int = 0
    found: int = 0
    taught: int = 0
    curve: object = None  # synthetic.LearningCurve when taught from ground truth
    missed_events: tuple = ()  # scripted frames the source never delivered
    log: Optional[Path] = None
    record: Optional[Path] = None
    seconds: dict = field(default_factory=dict)  # time per stage: decode, preprocess, step, overlay, output
    interrupted: bool = False  # stopped by Ctrl-C / SIGINT


def run_headless(
    source,
    core: DemoCore,
    *,
    events: Optional[dict] = None,
    shots_to_teach: Optional[int] = None,
    log: Optional[os.PathLike] = None,
    record: Optional[os.PathLike] = None,
    max_frames: Optional[int] = None,
    overlay: Optional[bool] = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> HeadlessResult:
    """Run `source` to its end (or max_frames): teach scripted `events` {frame: label}, or, on a synthetic
    source with `shots_to_teach` k and no events, the first k shots of each class (ground truth).

    overlay: draw the annotated frame (default: only when recording); benchmarks turn it on.
    """
    from tqdm import tqdm

    from edgemeta.runtime.demo.events import JsonlLog

    events = dict(events or {})
    for label in set(events.values()):
        core.check_label(label)
    camera = getattr(source, "backend", None)
    teacher = None
    if not events and shots_to_teach and hasattr(camera, "truth_of"):
        teacher = _TruthTeacher(camera, core, shots_to_teach, echo)
    result = HeadlessResult(curve=teacher.curve if teacher else None)
    overlay = bool(record) if overlay is None else overlay
    writer = JsonlLog(log) if log else None
    recorder = _recorder(record, source)
    total = len(source) if hasattr(source, "__len__") else 0
    total = min(total, max_frames) if (total and max_frames) else (max_frames or total or None)
    # disable=None: no progress bar when stderr is not a terminal (a service's journal, a CI log)
    bar = tqdm(total=total, unit="frame", desc="demo", disable=None if progress else True, leave=False, file=sys.stderr)
    if teacher:
        teacher.bar = bar
    fps = _Fps()
    core_before = dict(core.seconds)
    seconds = {"decode": 0.0, "overlay": 0.0, "output": 0.0}
    ok = False
    try:
        index = 0
        while max_frames is None or index < max_frames:
            t0 = time.perf_counter()
            frame = source.read()
            seconds["decode"] += time.perf_counter() - t0
            if frame is None:
                if getattr(source, "ended", False):
                    break
                continue  # a live source timed out or is reconnecting; what was learned is kept
            truth = getattr(source, "truth", None)
            label = teacher.label_for(truth) if teacher else events.get(index)
            counts_before = core.counts() if teacher else None
            obs = core.process(frame, index, teach=label, prep=getattr(source, "prepared", None))
            if label is not None and obs.taught is None:
                _say(f"frame {index}: no symbol found; class {label} not taught", echo, bar)
            if teacher:
                teacher.after(truth, obs, counts_before)
            result.frames += 1
            result.found += obs.found
            result.taught += obs.taught is not None
            t1 = time.perf_counter()
            canvas = draw(frame, core.overlay_info(obs, fps.tick()), inplace=True) if overlay else None
            t2 = time.perf_counter()
            if writer:
                rec = obs.record()
                if truth is not None:
                    rec["truth"] = truth.label
                writer.write(rec)
            if recorder:
                recorder.write(canvas)
            seconds["overlay"] += t2 - t1
            seconds["output"] += time.perf_counter() - t2
            bar.update(1)
            index += 1
        ok = True
    except KeyboardInterrupt:  # Ctrl-C or SIGINT (systemd's KillSignal) is how a live run ends: a clean stop
        ok = result.interrupted = True
    finally:
        bar.close()
        if writer:
            result.log = writer.close()
        if recorder:
            result.record = recorder.close() if ok else recorder.abort()
    if teacher:
        teacher.flush()
    result.seconds = {"decode": seconds["decode"],
                      **{k: core.seconds[k] - core_before.get(k, 0.0) for k in core.seconds},
                      "overlay": seconds["overlay"], "output": seconds["output"]}
    result.missed_events = tuple(sorted(f for f in events if f >= result.frames))
    return result


def _say(line: str, echo, bar) -> None:
    if bar is not None and not bar.disable:
        bar.write(line)  # above the progress bar, not through it
    else:
        echo(line)


class _TruthTeacher:
    """A synthetic session with no script: teach the first k shots of each class from the ground truth,
    score every other frame that shows a card, and print the live learning curve once per round."""

    def __init__(self, camera, core: DemoCore, k: int, echo):
        from edgemeta.runtime.camera.synthetic import LearningCurve

        if camera.params.classes > core.num_classes:
            raise EdgemetaError(
                f"the synthetic session has {camera.params.classes} classes but the model only {core.num_classes}: "
                f"use synthetic://omniglot?classes={core.num_classes} or a bigger model"
            )
        self.camera, self.k, self.echo, self.bar = camera, int(k), echo, None
        self.curve = LearningCurve()
        self.taught_shots: set[int] = set()
        self.round, self.frames, self.correct, self.taught = None, 0, 0, []

    def label_for(self, truth) -> Optional[int]:
        """The middle frame of a shot to teach (or the next frames, if no symbol was found there)."""
        if (truth is not None and truth.card and truth.class_shot < self.k
                and truth.shot_frame >= self.camera.middle_frame and truth.shot not in self.taught_shots):
            return truth.label
        return None

    def after(self, truth, obs: Observation, counts_before) -> None:
        if truth is None or not truth.card:
            return
        if obs.taught is not None:
            self.taught_shots.add(truth.shot)
            return
        n = int(counts_before[truth.label])
        self.curve.add(n, obs.pred == truth.label, obs.found, obs.unknown or obs.pred is None)
        if self.round is not None and truth.class_shot != self.round:
            self.flush()
        self.round = truth.class_shot
        self.frames += 1
        self.correct += obs.pred == truth.label
        self.taught.append(n)

    def flush(self) -> None:
        """One line for the round that just ended (every class shown once)."""
        if not self.frames:
            return
        low, high = min(self.taught), max(self.taught)
        taught = f"{low}" if low == high else f"{low}-{high}"
        _say(f"round {self.round + 1}: {taught} examples taught per class, "
             f"accuracy on untaught frames {self.correct / self.frames:6.1%} ({self.frames} frames)", self.echo, self.bar)
        self.frames, self.correct, self.taught = 0, 0, []


def _recorder(path, source):
    if not path:
        return None
    from edgemeta.runtime.camera.sources import VideoRecorder

    return VideoRecorder(path, fps=getattr(source, "fps", 30.0) or 30.0)


class _Fps:
    """Frames per second, smoothed (an exponential moving average of the frame period)."""

    def __init__(self):
        self.last = None
        self.period = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self.last is not None:
            dt = now - self.last
            self.period = dt if self.period is None else 0.9 * self.period + 0.1 * dt
        self.last = now
        return 1.0 / self.period if self.period else 0.0


# --- interactive ------------------------------------------------------------------------------------


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
    source,
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

    from edgemeta.runtime.demo.events import JsonlLog

    check_display()
    try:
        cv2.namedWindow(window, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    except cv2.error as e:
        raise EdgemetaError(f"cannot open a window ({str(e).strip().splitlines()[-1]}): this OpenCV has no GUI "
                            "(opencv-python-headless?); install opencv-python, or use --headless") from None
    state_path = Path(state_path) if state_path else Path("edgemeta-state.npz")
    writer = JsonlLog(log) if log else None
    recorder = _recorder(record, source)
    fps, status, status_until, show_help = _Fps(), "", 0.0, False
    obs: Optional[Observation] = None
    shown = 0
    ok = False
    try:
        while True:
            fresh = False
            if not getattr(source, "ended", False) and (max_frames is None or shown < max_frames):
                frame = source.read()
                if frame is not None:
                    obs = core.observe(frame, shown, getattr(source, "prepared", None))
                    shown += 1
                    fresh = True
                elif not getattr(source, "ended", False):
                    status, status_until = "waiting for the camera...", time.monotonic() + STATUS_SECONDS
            elif status_until < time.monotonic():
                status, status_until = "end of video: keys still work, q quits", float("inf")
            if time.monotonic() > status_until:
                status = ""
            info = core.overlay_info(obs, fps.tick() if fresh else fps_value(fps), status, show_help)
            canvas = draw(obs.frame, info) if obs is not None else _blank(info)
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
        if writer:
            writer.close()
        if recorder:
            recorder.close() if ok else recorder.abort()
        cv2.destroyWindow(window)
        cv2.waitKey(1)
    return shown


def fps_value(fps: _Fps) -> float:
    return 1.0 / fps.period if fps.period else 0.0


def _teach_key(core: DemoCore, obs: Optional[Observation], label: int) -> str:
    if label >= core.num_classes:
        return f"this model knows at most {core.num_classes} classes (keys 1-{min(core.num_classes, 9)})"
    if obs is None:
        return "no frame yet"
    if obs.taught is not None:
        return f"already taught this frame as {class_name(obs.taught)}"
    if not core.teach(obs, label):
        return "no symbol found: not taught"
    return f"taught class {class_name(label, core._names())} ({int(core.counts()[label])} examples)"


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


def _blank(info: OverlayInfo) -> np.ndarray:
    return draw(np.full((480, 640, 3), 32, np.uint8), info)
