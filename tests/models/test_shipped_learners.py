"""The shipped checkpoints (edgemeta/learners/*.pt) are the learners the shipped ONNX files run.

Each .pt is loaded as `edgemeta eval` and `edgemeta export` load it (strict configs, weights_only),
and a short episode through its torch step is compared with the shipped ONNX file under ONNX Runtime,
state carried by name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint
from edgemeta.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
TIME_STEPS = 12


@pytest.mark.parametrize("name", ["mann", "default"])
def test_shipped_checkpoint_matches_the_shipped_onnx(name):
    ort = pytest.importorskip("onnxruntime")
    ckpt = load_checkpoint(REPO / "edgemeta" / "learners" / f"{name}.pt")
    TrainConfig.from_dict(ckpt["train_config"])  # its stored training config is today's, key for key
    learner = learner_from_checkpoint(ckpt)
    session = ort.InferenceSession(str(REPO / "runtime" / "learners" / f"{name}.onnx"),
                                   providers=["CPUExecutionProvider"])
    cfg, batch = learner.cfg, 2
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(batch, TIME_STEPS, 1, cfg.image_size, cfg.image_size, generator=g) > 0.8).float()
    labels = torch.randint(0, cfg.num_classes, (batch, TIME_STEPS), generator=g)
    prev = torch.zeros(batch, TIME_STEPS, cfg.num_classes)
    prev[:, 1:] = torch.nn.functional.one_hot(labels[:, :-1], cfg.num_classes).float()

    state = learner.zero_state(batch)
    onnx_state = {k: v.numpy() for k, v in state.items()}
    assert [i.name for i in session.get_inputs()] == ["image", "prev_label", *learner.state_names]
    with torch.no_grad():
        for t in range(TIME_STEPS):
            logits, novelty, state = learner.step(images[:, t], prev[:, t], state)
            out = dict(zip([o.name for o in session.get_outputs()],
                           session.run(None, {"image": images[:, t].numpy(), "prev_label": prev[:, t].numpy(),
                                              **onnx_state})))
            onnx_state = {k: out[f"{k}_out"] for k in learner.state_names}
            np.testing.assert_allclose(out["logits"], logits.numpy(), rtol=0, atol=1e-4, err_msg=f"{name} t={t}")
            if novelty is not None:  # the graph outputs p(new), the torch step its logit
                np.testing.assert_allclose(out["novelty"], torch.sigmoid(novelty).numpy(), rtol=0, atol=1e-4)
    for k, v in state.items():
        np.testing.assert_allclose(onnx_state[k], v.numpy(), rtol=0, atol=1e-4, err_msg=f"{name} state {k}")
