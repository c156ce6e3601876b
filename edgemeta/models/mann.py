"""MANN (Santoro et al. 2016): LSTM controller + external memory with Least Recently Used Access.

One step, for B episodes, N slots of width W, H heads:
  controller  h, c = LSTM([features, prev_label, previous reads], h, c)
  heads       key k_h = tanh(.), write gate alpha_h, read sharpness beta_h, all from h
  least used  lu_h = one-hot of the h-th smallest previous usage (TopK with constant K = H)
  write       w^w_h = sigmoid(alpha_h) * w^r_{t-1,h} + (1 - sigmoid(alpha_h)) * lu_h
              the least-used slot (lu_0) is zeroed, then M += sum_h w^w_h k_h^T
  read        w^r_h = softmax(beta_h * cosine(k_h, M)), r_h = w^r_h M
  usage       u = gamma * u + sum_h w^r_h + sum_h w^w_h
  output      logits = Linear([h, r])

Departures from the paper, each for a reason:
- a learned read sharpness beta >= 1 (as in NTMs): plain cosine softmax over 128 slots is nearly
  uniform, which slows learning a lot;
- each write head takes its own least-used slot (the paper's w^lu has the H least-used slots set),
  so two heads never write the same slot by accident;
- ties in usage (all zero in a fresh learner) are broken by a tiny fixed per-slot offset, so the
  least-used set always has exactly H slots without OneHot/ScatterND (TensorRT cannot run them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgemeta.models.config import ModelConfig
from edgemeta.models.learner import LSTMController, StepLearner

EPS = 1e-6  # keeps norms of the all-zero fresh memory differentiable (d sqrt(x)/dx is inf at 0)
TIE_BREAK = 1e-5  # per-slot usage offset: slot i counts as used i * TIE_BREAK more than slot 0


class MANNLearner(StepLearner):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        n, w, heads = cfg.memory_slots, cfg.memory_width, cfg.read_heads
        self.controller = LSTMController(self.encoder.out_features + cfg.num_classes, heads * w, cfg.controller)
        self.heads = nn.Linear(cfg.controller, heads * (w + 2))
        self.out = nn.Linear(cfg.controller + heads * w, cfg.num_classes)
        self.novelty = nn.Linear(cfg.controller + heads * w, 1) if cfg.novelty else None
        self.register_buffer("tie_break", torch.arange(n, dtype=torch.float32) * TIE_BREAK, persistent=False)

    def state_shapes(self):
        c = self.cfg
        return {
            "h": (c.controller,),
            "c": (c.controller,),
            "memory": (c.memory_slots, c.memory_width),
            "read": (c.read_heads * c.memory_width,),
            "read_weights": (c.read_heads, c.memory_slots),
            "usage": (c.memory_slots,),
        }

    def core(self, x_proj, state):
        cfg = self.cfg
        heads, w = cfg.read_heads, cfg.memory_width
        h, c = self.controller(x_proj, torch.cat([state["h"], state["read"]], dim=1), state["c"])

        p = self.heads(h).reshape(-1, heads, w + 2)
        keys = torch.tanh(p[..., :w])  # [B, H, W]
        write_gate = torch.sigmoid(p[..., w : w + 1])  # [B, H, 1]
        beta = 1.0 + F.softplus(p[..., w + 1 :])  # [B, H, 1]

        # Least-used slots from the previous usage: TopK with a constant K (TensorRT-safe).
        usage = state["usage"] + self.tie_break
        smallest = -torch.topk(-usage, heads, dim=1).values  # [B, H], ascending
        least_used = (usage.unsqueeze(1) == smallest.unsqueeze(2)).to(usage.dtype)  # [B, H, N]

        write_w = write_gate * state["read_weights"] + (1.0 - write_gate) * least_used
        memory = state["memory"] * (1.0 - least_used[:, 0, :].unsqueeze(2))
        memory = memory + torch.bmm(write_w.transpose(1, 2), keys)  # [B, N, W]

        key_n = keys / torch.sqrt((keys * keys).sum(-1, keepdim=True) + EPS)
        mem_n = memory / torch.sqrt((memory * memory).sum(-1, keepdim=True) + EPS)
        similarity = torch.bmm(key_n, mem_n.transpose(1, 2))  # [B, H, N], cosine
        read_w = torch.softmax(beta * similarity, dim=-1)
        read = torch.bmm(read_w, memory).flatten(1)  # [B, H*W]

        new_usage = cfg.gamma * state["usage"] + read_w.sum(1) + write_w.sum(1)
        out = torch.cat([h, read], dim=1)
        nov = self.novelty(out) if self.novelty is not None else None
        next_state = {"h": h, "c": c, "memory": memory, "read": read, "read_weights": read_w, "usage": new_usage}
        return self.out(out), nov, next_state
