"""Training with camera views (--camera-views) and from a trained checkpoint (--init)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.training.checkpoint import load_checkpoint
from edgemeta.training.config import TrainConfig

SHIPPED = Path(__file__).resolve().parents[2] / "edgemeta" / "learners" / "default.pt"


def test_the_config_records_camera_views_and_init_only_when_chosen():
    plain = TrainConfig().to_dict()
    assert "camera_views" not in plain and "init" not in plain
    chosen = TrainConfig(camera_views=0.5, init="runs/x/best.pt")
    d = chosen.to_dict()
    assert d["camera_views"] == 0.5 and d["init"] == "runs/x/best.pt"
    assert TrainConfig.from_dict(d) == chosen


@pytest.mark.parametrize("fields, message", [
    (dict(camera_views=1.5), r"in \[0, 1\]"),
    (dict(camera_views=0.5, sampler="device"), "drop --sampler device"),
    (dict(init="a.pt", pretrain_epochs=3), "drop --pretrain-epochs"),
])
def test_bad_combinations_are_refused(fields, message):
    with pytest.raises(EdgemetaError, match=message):
        TrainConfig(**fields)


def test_a_fine_tune_starts_from_the_checkpoint_and_records_how_it_was_made(tmp_path, data_dir):
    """One step of the default learner from the shipped weights, every example a camera view: the frozen
    encoder keeps the shipped weights exactly, the rest moves, and the checkpoint says what was done."""
    out = tmp_path / "run"
    code = main(["train", "--model", "default", "--init", str(SHIPPED), "--camera-views", "1", "--data", str(data_dir),
                 "--out", str(out), "--episodes", "1", "--batch-size", "1", "--episode-length", "20",
                 "--val-every", "1", "--val-episodes", "2", "--threads", "1", "--lr", "1e-3"])
    assert code == 0
    shipped, tuned = load_checkpoint(SHIPPED), load_checkpoint(out / "last.pt")
    cfg = tuned["train_config"]
    assert cfg["camera_views"] == 1.0 and cfg["init"] == str(SHIPPED) and cfg["pretrain_epochs"] == 0
    encoder = [k for k in shipped["model"] if k.startswith("encoder.")]
    assert encoder and all(torch.equal(shipped["model"][k], tuned["model"][k]) for k in encoder)
    assert any(not torch.equal(shipped["model"][k], tuned["model"][k]) for k in shipped["model"] if k not in encoder)


def test_init_with_another_model_config_is_refused(tmp_path, data_dir, capsys):
    code = main(["train", "--model", "mann", "--init", str(SHIPPED), "--data", str(data_dir), "--out",
                 str(tmp_path / "run"), "--episodes", "1", "--threads", "1"])
    assert code != 0
    assert "different model config" in capsys.readouterr().err


def test_the_model_card_says_the_learner_saw_camera_views():
    import json

    import onnx

    from edgemeta.export.model_card import render

    learners = SHIPPED.parents[2] / "runtime" / "learners"
    report = json.loads((learners / "mann.json").read_text())["export"]
    model = onnx.load(learners / "mann.onnx")
    assert "camera views" not in render(report["metadata"], model, report)
    report["metadata"]["config"]["train"].update(camera_views=0.5, init="edgemeta/learners/default.pt")
    card = render(report["metadata"], model, report)
    assert "- trained with camera views: 50% of the examples" in card
    assert "- fine-tuned from `edgemeta/learners/default.pt`" in card
