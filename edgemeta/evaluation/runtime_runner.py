"""An exported learner as an `EpisodeRunner`: the runtime's `Learner` (ONNX Runtime or the native C
step), taught the episodes step by step exactly as a device is taught. Needs no torch."""
from __future__ import annotations

import numpy as np

from edgemeta.data.episodes import Episodes


class RuntimeEpisodes:
    """All episodes of a batch as that many streams of one `Learner`, each step taught with its label.
    One Learner per batch size, loaded once (the native backend quantizes its weights at load).

    path: a learner.onnx (or a variant) or a shipped name; backend: "ort" or "native"; threads: CPU
    threads for ONNX Runtime; precision: the native backend's "int8" or "fp32".
    """

    def __init__(self, path, backend: str = "ort", threads: int = 1, precision: str | None = None):
        self.path, self.backend, self.threads, self.precision = path, backend, threads, precision
        self._learners: dict = {}
        probe = self._learner(1)
        self.metadata = probe.metadata
        self.num_classes = probe.num_classes
        self.image_size = probe.input_size

    def _learner(self, batch: int):
        from edgemeta.runtime.learner import Learner

        learner = self._learners.get(batch)
        if learner is None:
            # ONNX Runtime on the CPU: the accuracy of the file itself, whatever GPU this machine has
            providers = ["CPUExecutionProvider"] if self.backend == "ort" else None
            learner = self._learners[batch] = Learner.load(self.path, backend=self.backend, providers=providers,
                                                           threads=self.threads, batch=batch, precision=self.precision)
        return learner

    def run(self, episodes: Episodes) -> tuple[np.ndarray, np.ndarray | None]:
        batch, steps = episodes.labels.shape
        learner = self._learner(batch)
        learner.reset()
        predicted = np.empty((batch, steps), np.int64)
        p_new = np.empty((batch, steps), np.float32) if learner.has_novelty else None
        for t in range(steps):
            out = learner.teach(episodes.images[:, t], episodes.labels[:, t])  # what it predicted before the label
            predicted[:, t] = out.label
            if p_new is not None:
                p_new[:, t] = out.novelty
        return predicted, p_new

    def close(self) -> None:
        for learner in self._learners.values():
            learner.close()
        self._learners.clear()
