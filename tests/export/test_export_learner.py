"""export_learner: a user's own step module to the same checked export as `edgemeta export`, and one line per mistake."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgemeta import EdgemetaError
from edgemeta.export import export_learner
from edgemeta.runtime.learner import Learner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "custom_learner"))
from prototype_learner import PrototypeLearner  # noqa: E402

S, C = 12, 4


def test_a_user_module_exports_to_the_contract_and_runs_in_the_runtime(tmp_path):
    torch.manual_seed(0)
    report = export_learner(PrototypeLearner(C, S), tmp_path / "out", image_size=S, num_classes=C, episode_steps=20,
                            log=lambda line: None)
    out = tmp_path / "out"
    assert {"learner.onnx", "README.md", "export.json"} <= {p.name for p in out.iterdir()}
    assert report["module"] == "prototype_learner.PrototypeLearner"
    assert all(r["passed"] for r in report["parity"].values()) and report["readiness"]["ok"]
    meta = report["metadata"]
    assert meta["name"] == "PrototypeLearner" and [s["name"] for s in meta["state"]] == ["sums", "counts", "previous"]
    assert json.loads((out / "export.json").read_text())["metadata"]["model_id"] == meta["model_id"]
    assert "| `sums_out` | out | [B, 4, 32] | float32 |" in (out / "README.md").read_text()
    with Learner.load(out / "learner.onnx") as learner:
        a, b = np.zeros((S, S), np.float32), np.zeros((S, S), np.float32)
        a[:, :4], b[:, -4:] = 1.0, 1.0
        learner.teach(a, 0)
        learner.teach(b, 1)
        # a prototype learner is right from the first shot, trained or not: the nearest class mean
        assert int(learner.predict(a).label[0]) == 0 and int(learner.predict(b).label[0]) == 1


class Rank(nn.Module):  # feeds the image straight into a Linear: wrong rank for [B, 1, S, S]
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(S * S, C)

    def state_shapes(self):
        return {"h": (C,)}

    def step(self, image, prev_label, state):
        return self.fc(image), None, {"h": state["h"]}


class Missing(Rank):
    def step(self, image, prev_label, state):
        return self.fc(image.flatten(1)), None, {}


class Misshaped(Rank):
    def step(self, image, prev_label, state):
        return self.fc(image.flatten(1)), None, {"h": state["h"][:, :2]}


class NotZeroInitialisable(Rank):
    def step(self, image, prev_label, state):
        h = state["h"] / state["h"].norm(dim=1, keepdim=True)  # 0 / 0 from zero state
        return self.fc(image.flatten(1)) + h, None, {"h": h}


class OneHotInside(Rank):
    def step(self, image, prev_label, state):
        logits = self.fc(image.flatten(1))
        h = F.one_hot(logits.argmax(1), C).float()  # ONNX OneHot: ruled out by the TensorRT check
        return logits, None, {"h": h}


@pytest.mark.parametrize("module, message", [
    (Rank(), r"Rank.step failed on image \[2, 1, 12, 12\], prev_label \[2, 4\] and zero state: RuntimeError"),
    (Missing(), r"Missing.step's next state lacks 'h'"),
    (Misshaped(), r"Misshaped.step: next state h has shape \[2, 2\]; expected \[2, 4\]"),
    (NotZeroInitialisable(), r"NotZeroInitialisable: logits is not finite after one step from zero state; all-zero state must be a fresh learner"),
    (OneHotInside(), r"learner.onnx is not TensorRT-ready: .*OneHot"),
])
def test_each_mistake_is_one_line_and_writes_nothing(tmp_path, module, message):
    with pytest.raises(EdgemetaError, match=message) as e:
        export_learner(module, tmp_path / "out", image_size=S, num_classes=C, log=lambda line: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
