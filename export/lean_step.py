"""The MANN step rewritten for deployment: the same function as `MANNLearner.step`, in fewer, larger ops.

A traced `MANNLearner.step` is a faithful copy of the training code: about 130 ONNX nodes, 77 after
ONNX Runtime's own fusions. At batch 1 on a CPU each node costs about half a microsecond to dispatch
whatever it computes, so the node count, not the arithmetic, is a large part of a step. This module
computes the identical function (the export parity check proves it, step by step over whole
episodes) with the training-time structure folded away:

- one LSTM matrix product: the controller's input and recurrent weights side by side, applied to
  [features, prev_label, h, read] (training splits them to project all T inputs in one product);
- gate rows reordered to (i, f, o | g), so one Sigmoid and one Tanh cover all four gates;
- the output and novelty heads stacked into one matrix product;
- the smallest usages from TopK(largest=0) directly, not from TopK of the negated usage;
- cosine similarity as dot / sqrt((|k|^2 + eps)(|m|^2 + eps)), which is exactly
  (k / sqrt(|k|^2 + eps)) . (m / sqrt(|m|^2 + eps)), without normalising every memory row first;
- write weights as lu + g (w_r - lu), usage from one sum over read + write weights.

Every op stays in the TensorRT-safe set of the contract (no OneHot/ScatterND/NonZero, TopK with a
constant K). Weights are plain MatMul + Add (not Gemm) so that a weight-only int8 pass can find them.
"""
from __future__ import annotations

import torch
from torch import nn

from edgemeta.models.mann import EPS, MANNLearner


class LeanMANNStep(nn.Module):
    """`StepGraph`'s interface (image, prev_label, *state) -> (logits, *state_out[, novelty]) for a MANN."""

    def __init__(self, learner: MANNLearner):
        super().__init__()
        if not isinstance(learner, MANNLearner):
            raise TypeError("LeanMANNStep rewrites MANNLearner steps only")
        cfg = learner.cfg
        self.cfg = cfg
        self.names = learner.state_names
        self.encoder = learner.encoder
        self.tie_break = learner.tie_break.clone()
        self.heads_n, self.width, self.row = cfg.read_heads, cfg.memory_width, learner.row
        self.has_novelty = learner.novelty is not None
        hid = cfg.controller
        with torch.no_grad():
            ctrl = learner.controller
            w = torch.cat([ctrl.inputs.weight, ctrl.recurrent.weight], dim=1)  # [4H, F + C + H + reads]
            b = ctrl.inputs.bias.clone()
            # torch's gate order is (i, f, g, o); (i, f, o, g) puts the three sigmoid gates side by side
            order = torch.cat([torch.arange(0, 2 * hid), torch.arange(3 * hid, 4 * hid), torch.arange(2 * hid, 3 * hid)])
            self.register_buffer("w_lstm", w[order].t().contiguous())
            self.register_buffer("b_lstm", b[order].contiguous())
            self.register_buffer("w_heads", learner.heads.weight.t().contiguous())
            self.register_buffer("b_heads", learner.heads.bias.clone())
            outs_w, outs_b = [learner.out.weight], [learner.out.bias]
            if self.has_novelty:
                outs_w.append(learner.novelty.weight)
                outs_b.append(learner.novelty.bias)
            self.register_buffer("w_out", torch.cat(outs_w).t().contiguous())
            self.register_buffer("b_out", torch.cat(outs_b).contiguous())
        self.hidden = hid

    def forward(self, image, prev_label, *state):
        s = dict(zip(self.names, state))
        cfg, heads, w, hid = self.cfg, self.heads_n, self.width, self.hidden
        features = self.encoder(image)

        gates = torch.cat([features, prev_label, s["h"], s["read"]], dim=1) @ self.w_lstm + self.b_lstm
        sig, g = gates.split([3 * hid, hid], dim=1)
        i, f, o = torch.sigmoid(sig).chunk(3, dim=1)
        c = f * s["c"] + i * torch.tanh(g)
        h = o * torch.tanh(c)

        p = (torch.cat([h, features], dim=1) @ self.w_heads + self.b_heads).reshape(-1, heads, w + 2)
        key_raw, gate_raw, beta_raw = p.split([w, 1, 1], dim=2)
        keys = torch.tanh(key_raw)  # [B, H, W]
        gate = torch.sigmoid(gate_raw)  # [B, H, 1]
        beta = 1.0 + nn.functional.softplus(beta_raw)

        usage = s["usage"] + self.tie_break
        smallest = torch.topk(usage, heads, dim=1, largest=False).values  # ascending
        least_used = (usage.unsqueeze(1) == smallest.unsqueeze(2)).to(usage.dtype)  # [B, H, N]
        write_w = least_used + gate * (s["read_weights"] - least_used)

        if cfg.label_memory:
            content = torch.cat([s["keys"], prev_label.unsqueeze(1).expand(-1, heads, -1)], dim=2)
        else:
            content = keys
        keep = 1.0 - least_used[:, 0, :].unsqueeze(2)
        memory = s["memory"] * keep + torch.bmm(write_w.transpose(1, 2), content)  # [B, N, row]

        mem_keys = memory[..., :w]
        dot = torch.bmm(keys, mem_keys.transpose(1, 2))  # [B, H, N]
        k2 = (keys * keys).sum(-1, keepdim=True) + EPS  # [B, H, 1]
        m2 = (mem_keys * mem_keys).sum(-1).unsqueeze(1) + EPS  # [B, 1, N]
        read_w = torch.softmax(beta * dot / torch.sqrt(k2 * m2), dim=-1)
        read = torch.bmm(read_w, memory).flatten(1)

        new_usage = cfg.gamma * s["usage"] + (read_w + write_w).sum(1)
        out = torch.cat([h, read], dim=1) @ self.w_out + self.b_out
        nxt = {"h": h, "c": c, "memory": memory, "read": read, "read_weights": read_w, "usage": new_usage}
        if cfg.label_memory:
            nxt["keys"] = keys
        outs = [out[:, : cfg.num_classes]] + [nxt[n] for n in self.names]
        if self.has_novelty:
            outs.append(torch.sigmoid(out[:, cfg.num_classes :]))
        return tuple(outs)
