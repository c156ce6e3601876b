"""The demo's "?" rule: a class is named only when the learner is confident enough and, with a novelty head,
does not call the image new; the CLI's defaults are the rule's."""
from __future__ import annotations

import numpy as np
import pytest

from edgemeta.runtime.demo.core import DemoCore
from edgemeta.runtime.demo.unknown_rule import NOVELTY_THRESHOLD, THRESHOLD, THRESHOLD_WITHOUT_NOVELTY, says_unknown


@pytest.mark.parametrize("confidence, novelty, unknown", [
    (THRESHOLD + 0.01, None, False),  # confident enough, no novelty head
    (THRESHOLD - 0.01, None, True),  # too unsure
    (0.99, NOVELTY_THRESHOLD + 0.01, True),  # sure of the best class, but the novelty head calls it new
    (0.99, NOVELTY_THRESHOLD - 0.01, False),
])
def test_the_default_rule(confidence, novelty, unknown):
    assert says_unknown(confidence, novelty) is unknown


def test_the_cli_defaults_are_the_rule():
    from edgemeta.cli.demo import command

    defaults = {p.name: p.default for p in command.params}
    assert defaults["threshold"] is None  # the learner's: see the next test
    assert defaults["novelty_threshold"] == NOVELTY_THRESHOLD


@pytest.mark.parametrize("has_novelty, threshold", [(True, THRESHOLD), (False, THRESHOLD_WITHOUT_NOVELTY)])
def test_a_learner_without_a_novelty_head_keeps_a_higher_confidence_bar(has_novelty, threshold):
    learner = _Learner()
    learner.has_novelty = has_novelty
    assert DemoCore(learner).threshold == threshold
    assert DemoCore(learner, threshold=0.7).threshold == 0.7  # the user's, when given


class _Prediction:
    def __init__(self, probs, novelty):
        self.probs, self.novelty = np.asarray(probs, np.float32), np.asarray([novelty], np.float32)


class _Learner:
    """Two classes taught of four; the next prediction is whatever the test sets."""

    input_size, num_classes, counts, num_taught, metadata, has_novelty = 28, 4, [1, 1, 0, 0], 2, {}, True

    def __init__(self):
        self.next = None

    def predict(self, image):
        return self.next


@pytest.mark.parametrize("probs, novelty, pred, unknown", [
    ([0.35, 0.05, 0.3, 0.3], 0.1, 0, False),  # most probability on untaught labels, but class 0 clears the bar
    ([0.2, 0.1, 0.6, 0.1], 0.1, 0, True),  # an untaught label has the most: never named, and 0 is too unsure
    ([0.9, 0.05, 0.03, 0.02], 0.95, 0, True),  # the novelty head says new
])
def test_democore_names_only_taught_classes_and_applies_the_rule(probs, novelty, pred, unknown):
    from edgemeta.runtime.camera.frames import FrameResult

    learner = _Learner()
    core = DemoCore(learner)
    learner.next = _Prediction(probs, novelty)
    symbol = FrameResult(True, np.zeros((28, 28), np.float32), (0, 0, 1, 1), (0, 0, 1, 1), 0.1, 0.5)
    obs = core.observe(np.zeros((32, 32, 3), np.uint8), 0, symbol)
    assert obs.pred == pred and obs.unknown is unknown
