"""The objects learner's export path: an RGB encoder kind in ModelConfig, RGB parity episodes, the contract
for [B, 3, S, S] learners, and one checked export (metadata, model card provenance, parity) of a small RGB
learner with random weights (no weights wheel needed)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from edgemeta import EdgemetaError  # noqa: E402
from edgemeta.models import ModelConfig, build_learner  # noqa: E402
from edgemeta.runtime import contract  # noqa: E402
from edgemeta.runtime.contract_check import ContractError, check_learner  # noqa: E402

SIZE = 32


def rgb_config(**kw) -> ModelConfig:
    base = dict(arch="mann", image_size=SIZE, num_classes=5, encoder="efficientnet_lite0", embedding=16,
                embedding_norm=True, memory_width=16, key_init="embedding", novelty=True, controller=16,
                memory_slots=16, read_heads=2)
    return ModelConfig(**{**base, **kw})


def test_the_efficientnet_encoder_takes_rgb_and_starts_keys_as_its_embedding():
    cfg = rgb_config()
    assert cfg.channels == 3 and ModelConfig().channels == 1
    torch.manual_seed(0)
    learner = build_learner(cfg).eval()
    logits, novelty, state = learner.step(torch.rand(2, 3, SIZE, SIZE), torch.zeros(2, 5), learner.zero_state(2))
    assert logits.shape == (2, 5) and novelty.shape == (2, 1)
    assert "_fc.weight" not in {k.split("backbone.")[-1] for k in learner.state_dict()}  # no ImageNet classifier


def test_rgb_parity_episodes_are_camera_views_with_labels_fed_back_late():
    from edgemeta.export.parity import episode_inputs

    inputs = episode_inputs(5, SIZE, 3, 12, channels=3)
    assert inputs.images.shape == (3, 12, 3, SIZE, SIZE) and inputs.images.dtype == np.float32
    assert 0.0 <= inputs.images.min() and inputs.images.max() <= 1.0 and inputs.images.std() > 0.05
    assert not inputs.prev_label[:, 0].any()
    assert (inputs.prev_label[:, 1:].argmax(-1) == inputs.labels[:, :-1]).all()
    assert "RGB" in inputs.source


@dataclass
class Spec:
    name: str
    shape: list
    dtype: str = "float32"


def _meta(task: str, channels: int | None) -> str:
    meta = {"format": contract.FORMAT, "name": "objects", "task": task, "num_classes": 5, "input_size": SIZE,
            "preprocess": "rgb01-area-v1" if task == "objects" else "omniglot-ink1-area-v1", "state": [{"name": "h", "shape": [4]}], "config": {}, "eval": {},
            "model_id": "0", "episode_steps": 20}
    if channels is not None:
        meta["input_channels"] = channels
    return json.dumps(meta)


def _io(channels: int):
    inputs = [Spec("image", ["batch", channels, SIZE, SIZE]), Spec("prev_label", ["batch", 5]), Spec("h", ["batch", 4])]
    return inputs, [Spec("logits", ["batch", 5]), Spec("h_out", ["batch", 4])]


def test_the_contract_takes_rgb_objects_learners_and_says_what_is_wrong_otherwise():
    spec = check_learner(*_io(3), _meta("objects", 3), 1, "objects.onnx")
    assert spec.channels == 3 and spec.input_size == SIZE
    assert check_learner(*_io(1), _meta("omniglot", None), 1, "mann.onnx").channels == 1
    with pytest.raises(ContractError, match=r"input 'image': got shape \[B, 1, 32, 32\]; expected \[B, 3, 32, 32\]"):
        check_learner(*_io(1), _meta("objects", 3), 1, "objects.onnx")
    with pytest.raises(ContractError, match="input_channels 1; expected 3"):
        check_learner(*_io(1), _meta("objects", 1), 1, "objects.onnx")
    with pytest.raises(ContractError, match="input_channels 3; expected 1"):
        check_learner(*_io(3), _meta("omniglot", 3), 1, "x.onnx")


def test_bgr_to_input_is_rgb_in_unit_range_channels_first():
    from edgemeta.runtime.preprocess import bgr_to_input

    bgr = np.zeros((64, 64, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    x = bgr_to_input(bgr, 16)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    assert np.allclose(x[0], 1.0) and np.allclose(x[1:], 0.0)


def test_an_rgb_learner_exports_checked_with_its_front_end_and_provenance(tmp_path):
    from edgemeta.export import export_checkpoint
    from edgemeta.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = rgb_config()
    provenance = [{"what": "weights", "source": "a test", "licence": "CC0"}]
    save_checkpoint(tmp_path / "best.pt", {
        "task": "objects", "model_config": cfg.to_dict(), "train_config": {"model": "objects", "episode_length": 20},
        "model": build_learner(cfg).state_dict(), "step": 1, "metrics": {}, "preprocess": "rgb01-area-v1",
        "front_end": "region", "provenance": provenance})
    lines = []
    report = export_checkpoint(tmp_path / "best.pt", tmp_path / "export", log=lines.append)
    meta = report["metadata"]
    assert (meta["task"], meta["input_channels"], meta["front_end"], meta["preprocess"]) == \
        ("objects", 3, "region", "rgb01-area-v1")
    assert meta["provenance"] == provenance
    assert report["parity"]["onnxruntime"]["passed"] and "RGB" in report["parity_source"]
    card = (tmp_path / "export" / contract.MODEL_CARD_FILE).read_text()
    assert "| weights | a test | CC0 |" in card and "front end `region`" in card


def test_an_unknown_task_is_still_refused(tmp_path):
    from edgemeta.export import export_checkpoint
    from edgemeta.training.checkpoint import save_checkpoint

    cfg = ModelConfig()
    save_checkpoint(tmp_path / "best.pt", {"task": "speech", "model_config": cfg.to_dict(),
                                           "model": build_learner(cfg).state_dict(), "step": 1})
    with pytest.raises(EdgemetaError, match="unknown task 'speech'; edgemeta exports omniglot learners and objects learners"):
        export_checkpoint(tmp_path / "best.pt", tmp_path / "export", log=lambda _: None)
