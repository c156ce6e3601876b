"""Evaluate an exported learner (learner.onnx, an int8 or fp16 variant, a shipped name) on episodes:
the accuracy of what a device actually runs, through ONNX Runtime or the runtime's native C step,
with the same episodes and the same accuracy-by-instance code as a PyTorch checkpoint."""
from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from edgemeta.runtime import contract


class OnnxUnroller:
    """Stands in for a StepLearner in `accuracy_by_instance`: `unroll` runs the ONNX step T times,
    all episodes of a batch side by side, state carried from each step to the next."""

    def __init__(self, path, threads: int = 1):
        from edgemeta.runtime.backends.ort import open_session

        self.session = open_session(path, ["CPUExecutionProvider"], threads)
        self._describe(path, self.session.get_modelmeta().custom_metadata_map[contract.METADATA_KEY],
                       [o.name for o in self.session.get_outputs()])

    def _describe(self, path, metadata_json: str, outputs: list[str]) -> None:
        self.path = path
        meta = json.loads(metadata_json)
        self.metadata = meta
        self.cfg = SimpleNamespace(num_classes=int(meta["num_classes"]), image_size=int(meta["input_size"]))
        self.state_shapes = {s["name"]: tuple(s["shape"]) for s in meta["state"]}
        self.outputs = outputs

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


class NativeUnroller(OnnxUnroller):
    """The same for the runtime's native backend (one fused C step; runtime/backends/native/backend.py): all
    episodes of a batch as that many independent streams, each step committed. One backend per batch
    size, made once (loading reads the file and quantizes the weights)."""

    def __init__(self, path, precision: str = "int8"):
        self.path, self.precision = path, precision
        self._backends: dict[int, object] = {}
        probe = self._open(1)
        self._describe(path, probe.metadata_json, [o.name for o in probe.outputs])

    def _open(self, batch: int):
        from edgemeta.runtime.backends.native.backend import NativeBackend

        return NativeBackend(self.path, batch=batch, precision=self.precision)

    def unroll(self, images: torch.Tensor, prev_labels: torch.Tensor):
        import numpy as np

        batch, steps = prev_labels.shape[:2]
        has_novelty = contract.NOVELTY in self.outputs
        backend = self._backends.get(batch)
        if backend is None:
            backend = self._backends[batch] = self._open(batch)
            backend.bind(self.state_shapes, self.cfg.num_classes, self.cfg.image_size, has_novelty)
        backend.reset()
        x, prev = images.cpu().numpy(), prev_labels.cpu().numpy()
        logits, novelty = [], []
        for t in range(steps):
            backend.image[...] = x[:, t]
            backend.prev_label[...] = prev[:, t]
            backend.run()
            backend.commit()
            logits.append(backend.logits.copy())
            if has_novelty:
                novelty.append(backend.novelty[:, 0].copy())
        # the kernel writes novelty as a probability, as the graph does
        nov = torch.logit(torch.from_numpy(np.stack(novelty, 1)), eps=1e-7) if has_novelty else None
        return torch.from_numpy(np.stack(logits, 1)), nov, backend.read_state()
