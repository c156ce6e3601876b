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
    """Base class: encoder + recurrent core; subclasses define `state_shapes`, `core` and a `controller`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg)

    # --- one time step ---------------------------------------------------------------------
    def core(self, features: torch.Tensor, x_proj: torch.Tensor, prev_label: torch.Tensor, state: dict[str, torch.Tensor]):
        """features = encoder(image); x_proj = self.project(features, prev_label) ->
        (logits [B, C], novelty logit [B, 1] or None, next state)."""
        raise NotImplementedError

    def project(self, features: torch.Tensor, prev_label: torch.Tensor) -> torch.Tensor:
        """The part of a time step that depends on its inputs only, not on state: in training, one large
        matrix product over all T time steps instead of T small ones (`unroll`). Subclasses may add to it."""
        return self.controller.project(torch.cat([features, prev_label], dim=-1))

    def step(self, image: torch.Tensor, prev_label: torch.Tensor, state: dict[str, torch.Tensor]):
        features = self.encoder(image)
        return self.core(features, self.project(features, prev_label), prev_label, state)

    # --- a whole episode -------------------------------------------------------------------
    def unroll(self, images: torch.Tensor, prev_labels: torch.Tensor, state: dict[str, torch.Tensor] | None = None,
               core=None, span=None):
        """images [B, T, 1, S, S], prev_labels [B, T, C] -> logits [B, T, C], novelty [B, T] or None, state.

        The encoder runs on all T images at once (it has no state), then the core steps through time
        (`core`: a stand-in for `self.core` with the same signature, e.g. a compiled one; see
        training/compiled_step.py). `span`: a stand-in for `run_span` that takes `span.length` time
        steps per call (a compiled one); time is cut into spans of that length.
        Time steps take their inputs from `unbind`/`split` rather than `x[:, i]`: the backward of T
        indexing ops writes T zero-filled [B, T, ...] gradients (quadratic in T), while unbind's
        backward is one stack. Same values, same gradients, bit for bit.
        """
        b, t = images.shape[:2]
        feats = self.encoder(images.reshape(b * t, *images.shape[2:])).reshape(b, t, -1)
        x_proj = self.project(feats, prev_labels)
        state = self.zero_state(b, images.device) if state is None else state
        if span is None:
            return self.run_span(feats, x_proj, prev_labels, state, core)
        logits, novelty = [], []
        for f, xp, pl in zip(*(x.split(span.length, dim=1) for x in (feats, x_proj, prev_labels))):
            lg, nv, state = span(f, xp, pl, state)
            logits.append(lg)
            if nv is not None:
                novelty.append(nv)
        return torch.cat(logits, dim=1), torch.cat(novelty, dim=1) if novelty else None, state

    def run_span(self, feats: torch.Tensor, x_proj: torch.Tensor, prev_labels: torch.Tensor,
                 state: dict[str, torch.Tensor], core=None):
        """Steps through K time steps: feats [B, K, F], x_proj [B, K, P], prev_labels [B, K, C]
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
