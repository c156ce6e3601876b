"""Encoder pretraining: it teaches a conv encoder to separate characters it never saw, and `train` runs it once."""
from __future__ import annotations

import pytest
import torch

from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import load_checkpoint
from edgemeta.runtime.omniglot import split_classes
from edgemeta.models import ModelConfig, build_learner
from edgemeta.training.pretrain import one_shot_accuracy, pretrain_encoder
from edgemeta.training.loop import TrainConfig, train

from conftest import TINY_MODEL, TINY_TRAIN

SMALL_CONV = dict(arch="mann", image_size=16, num_classes=3, encoder="conv", conv_channels=(8, 16), embedding=32,
                  embedding_norm=True, controller=32, memory_slots=16, memory_width=16, read_heads=1)


@pytest.fixture(scope="module")
def images16(omniglot):
    split = split_classes()
    images = omniglot.images(16)
    return images[split["train"][:120]], images[split["validation"]]


def test_pretraining_separates_held_out_characters(images16):
    train_images, val_images = images16
    torch.manual_seed(0)
    encoder = build_learner(ModelConfig(**SMALL_CONV)).encoder
    before = one_shot_accuracy(encoder, val_images, torch.device("cpu"), seed=5)
    result = pretrain_encoder(encoder, train_images, val_images, epochs=2, seed=0, device=torch.device("cpu"),
                              batch_size=64, progress=False, log=lambda *a: None)
    after = one_shot_accuracy(encoder, val_images, torch.device("cpu"), seed=5)
    # 5-way: chance is 20%; a random CNN already groups drawings by their ink (~60%), a trained one far better
    assert after > before + 8, (before, after, result)
    assert result["val_one_shot"][-1] == pytest.approx(one_shot_accuracy(encoder, val_images, torch.device("cpu"), seed=1))
    assert len(result["val_one_shot"]) == 2 and result["loss"] > 0


def test_pretraining_is_seeded(images16):
    train_images, val_images = images16
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = build_learner(ModelConfig(**SMALL_CONV)).encoder
        pretrain_encoder(encoder, train_images[:20], val_images[:10], epochs=1, seed=3, device=torch.device("cpu"),
                         batch_size=64, progress=False, log=lambda *a: None)
        weights.append(encoder.proj.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


@pytest.mark.slow
def test_train_pretrains_once_and_resume_skips_it(tmp_path, data_dir):
    cfg = ModelConfig(**SMALL_CONV)
    kw = {**TINY_TRAIN, "episodes": 2 * 16, "val_every": 1000, "ckpt_every": 1, "pretrain_epochs": 1,
          "encoder_lr_scale": 0.1, "data": str(data_dir)}
    lines: list[str] = []
    train(cfg, TrainConfig(**{**kw, "episodes": 1 * 16}), tmp_path, progress=False, log=lines.append)
    assert sum("pretrain epoch 1/1" in line for line in lines) == 1
    ckpt = load_checkpoint(tmp_path / "last.pt")
    groups = ckpt["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.1)  # the encoder's own rate
    lines.clear()
    train(cfg, TrainConfig(**kw), tmp_path, resume=True, progress=False, log=lines.append)
    assert not any("pretrain epoch" in line for line in lines)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_pretraining_needs_a_conv_encoder(tmp_path, data_dir):
    kw = {**TINY_TRAIN, "episodes": 16, "pretrain_epochs": 1, "data": str(data_dir)}
    with pytest.raises(EdgemetaError, match="trains a conv encoder"):
        train(ModelConfig(**TINY_MODEL), TrainConfig(**kw), tmp_path / "run", progress=False, log=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_embedding_norm_needs_a_conv_encoder():
    with pytest.raises(EdgemetaError, match="encoder='conv'"):
        ModelConfig(**{**TINY_MODEL, "embedding_norm": True})


def test_a_zero_encoder_rate_freezes_the_pretrained_encoder(tmp_path, data_dir, monkeypatch):
    import edgemeta.training.pretrain as pretrain

    calls = []

    def fake_pretrain(encoder, *args, **kwargs):  # stands in for the minute of real pretraining
        calls.append([p.requires_grad for p in encoder.parameters()])
        with torch.no_grad():
            encoder.proj.weight.add_(1.0)
        return {"epochs": 1, "loss": 1.0, "val_one_shot": [50.0]}

    monkeypatch.setattr(pretrain, "pretrain_encoder", fake_pretrain)
    cfg = ModelConfig(**SMALL_CONV)
    kw = {**TINY_TRAIN, "episodes": 2 * 16, "val_every": 1000, "pretrain_epochs": 1, "encoder_lr_scale": 0.0,
          "data": str(data_dir)}
    train(cfg, TrainConfig(**kw), tmp_path, progress=False, log=lambda *a: None)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert len(calls) == 1 and len(ckpt["optimizer"]["param_groups"]) == 1
    first = load_checkpoint(tmp_path / "last.pt")["model"]
    # the encoder is exactly what pretraining left; the rest of the learner trained
    torch.manual_seed(TINY_TRAIN["seed"])
    fresh = build_learner(cfg).state_dict()
    torch.testing.assert_close(first["encoder.proj.weight"], fresh["encoder.proj.weight"] + 1.0)
    assert not torch.equal(first["out.weight"], fresh["out.weight"])
