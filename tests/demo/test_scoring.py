"""The ground-truth scorer reports what the user saw: accuracy only on frames whose class was taught already,
"?" as "?" (whatever the top guess behind it), and "no symbol" apart."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from edgemeta.runtime.camera.scoring import LearningCurve, TruthTeacher, shown


def _obs(pred=None, unknown=False, found=True, taught=None):
    return SimpleNamespace(pred=pred, unknown=unknown, found=found, taught=taught)


def _truth(label, class_shot, shot_frame=5):
    return SimpleNamespace(card=True, label=label, class_shot=class_shot, shot_frame=shot_frame, shot=10 * class_shot + label)


def test_a_question_mark_is_a_question_mark_whatever_the_top_guess():
    assert shown(_obs(pred=1, unknown=True), 1) == "?"  # the overlay said "?": not a right answer
    assert shown(_obs(pred=None), 1) == "?"
    assert shown(_obs(pred=1), 1) == "right" and shown(_obs(pred=0), 1) == "wrong"
    assert shown(_obs(found=False), 1) == "no symbol"


def test_learning_curve_shares_are_of_the_frames_with_a_symbol():
    curve = LearningCurve()
    for taught, outcome in [(0, "?"), (0, "wrong"), (1, "right"), (1, "?"), (1, "no symbol"), (2, "right"), (2, "wrong")]:
        curve.add(taught, outcome)
    assert curve.accuracy(0) is None  # an untaught class cannot be named
    assert curve.accuracy(1) == 0.5 and curve.accuracy(2) == 0.5 and curve.accuracy(5) is None
    rows = {r["taught"]: r for r in curve.rows()}
    assert rows[1]["frames"] == 3 and rows[1]["found"] == 2 / 3 and rows[1]["unknown"] == 0.5
    assert rows[0]["wrong"] == 0.5  # naming a taught class for a card never taught is wrong
    table = curve.format()
    assert table.splitlines()[0] == "examples taught  frames  symbol found  accuracy     wrong  said '?'"
    assert "50.0%" in table


def test_round_line_counts_only_taught_classes_and_question_marks_apart():
    lines = []
    camera = SimpleNamespace(params=SimpleNamespace(classes=2), middle_frame=5)
    teacher = TruthTeacher(camera, num_classes=2, k=1, say=lines.append)
    # Round 1: class 0 is taught, class 1 not yet. Class 1's frames (the demo cannot name it) stay out of the
    # accuracy; class 0 has one right frame and one "?" whose top guess happened to be right.
    teacher.after(_truth(0, 0), _obs(taught=0), np.array([0, 0]))
    teacher.after(_truth(0, 0), _obs(pred=0), np.array([1, 0]))
    teacher.after(_truth(0, 0), _obs(pred=0, unknown=True), np.array([1, 0]))
    teacher.after(_truth(1, 0), _obs(pred=0), np.array([1, 0]))
    teacher.after(_truth(1, 0), _obs(pred=0, unknown=True), np.array([1, 0]))
    teacher.after(_truth(1, 1), _obs(pred=1), np.array([1, 1]))  # round 2 starts: round 1 is reported
    assert lines == ["round 1: 0-1 examples taught per class: 50.0% right, 0.0% wrong, 50.0% '?' (2 frames of taught classes)"]
    teacher.flush()
    assert lines[-1] == "round 2: 1 examples taught per class: 100.0% right, 0.0% wrong, 0.0% '?' (1 frames of taught classes)"
    assert teacher.curve.accuracy(1) == 2 / 3  # right on 2 of the 3 frames with a symbol at one example taught
