"""The learner interface: one step with explicit, named state; training unrolls that same step.

    step(image, prev_label, state) -> outputs   (outputs: logits, optional novelty, next state)

State is a dict of float32 tensors, batch first, whose names drive export and runtime
(input `<s>`, output `<s>_out`). All-zero state is a fresh learner: every step handles
the zero memory and zero usage with epsilons and tie-breaks instead of special cases.
"""
from __future__ import annotations

import torch
from torch import nn

from edgemeta.models.config import ModelConfig
from edgemeta.models.encoder import build_encoder


class LSTMController(nn.Module):
    """A plain LSTM cell, written out so export yields MatMul/Sigmoid/Tanh (TensorRT-friendly).

    The gate pre-activation is split in two: `inputs` (image features and previous label, which do
    not depend on the recurrence) and `recurrent` (h and anything fed back). Training projects the
    inputs of all T steps in one large matrix product before the loop, which is much faster on
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


class ExplicitState:
    """Named, batch-first state; all zeros is a fresh learner. Subclasses define `state_shapes`."""

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape without the batch axis, in the pinned order used by export."""
        raise NotImplementedError

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.state_shapes())

    def zero_state(self, batch: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        device = device or next(self.parameters()).device
        return {n: torch.zeros((batch, *s), device=device) for n, s in self.state_shapes().items()}


class StepLearner(ExplicitState, nn.Module):
    """Base class: encoder + recurrent core; subclasses define `state_shapes` and `core`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)

    # --- one step --------------------------------------------------------------------------
    def core(self, features: torch.Tensor, x_proj: torch.Tensor, prev_label: torch.Tensor, state: dict[str, torch.Tensor]):
        """features = encoder(image); x_proj = self.project(features, prev_label) ->
        (logits [B, C], novelty logit [B, 1] or None, next state)."""
        raise NotImplementedError

    def project(self, features: torch.Tensor, prev_label: torch.Tensor) -> torch.Tensor:
        """The part of a step that depends on its inputs only, not on state: in training, one large
        matrix product over all T steps instead of T small ones (`unroll`). Subclasses may add to it."""
        return self.controller.project(torch.cat([features, prev_label], dim=-1))

    def step(self, image: torch.Tensor, prev_label: torch.Tensor, state: dict[str, torch.Tensor]):
        features = self.encoder(image)
        return self.core(features, self.project(features, prev_label), prev_label, state)

    # --- a whole episode -------------------------------------------------------------------
    def unroll(self, images: torch.Tensor, prev_labels: torch.Tensor, state: dict[str, torch.Tensor] | None = None,
               core=None, span=None):
        """images [B, T, 1, S, S], prev_labels [B, T, C] -> logits [B, T, C], novelty [B, T] or None, state.

        The encoder runs on all T images at once (it has no state), then the core steps through time
        (`core`: a stand-in for `self.core` with the same signature, e.g. a compiled one; see fast_loop).
        `span`: a stand-in for `run_steps` that takes several steps per call (a compiled one, whose
        graph then spans `span.steps` steps); time is cut into spans of that many steps.
        Steps take their inputs from `unbind`/`split` rather than `x[:, i]`: the backward of T indexing
        ops writes T zero-filled [B, T, ...] gradients (quadratic in T, half of a CPU training step),
        while unbind's backward is one stack. Same values, same gradients, bit for bit.
        """
        b, t = images.shape[:2]
        feats = self.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
        x_proj = self.project(feats, prev_labels)
        state = self.zero_state(b, images.device) if state is None else state
        if span is None:
            return self.run_steps(feats, x_proj, prev_labels, state, core)
        logits, novelty = [], []
        for f, xp, pl in zip(*(x.split(span.steps, dim=1) for x in (feats, x_proj, prev_labels))):
            lg, nv, state = span(f, xp, pl, state)
            logits.append(lg)
            if nv is not None:
                novelty.append(nv)
        return torch.cat(logits, dim=1), torch.cat(novelty, dim=1) if novelty else None, state

    def run_steps(self, feats: torch.Tensor, x_proj: torch.Tensor, prev_labels: torch.Tensor,
                  state: dict[str, torch.Tensor], core=None):
        """Steps through K steps of time: feats [B, K, F], x_proj [B, K, P], prev_labels [B, K, C]
        -> logits [B, K, C], novelty [B, K] or None, state."""
        core = self.core if core is None else core
        logits, novelty = [], []
        for f, xp, pl in zip(feats.unbind(1), x_proj.unbind(1), prev_labels.unbind(1)):
            lg, nv, state = core(f, xp, pl, state)
            logits.append(lg)
            if nv is not None:
                novelty.append(nv)
        nov = torch.cat(novelty, dim=1) if novelty else None
        return torch.stack(logits, dim=1), nov, state


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
