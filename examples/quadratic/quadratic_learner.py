"""The quadratic-task learner: edgemeta's LSTM controller with a linear read-out of f(x_t).

One explicit-state step, as edgemeta's learners have: x [B, 2] and prev_target = f(x_{t-1}) [B, 1]
in, the prediction [B, 1] and the next state (h, c; all zeros is a fresh learner) out.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgemeta.models.lstm import LSTMController
from edgemeta.models.step_learner import ExplicitState


class QuadraticLearner(ExplicitState, nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.hidden = hidden
        self.controller = LSTMController(3, 0, hidden)
        self.out = nn.Linear(hidden, 1)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"h": (self.hidden,), "c": (self.hidden,)}

    def _core(self, x_proj, state):
        h, c = self.controller(x_proj, state["h"], state["c"])
        return self.out(h), {"h": h, "c": c}

    def step(self, x: torch.Tensor, prev_target: torch.Tensor, state: dict[str, torch.Tensor]):
        """x [B, 2], prev_target [B, 1] -> (prediction [B, 1], next state)."""
        return self._core(self.controller.project(torch.cat([x, prev_target], dim=1)), state)

    def unroll(self, x: torch.Tensor, prev_target: torch.Tensor):
        """x [B, T, 2], prev_target [B, T, 1] from a fresh state -> (predictions [B, T, 1], final state)."""
        x_proj = self.controller.project(torch.cat([x, prev_target], dim=2))  # all T steps in one matmul
        state = self.zero_state(x.shape[0], x.device)
        preds = []
        for t in range(x.shape[1]):
            p, state = self._core(x_proj[:, t], state)
            preds.append(p)
        return torch.stack(preds, dim=1), state


def episode_tensors(ep, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """QuadraticEpisodes -> x [B, T, 2], prev_target [B, T, 1], y [B, T] on `device`."""
    return (torch.from_numpy(ep.x).to(device), torch.from_numpy(ep.prev_target).unsqueeze(-1).to(device),
            torch.from_numpy(ep.y).to(device))


@torch.no_grad()
def predict(learner: QuadraticLearner, ep) -> np.ndarray:
    """(B, T) predictions of f(x_t) over whole episodes."""
    x, prev, _ = episode_tensors(ep, next(learner.parameters()).device)
    return learner.eval().unroll(x, prev)[0][..., 0].cpu().numpy()
