"""A PyTorch learner as an `EpisodeRunner`: each batch of episodes in one `unroll`."""
from __future__ import annotations

import numpy as np
import torch

from edgemeta.data.episodes import Episodes, episodes_to_tensors


class TorchEpisodes:
    """Runs `learner` (a StepLearner) on `device`, without gradients, in eval mode."""

    def __init__(self, learner, device="cpu"):
        self.learner = learner
        self.device = device
        self.num_classes = learner.cfg.num_classes
        self.image_size = learner.cfg.image_size

    @torch.no_grad()
    def run(self, episodes: Episodes) -> tuple[np.ndarray, np.ndarray | None]:
        self.learner.eval()
        images, prev, _ = episodes_to_tensors(episodes, self.num_classes, self.device)
        logits, novelty, _ = self.learner.unroll(images, prev)
        # the learner's novelty head gives a logit; the evaluator reads probabilities
        p_new = None if novelty is None else torch.sigmoid(novelty).cpu().numpy()
        return logits.argmax(-1).cpu().numpy(), p_new
