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
- label-aligned writes: the label of x_{t-1} arrives at step t, so the row written at step t is
  [k_{t-1}; y_{t-1}] (the previous key is kept in state, `keys`), and reads compare keys only. A read
  then returns the label of similar past inputs directly, instead of the LSTM having to learn to
  carry x_{t-1} over one step to bind it to its late label, and meta-training reaches the paper's
  accuracy in a small fraction of its episodes;
- a learned read sharpness beta >= 1 (as in NTMs): plain cosine softmax over 128 slots is nearly
  uniform, which slows learning a lot;
- each write head takes its own least-used slot (the paper's w^lu has the H least-used slots set),
  so two heads never write the same slot by accident;
- optionally (`key_init="embedding"`, the product `default`), keys that start as the pretrained
  embedding itself (memory as wide as the embedding; the key weights an identity on the features and
  zero on the controller), so the first reads are a cosine nearest neighbour over the episode so far,
  the strongest one-shot rule a pretrained embedding offers;
- ties in usage (all zero in a fresh learner) are broken by a tiny fixed per-slot offset, so the
  least-used set always has exactly H slots without OneHot/ScatterND (TensorRT cannot run them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgemeta.models.config import ModelConfig
from edgemeta.models.lstm import LSTMController
from edgemeta.models.step_learner import StepLearner

EPS = 1e-6  # keeps norms of the all-zero fresh memory differentiable (d sqrt(x)/dx is inf at 0)
TIE_BREAK = 1e-5  # per-slot usage offset: slot i counts as used i * TIE_BREAK more than slot 0
# key_init="embedding": keys start as tanh(KEY_SCALE * e) for the fixed-length embedding e (unit-sized
# entries on average), where tanh is still nearly linear, so cosine reads start close to the cosine
# nearest neighbour on e.
KEY_SCALE = 0.5


class MANNLearner(StepLearner):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        n, w, heads = cfg.memory_slots, cfg.memory_width, cfg.read_heads
        self.row = w + cfg.num_classes  # memory row: [key; label]
        self.controller = LSTMController(self.encoder.out_features + cfg.num_classes, heads * self.row, cfg.controller)
        # Heads see the controller state and the image features directly: keys that depend on the
        # image itself (not only through the LSTM's mixed state) make same-class images meet in memory
        # from the first updates on.
        self.heads = nn.Linear(cfg.controller + self.encoder.out_features, heads * (w + 2))
        with torch.no_grad():
            # Start with writes going to fresh (least-used) slots, not smeared over the slots just read
            # (sigmoid(-3) = 0.05), and with sharp reads (beta ~ 11): a flat softmax over 128 slots
            # returns the average of memory, which carries no signal to learn from.
            bias = self.heads.bias.view(heads, w + 2)
            bias[:, w].fill_(-3.0)
            bias[:, w + 1].fill_(10.0)
            if cfg.key_init == "embedding":
                weight = self.heads.weight.view(heads, w + 2, -1)
                weight[:, :w].zero_()
                weight[:, :w, cfg.controller:] = KEY_SCALE * torch.eye(w)
                bias[:, :w].zero_()
        self.out = nn.Linear(cfg.controller + heads * self.row, cfg.num_classes)
        self.novelty = nn.Linear(cfg.controller + heads * self.row, 1) if cfg.novelty else None
        self.register_buffer("tie_break", torch.arange(n, dtype=torch.float32) * TIE_BREAK, persistent=False)

    def state_shapes(self):
        c = self.cfg
        return {
            "h": (c.controller,),
            "c": (c.controller,),
            "memory": (c.memory_slots, self.row),
            "read": (c.read_heads * self.row,),
            "read_weights": (c.read_heads, c.memory_slots),
            "usage": (c.memory_slots,),
            "keys": (c.read_heads, c.memory_width),  # k_{t-1}, written next step with its label
        }

    def project(self, features, prev_label):
        """[controller input projection | the heads' image share]: the heads see [h, features], and
        the features part needs no state, so training computes it for all T time steps at once too."""
        hid = self.cfg.controller
        heads_x = F.linear(features, self.heads.weight[:, hid:], self.heads.bias)
        return torch.cat([super().project(features, prev_label), heads_x], dim=-1)

    def core(self, features, x_proj, prev_label, state):
        cfg = self.cfg
        heads, w, hid = cfg.read_heads, cfg.memory_width, cfg.controller
        gates_x, heads_x = x_proj.split([4 * hid, x_proj.shape[-1] - 4 * hid], dim=-1)
        h, c = self.controller(gates_x, torch.cat([state["h"], state["read"]], dim=1), state["c"])

        p = (F.linear(h, self.heads.weight[:, :hid]) + heads_x).reshape(-1, heads, w + 2)
        memory_state = lrua_access(cfg, self.tie_break, p, prev_label, state)
        out = torch.cat([h, memory_state["read"]], dim=1)
        nov = self.novelty(out) if self.novelty is not None else None
        next_state = {"h": h, "c": c, **memory_state}
        return self.out(out), nov, next_state


def lrua_access(cfg: ModelConfig, tie_break: torch.Tensor, p: torch.Tensor, prev_label: torch.Tensor,
                state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The memory half of a step, shared by training (`MANNLearner.core`) and the exported graph
    (export/mann_graph.py): head parameters p [B, H, W + 2] (key, write gate, read sharpness) ->
    the next memory, read, read_weights, usage and keys."""
    heads, w = cfg.read_heads, cfg.memory_width
    keys = torch.tanh(p[..., :w])  # [B, H, W]
    write_gate = torch.sigmoid(p[..., w : w + 1])  # [B, H, 1]
    beta = 1.0 + F.softplus(p[..., w + 1 :])  # [B, H, 1]

    # Least-used slots from the previous usage: TopK with a constant K (TensorRT-safe).
    usage = state["usage"] + tie_break
    smallest = torch.topk(usage, heads, dim=1, largest=False).values  # [B, H], ascending
    least_used = (usage.unsqueeze(1) == smallest.unsqueeze(2)).to(usage.dtype)  # [B, H, N]

    # sigmoid(a) w_r + (1 - sigmoid(a)) lu, written with one product fewer
    write_w = least_used + write_gate * (state["read_weights"] - least_used)
    # the label of the previous input has just arrived: store it beside that input's key
    content = torch.cat([state["keys"], prev_label.unsqueeze(1).expand(-1, heads, -1)], dim=2)
    keep = 1.0 - least_used[:, 0, :].unsqueeze(2)  # the least-used slot is zeroed, then written
    memory = torch.baddbmm(state["memory"] * keep, write_w.transpose(1, 2), content)  # [B, N, row]

    # Cosine similarity over the key part as dot / sqrt((|k|^2 + eps)(|m|^2 + eps)): the same
    # number as normalising keys and rows first, without a normalised copy of the whole memory
    # (an [B, N, W] tensor and its backward at every training step).
    mem_keys = memory[..., :w]
    dot = torch.bmm(keys, mem_keys.transpose(1, 2))  # [B, H, N]
    k2 = (keys * keys).sum(-1, keepdim=True) + EPS  # [B, H, 1]
    m2 = (mem_keys * mem_keys).sum(-1).unsqueeze(1) + EPS  # [B, 1, N]
    read_w = torch.softmax(beta * dot / torch.sqrt(k2 * m2), dim=-1)
    read = torch.bmm(read_w, memory).flatten(1)  # [B, H*row]

    new_usage = cfg.gamma * state["usage"] + (read_w + write_w).sum(1)
    return {"memory": memory, "read": read, "read_weights": read_w, "usage": new_usage, "keys": keys}
