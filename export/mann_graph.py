"""The MANN step rewritten for deployment: the same function as `MANNLearner.step`, in fewer, larger ops.

A traced `MANNLearner.step` is a faithful copy of the training code: about 130 ONNX nodes, 77 after
ONNX Runtime's own fusions. At batch 1 on a CPU each node costs about half a microsecond to dispatch
whatever it computes, so the node count, not the arithmetic, is a large part of a step. This module
computes the identical function (the export parity check proves it, step by step over whole
episodes) with the training-time structure folded away:

- one LSTM matrix product: the controller's input and recurrent weights side by side, applied to
  [features, prev_label, h, read] (training splits them to project all T inputs in one product);
- gate rows reordered to (i, f, o | g), so one Sigmoid and one Tanh cover all four gates;
- the output and novelty heads stacked into one matrix product.

The memory half of the step (least-used slots, write, cosine read, usage) is the training code
itself, `edgemeta.models.mann.lrua_access`, already written for few ops.

Every op stays in the TensorRT-safe set of the contract (no OneHot/ScatterND/NonZero, TopK with a
constant K). Weights are plain MatMul + Add (not Gemm) so that a weight-only int8 pass can find them.
"""
from __future__ import annotations

import torch
from torch import nn

from edgemeta.models.mann import MANNLearner, lrua_access


class MANNStepGraph(nn.Module):
    """`StepGraph`'s interface (image, prev_label, *state) -> (logits, *state_out[, novelty]) for a MANN."""

    def __init__(self, learner: MANNLearner):
        super().__init__()
        if not isinstance(learner, MANNLearner):
            raise TypeError("MANNStepGraph rewrites MANNLearner steps only")
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
        nxt = {"h": h, "c": c, **lrua_access(cfg, self.tie_break, p, prev_label, s)}
        out = torch.cat([h, nxt["read"]], dim=1) @ self.w_out + self.b_out
        outs = [out[:, : cfg.num_classes]] + [nxt[n] for n in self.names]
        if self.has_novelty:
            outs.append(torch.sigmoid(out[:, cfg.num_classes :]))
        return tuple(outs)
