"""The LSTM controller every learner shares, and the paper's LSTM baseline built on it alone."""
from __future__ import annotations

import torch
from torch import nn

from edgemeta.models.config import ModelConfig
from edgemeta.models.step_learner import StepLearner


class LSTMController(nn.Module):
    """A plain LSTM cell, written out so export yields MatMul/Sigmoid/Tanh (TensorRT-friendly).

    The gate pre-activation is split in two: `inputs` (image features and previous label, which do
    not depend on the recurrence) and `recurrent` (h and anything fed back). Training projects the
    inputs of all T time steps in one large matrix product before the loop, which is much faster on
    CPU than T small ones; a single step just calls `project` first.
    """

    def __init__(self, in_features: int, feedback: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.inputs = nn.Linear(in_features, 4 * hidden)
        self.recurrent = nn.Linear(hidden + feedback, 4 * hidden, bias=False)
        with torch.no_grad():  # forget-gate bias 1: remember by default, the usual LSTM trick
            self.inputs.bias[hidden : 2 * hidden].fill_(1.0)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.inputs(x)

    def forward(self, x_proj: torch.Tensor, feedback: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x_proj = project(inputs); feedback = [h, fed-back values]."""
        i, f, g, o = (x_proj + self.recurrent(feedback)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class LSTMLearner(StepLearner):
    """The paper's LSTM baseline: controller only, logits from h."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.controller = LSTMController(self.encoder.out_features + cfg.num_classes, 0, cfg.controller)
        self.out = nn.Linear(cfg.controller, cfg.num_classes)
        self.novelty = nn.Linear(cfg.controller, 1) if cfg.novelty else None

    def state_shapes(self):
        return {"h": (self.cfg.controller,), "c": (self.cfg.controller,)}

    def core(self, features, x_proj, prev_label, state):
        h, c = self.controller(x_proj, state["h"], state["c"])
        nov = self.novelty(h) if self.novelty is not None else None
        return self.out(h), nov, {"h": h, "c": c}
