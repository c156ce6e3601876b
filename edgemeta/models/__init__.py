"""Learners: MANN (LSTM + LRUA memory), the LSTM baseline and users' own step modules, each a single
explicit-state step.

Importing the package loads no torch (the configs and `edgemeta train --help` need none); the learners
load when built.
"""
from edgemeta.models.config import ARCHS, ModelConfig


def build_learner(cfg: ModelConfig):
    """The StepLearner `cfg` describes, freshly initialised (seed torch first for a reproducible start)."""
    from edgemeta.models.lstm import LSTMLearner
    from edgemeta.models.mann import MANNLearner

    if cfg.arch == "custom":
        from edgemeta.models.user_learner import UserLearner

        return UserLearner(cfg)

    return {"mann": MANNLearner, "lstm": LSTMLearner}[cfg.arch](cfg)


__all__ = ["ARCHS", "ModelConfig", "build_learner"]
