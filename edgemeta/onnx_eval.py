"""Evaluate an exported learner (learner.onnx, an int8 or fp16 variant, a shipped name) on episodes:
the accuracy of what a device actually runs, through ONNX Runtime, with the same episodes and the
same accuracy-by-instance code as a PyTorch checkpoint."""
from __future__ import annotations

import json
from types import SimpleNamespace

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
        from edgemeta.export.parity import EpisodeInputs, run_episodes

        def step(feeds):
            return dict(zip(self.outputs, self.session.run(None, feeds)))

        # the export's parity loop: fresh state, every output state fed back as the next input
        inputs = EpisodeInputs(images.cpu().numpy(), None, prev_labels.cpu().numpy(), "evaluation episodes")
        trace = run_episodes(step, self.state_shapes, inputs)
        # accuracy_by_instance applies a sigmoid to novelty logits; the graph outputs probabilities
        nov = torch.logit(torch.from_numpy(trace.novelty[..., 0]), eps=1e-7) if trace.novelty is not None else None
        return torch.from_numpy(trace.logits), nov, trace.state
