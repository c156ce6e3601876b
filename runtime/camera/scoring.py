"""Scoring a demo run against the synthetic camera's ground truth: which frames to teach, and what the demo
showed on the rest.

A synthetic session with no script teaches the first k shots of each class (their middle frame) and scores
every other frame that shows a card as the user saw it: the card's class named (right), another class named
(wrong), "?", or "no symbol". Accuracy is the share named right among the frames where a symbol was found,
counted only once the card's class has been taught: before that the demo cannot name it, and a "?" is the
answer it should give. The live learning curve is printed once per round.
"""
from __future__ import annotations

from typing import Callable, Optional

from edgemeta import EdgemetaError

RIGHT, WRONG, UNKNOWN, NO_SYMBOL = "right", "wrong", "?", "no symbol"


def shown(obs, label: int) -> str:
    """What the demo showed on a frame of class `label`: RIGHT, WRONG, UNKNOWN ("?") or NO_SYMBOL."""
    if not obs.found:
        return NO_SYMBOL
    if obs.pred is None or obs.unknown:
        return UNKNOWN
    return RIGHT if obs.pred == label else WRONG


class Tally:
    """Counts of what the demo showed, and their shares among the frames where a symbol was found."""

    def __init__(self):
        self.counts = {RIGHT: 0, WRONG: 0, UNKNOWN: 0, NO_SYMBOL: 0}

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    @property
    def frames(self) -> int:
        return sum(self.counts.values())

    @property
    def found(self) -> int:
        return self.frames - self.counts[NO_SYMBOL]

    def share(self, outcome: str) -> Optional[float]:
        """`outcome`'s share of the frames where a symbol was found (None when there were none)."""
        return self.counts[outcome] / self.found if self.found else None


class LearningCurve:
    """What the demo showed on untaught frames that show a card, by how many examples of the card's class
    were taught. With 0 taught the class cannot be named: "?" is right there and no accuracy is given."""

    def __init__(self):
        self.tallies: dict[int, Tally] = {}

    def add(self, taught: int, outcome: str) -> None:
        self.tallies.setdefault(int(taught), Tally()).add(outcome)

    def accuracy(self, taught: int) -> Optional[float]:
        """The share named right among frames with a symbol found, `taught` examples of their class taught."""
        tally = self.tallies.get(taught)
        return tally.share(RIGHT) if tally is not None and taught > 0 else None

    def rows(self) -> list[dict]:
        return [
            {"taught": k, "frames": t.frames, "found": t.found / t.frames, "accuracy": self.accuracy(k),
             "wrong": t.share(WRONG), "unknown": t.share(UNKNOWN)}
            for k, t in sorted(self.tallies.items())
        ]

    def format(self) -> str:
        def pct(x):
            return "     -  " if x is None else f"{x:8.1%}"

        lines = ["examples taught  frames  symbol found  accuracy     wrong  said '?'"]
        for r in self.rows():
            lines.append(f"{r['taught']:>15}  {r['frames']:>6}  {r['found']:>12.1%}  {pct(r['accuracy'])}  "
                         f"{pct(r['wrong'])}  {pct(r['unknown'])}")
        return "\n".join(lines)


class TruthTeacher:
    """Teach the first k shots of each class from the ground truth, score every other frame that shows a card,
    and say one line per round."""

    def __init__(self, camera, num_classes: int, k: int, say: Callable[[str], None]):
        if camera.params.classes > num_classes:
            raise EdgemetaError(
                f"the synthetic session has {camera.params.classes} classes but the model only {num_classes}: "
                f"use synthetic://omniglot?classes={num_classes} or a bigger model"
            )
        self.camera, self.k, self.say = camera, int(k), say
        self.curve = LearningCurve()
        self.taught_shots: set[int] = set()
        self.round, self.taught, self.tally = None, [], Tally()  # this round: examples taught per frame, outcomes

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
        outcome = shown(obs, truth.label)
        self.curve.add(n, outcome)
        if self.round is not None and truth.class_shot != self.round:
            self.flush()
        self.round = truth.class_shot
        self.taught.append(n)
        if n > 0:
            self.tally.add(outcome)

    def flush(self) -> None:
        """One line for the round that just ended (every class shown once)."""
        if not self.taught:
            return
        low, high = min(self.taught), max(self.taught)
        taught = f"{low}" if low == high else f"{low}-{high}"
        t = self.tally
        if t.found:
            seen = (f"{t.share(RIGHT):.1%} right, {t.share(WRONG):.1%} wrong, {t.share(UNKNOWN):.1%} '?' "
                    f"({t.found} frames of taught classes)")
        else:
            seen = "no frame of a taught class"
        self.say(f"round {self.round + 1}: {taught} examples taught per class: {seen}")
        self.taught, self.tally = [], Tally()
