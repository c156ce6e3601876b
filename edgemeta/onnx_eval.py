"""Evaluate an exported learner (learner.onnx, an int8 or fp16 variant, a shipped name) on episodes:
the accuracy of what a device actually runs, through ONNX Runtime, with the same episodes and the
same accuracy-by-instance code as a PyTorch checkpoint."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import torch

from edgemeta.runtime import contract


class OnnxUnroller:
    """Stands in for a StepLearner in `accuracy_by_instance`: `unroll` runs the ONNX step T times,
    all episodes of a batch side by side, state carried from each step to the next."""

    def __init__(self, path, threads: int = 1):
        from edgemeta.runtime.ort_backend import open_session

        self.path = path
        self.session = open_session(path, ["CPUExecutionProvider"], threads)
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map[contract.METADATA_KEY])
        self.metadata = meta
        self.cfg = SimpleNamespace(num_classes=int(meta["num_classes"]), image_size=int(meta["input_size"]))
        self.state_shapes = {s["name"]: tuple(s["shape"]) for s in meta["state"]}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def eval(self):
        return self

    def unroll(self, images: torch.Tensor, prev_labels: torch.Tensor):
        x, prev = images.cpu().numpy(), prev_labels.cpu().numpy()
        b, t = x.shape[:2]
        state = {n: np.zeros((b, *s), np.float32) for n, s in self.state_shapes.items()}
        logits, novelty = [], []
        for i in range(t):
            out = dict(zip(self.outputs, self.session.run(None, {contract.IMAGE: x[:, i], contract.PREV_LABEL: prev[:, i], **state})))
            logits.append(out[contract.LOGITS])
            if contract.NOVELTY in out:
                novelty.append(out[contract.NOVELTY])
            state = {n: out[contract.state_out(n)] for n in self.state_shapes}
        # accuracy_by_instance applies a sigmoid to novelty logits; the graph outputs probabilities
        nov = torch.logit(torch.from_numpy(np.concatenate(novelty, axis=1)), eps=1e-7) if novelty else None
        return torch.from_numpy(np.stack(logits, axis=1)), nov, state
