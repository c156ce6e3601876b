"""Learners: MANN (LSTM + LRUA memory) and the LSTM baseline, each a single explicit-state step."""
from edgemeta.models.config import ARCHS, PRESETS, ModelConfig, preset
from edgemeta.models.learner import LSTMLearner, StepLearner
from edgemeta.models.mann import MANNLearner


def build_learner(cfg: ModelConfig) -> StepLearner:
    return {"mann": MANNLearner, "lstm": LSTMLearner}[cfg.arch](cfg)


__all__ = ["ARCHS", "PRESETS", "ModelConfig", "preset", "build_learner", "StepLearner", "MANNLearner", "LSTMLearner"]
