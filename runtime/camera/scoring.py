"""Scoring a demo run against the synthetic camera's ground truth: which frames to teach, and how well the
rest were named.

A synthetic session with no script teaches the first k shots of each class (their middle frame) and scores
every other frame that shows a card; the live learning curve is printed once per round.
"""
from __future__ import annotations

from typing import Callable, Optional

from edgemeta import EdgemetaError


class TruthTeacher:
    """Teach the first k shots of each class from the ground truth, score every other frame that shows a card,
    and say one line per round."""

    def __init__(self, camera, num_classes: int, k: int, say: Callable[[str], None]):
        from edgemeta.runtime.camera.synthetic import LearningCurve

        if camera.params.classes > num_classes:
            raise EdgemetaError(
                f"the synthetic session has {camera.params.classes} classes but the model only {num_classes}: "
                f"use synthetic://omniglot?classes={num_classes} or a bigger model"
            )
        self.camera, self.k, self.say = camera, int(k), say
        self.curve = LearningCurve()
        self.taught_shots: set[int] = set()
        self.round, self.frames, self.correct, self.taught = None, 0, 0, []

    def label_for(self, truth) -> Optional[int]:
        """The middle frame of a shot to teach (or the next frames, if no symbol was found there)."""
        if (truth is not None and truth.card and truth.class_shot < self.k
                and truth.shot_frame >= self.camera.middle_frame and truth.shot not in self.taught_shots):
            return truth.label
        return None

    def after(self, truth, obs, counts_before) -> None:
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
        self.say(f"round {self.round + 1}: {taught} examples taught per class, "
                 f"accuracy on untaught frames {self.correct / self.frames:6.1%} ({self.frames} frames)")
        self.frames, self.correct, self.taught = 0, 0, []
