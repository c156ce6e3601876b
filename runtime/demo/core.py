"""The demo's rules: which learner runs, and how one frame becomes a prediction or a taught example.

The loops that drive it live beside it: headless.py (a source to its end, scripted or taught from ground
truth) and window.py (the live window and its keys).

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
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.frames import FrameResult, frame_to_input
from edgemeta.runtime.camera.overlay import Hud
from edgemeta.runtime.camera.region_front import FRONT_END as REGION_FRONT_END, region_to_input
from edgemeta.runtime.demo.unknown_rule import NOVELTY_THRESHOLD, default_threshold, says_unknown
from edgemeta.runtime.learner import LEARNERS_DIR, resolve_learner, shipped_learners

DEFAULT_MODELS = ("default", "mann")  # the product learner first, the paper's MANN as the fallback
# On screen once the learner is taught past its training episodes (Learner.past_training_episodes).
PAST_EPISODES = "taught past its training: accuracy falls to chance; r resets"


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """--model as given (a path, an export folder or a shipped name; Learner.load resolves it), or, when
    absent, the shipped product learner, else the shipped paper MANN."""
    if model is not None:
        return model
    shipped = shipped_learners()
    for name in DEFAULT_MODELS:
        if name in shipped:
            return resolve_learner(name)
    raise EdgemetaError(
        f"no shipped learner in {LEARNERS_DIR} ({', '.join(n + '.onnx' for n in DEFAULT_MODELS)}): "
        "pass --model PATH.onnx (make one with `edgemeta export RUN`)"
    )


@dataclass
class Observation:
    """One frame's facts, from preprocessing through the learner to the log and the overlay.

    `symbol` is what preprocessing found (frame_to_input's FrameResult: found, image, bbox, roi); the rest
    is what the learner made of it. The loops, the log and the overlay all read this one record.
    """

    index: int
    frame: np.ndarray
    symbol: FrameResult
    probs: Optional[np.ndarray] = None  # (C,)
    pred: Optional[int] = None
    confidence: float = 0.0
    novelty: Optional[float] = None
    unknown: bool = False
    taught: Optional[int] = None
    finite: bool = True  # False when the learner's output held NaN or inf: the demo says "?", the log null

    @property
    def found(self) -> bool:
        return self.symbol.found

    def record(self) -> dict:
        """The LOG.jsonl record (frame, pred, confidence, taught, found, unknown, novelty when present)."""
        confidence = round(float(self.confidence), 6) if self.finite else None  # JSON has no NaN
        rec = {"frame": self.index, "pred": self.pred, "confidence": confidence,
               "taught": self.taught, "found": bool(self.found), "unknown": bool(self.unknown)}
        if self.novelty is not None:
            rec["novelty"] = round(float(self.novelty), 6) if np.isfinite(self.novelty) else None
        return rec


class DemoCore:
    """Preprocess + predict/teach for one stream, with the demo's rules for naming classes."""

    def __init__(self, learner, threshold: float | None = None, novelty_threshold: float = NOVELTY_THRESHOLD,
                 region: tuple[int, int, int, int] | None = None):
        self.learner = learner
        # None: the rule's default for this learner (runtime/demo/unknown_rule.py)
        self.threshold = float(default_threshold(bool(getattr(learner, "has_novelty", False)))
                               if threshold is None else threshold)
        self.novelty_threshold = float(novelty_threshold)
        self.size = int(learner.input_size)
        self.num_classes = int(learner.num_classes)
        self.seconds = {"preprocess": 0.0, "step": 0.0}  # time spent per stage, for benchmarks
        # The learner's metadata names the front end it was trained for: a square region (objects) or the symbol.
        metadata = getattr(learner, "metadata", None) or {}
        objects = metadata.get("front_end") == REGION_FRONT_END
        self.region = region  # set by the user: the only part of the frame either front end looks at
        if region is None:
            self.front_end = region_to_input if objects else frame_to_input
        elif objects:
            self.front_end = lambda frame, size: region_to_input(frame, size, region)
        else:
            self.front_end = lambda frame, size: frame_to_input(frame, size, roi=region)

    def prepare(self, frame: np.ndarray) -> FrameResult:
        """Preprocess one frame (runtime/camera/frames.py); thread-safe, so a FrameFeed can run it in its
        capture thread while this thread runs the learner."""
        t = time.perf_counter()
        symbol = self.front_end(frame, self.size)
        self.seconds["preprocess"] += time.perf_counter() - t
        return symbol

    def observe(self, frame: np.ndarray, index: int, symbol: Optional[FrameResult] = None) -> Observation:
        """Preprocess (unless `symbol` is given) and predict (no commit)."""
        obs = Observation(index, frame, symbol if symbol is not None else self.prepare(frame))
        if obs.found and self.learner.num_taught > 0:
            t = time.perf_counter()
            pred = self.learner.predict(obs.symbol.image)
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
        pred = self.learner.teach(obs.symbol.image, int(label))
        self.seconds["step"] += time.perf_counter() - t
        if taught_before.size:
            self._fill(obs, pred, taught_before)
        else:
            obs.pred, obs.confidence, obs.unknown = None, 0.0, False
        obs.taught = int(label)
        return True

    def process(self, frame: np.ndarray, index: int, teach: Optional[int] = None,
                symbol: Optional[FrameResult] = None) -> Observation:
        """observe() or, for a taught frame, teach() directly (one learner step either way)."""
        if teach is None:
            return self.observe(frame, index, symbol)
        obs = Observation(index, frame, symbol if symbol is not None else self.prepare(frame))
        self.teach(obs, teach)
        return obs

    def check_label(self, label: int) -> None:
        if not 0 <= int(label) < self.num_classes:
            raise EdgemetaError(
                f"class {label} is out of range for this model's {self.num_classes} classes (valid: 0-{self.num_classes - 1})"
            )

    def hud(self, fps: float = 0.0, status: str = "", help: bool = False) -> Hud:
        """What the overlay shows besides the frame's own facts."""
        if not status and getattr(self.learner, "past_training_episodes", False):
            status = PAST_EPISODES
        return Hud(counts=self.counts(), names=self.names(), fps=fps, status=status, help=help)

    def counts(self) -> np.ndarray:
        return np.asarray(self.learner.counts, dtype=np.int64).reshape(-1)

    def names(self) -> Optional[list]:
        names = getattr(self.learner, "class_names", None)
        return list(names) if names is not None and any(names) else None

    def _taught_classes(self) -> np.ndarray:
        return np.flatnonzero(self.counts() > 0)

    def _fill(self, obs: Observation, pred, taught: np.ndarray) -> None:
        probs = np.asarray(pred.probs, dtype=np.float32).reshape(-1)
        novelty = getattr(pred, "novelty", None)
        obs.novelty = None if novelty is None else float(np.asarray(novelty).reshape(-1)[0])
        if not np.isfinite(probs).all():  # a learner gone wrong names nothing
            obs.probs, obs.pred, obs.confidence, obs.unknown, obs.finite = None, None, 0.0, True, False
            return
        best = int(taught[np.argmax(probs[taught])])
        obs.probs, obs.pred, obs.confidence = probs, best, float(probs[best])
        obs.unknown = says_unknown(obs.confidence, obs.novelty, self.threshold, self.novelty_threshold)


def configure_opencv() -> None:
    """One OpenCV thread: the demo's images are small, so splitting each call across cores costs more
    than it saves, and the second core is busy decoding the next frame (VideoSource prefetch)."""
    import cv2

    cv2.setNumThreads(1)


def open_recorder(path, source):
    """The --record writer at the source's frame rate, or None without --record."""
    if not path:
        return None
    from edgemeta.runtime.camera.recorder import VideoRecorder

    return VideoRecorder(path, fps=getattr(source, "fps", 30.0) or 30.0)


def finish_outputs(writer, recorder, ok: bool):
    """Publish the log and (after a good run) the video -> (log path, video path, frames resized). When one
    fails (a full disk) the other is still finished or discarded, so no hidden temporary file stays behind;
    then the first error is raised."""
    failed, log, video = None, None, None
    if writer:
        try:
            log = writer.close()
        except BaseException as e:
            failed = e
    if recorder:
        try:
            video = recorder.close() if ok and failed is None else recorder.abort()
        except BaseException as e:
            failed = failed or e
    if failed is not None:
        raise failed
    return log, video, recorder.resized if recorder else 0


class Fps:
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
        return self.value

    @property
    def value(self) -> float:
        return 1.0 / self.period if self.period else 0.0
