"""When the demo says "?" instead of naming a class: below a confidence, or above a novelty.

The confidence is the learner's probability for the best class taught so far, among all its outputs: after one
taught shot a camera-trained learner is right but unsure on some later views of its class, so the confidence
bar stays low. The novelty head is what refuses a class never taught; a higher novelty bar names a few more
later views right and refuses fewer strangers. A learner without a novelty head (the paper's MANN) says "new"
only by spreading its probability, so its confidence bar stays higher. benchmarks/symbol_distance.py measures
both sides (docs/benchmarks.md); `edgemeta demo --threshold` and `--novelty-threshold` move them.
"""
from __future__ import annotations

from typing import Optional

THRESHOLD = 0.3  # "?" when the best taught class has less probability than this (learners with a novelty head)
THRESHOLD_WITHOUT_NOVELTY = 0.5  # ... and for a learner without one, whose confidence is its only way to say "new"
NOVELTY_THRESHOLD = 0.5  # "?" when the learner's novelty head (where it has one) says "new" above this


def default_threshold(has_novelty: bool) -> float:
    return THRESHOLD if has_novelty else THRESHOLD_WITHOUT_NOVELTY


def says_unknown(confidence: float, novelty: Optional[float], threshold: float = THRESHOLD,
                 novelty_threshold: float = NOVELTY_THRESHOLD) -> bool:
    return confidence < threshold or (novelty is not None and novelty > novelty_threshold)
