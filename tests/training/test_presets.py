"""One preset table: the shipped learners' configs come from it, `train` builds its options and
defaults from it, and configs read back refuse keys they do not know."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.models import ModelConfig
from edgemeta.training.config import TrainConfig
from edgemeta.training.presets import PRESETS, preset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["mann", "default"])
def test_the_shipped_learners_were_trained_with_their_presets_model(name):
    from edgemeta.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(REPO / "edgemeta" / "learners" / f"{name}.pt")
    assert ckpt["model_config"] == preset(name).model_config().to_dict()
    trained = TrainConfig.from_dict(ckpt["train_config"])
    fields = ("model", "ways", "instances", "episode_length", "pretrain_epochs", "encoder_lr_scale")
    if trained.init:  # a fine-tune of a preset-trained checkpoint (default: with camera views, docs/benchmarks.md)
        assert trained.pretrain_epochs == 0 and trained.camera_views > 0
        fields = ("model", "ways", "instances", "episode_length")
    for field in fields:
        assert getattr(trained, field) == getattr(preset(name).train, field), field


def test_presets_hand_out_fresh_validated_copies():
    cfg = preset("default").model_config(controller=64)
    assert cfg.controller == 64 and preset("default").model.controller == 200
    assert preset("mann").train_config(lr=0.5).lr == 0.5 and preset("mann").train.lr == 1e-3
    with pytest.raises(EdgemetaError, match="read_heads must be >= 1"):
        preset("mann").model_config(read_heads=0)
    with pytest.raises(EdgemetaError, match="unknown model 'nope'; valid: mann, lstm, default"):
        preset("nope")


def help_text(capsys) -> str:
    assert main(["train", "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_defaults_of_the_table(capsys):
    text = help_text(capsys)
    assert "--ways N|MIN-MAX Classes per episode: N or MIN-MAX. [preset default: mann 5, lstm 5, default 2-10]" in text
    assert "[preset default: mann 10, lstm 10, default none]" in text  # --instances
    assert "[preset default: mann none, lstm none, default 100]" in text  # --episode-length
    assert "[preset default: mann 0, lstm 0, default 12]" in text  # --pretrain-epochs
    assert "--episodes INTEGER RANGE Training episodes in all. [default: 100000; x>=1]" in text
    for name, p in PRESETS.items():
        assert p.summary in text


@pytest.mark.parametrize("argv, expected", [
    ([], preset("mann").train),
    (["--model", "default"], preset("default").train),
    (["--model", "default", "--instances", "5"], preset("default").train_config(instances=5, episode_length=None)),
    (["--episode-length", "60", "--ways", "3-5"], preset("mann").train_config(instances=None, episode_length=60,
                                                                                ways=(3, 5))),
    (["--model", "default", "--pretrain-epochs", "0", "--lr", "0.01"], preset("default").train_config(pretrain_epochs=0,
                                                                                                      lr=0.01)),
])
def test_train_takes_the_chosen_presets_values_and_the_options_given(argv, expected, tmp_path, monkeypatch):
    import edgemeta.training.loop

    seen = {}
    monkeypatch.setattr(edgemeta.training.loop, "train", lambda model_cfg, cfg, out, resume=False, overwrite=False: seen.update(
        model=model_cfg, cfg=cfg))
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    assert main(["train", "--out", str(tmp_path / "run"), *argv]) == 0
    name = argv[argv.index("--model") + 1] if "--model" in argv else "mann"
    assert seen["cfg"] == expected
    assert seen["model"] == preset(name).model


def test_instances_and_episode_length_exclude_each_other(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--instances", "5", "--episode-length", "50"]) != 0
    assert capsys.readouterr().err.strip() == "error: give --instances or --episode-length, not both"
    with pytest.raises(EdgemetaError, match="exactly one"):
        TrainConfig(episode_length=50)  # instances must be None with a fixed length


def test_configs_read_back_refuse_unknown_keys():
    stored = preset("default").model_config().to_dict()
    assert ModelConfig.from_dict(stored) == preset("default").model
    with pytest.raises(EdgemetaError) as e:
        ModelConfig.from_dict({**stored, "label_memory": True})
    assert str(e.value).startswith("model config has unknown key label_memory; valid: arch, image_size,")
    with pytest.raises(EdgemetaError, match=r"^train config has unknown keys compile_steps, steps; valid: task, model,"):
        TrainConfig.from_dict({**preset("mann").train.to_dict(), "steps": 50, "compile_steps": 0})
    assert TrainConfig.from_dict(preset("default").train.to_dict()) == preset("default").train


def test_a_checkpoint_with_an_unknown_model_key_is_one_line(tmp_path, capsys):
    import torch

    from edgemeta.models import build_learner
    from edgemeta.training.checkpoint import save_checkpoint

    cfg = ModelConfig(arch="lstm", image_size=8, num_classes=3, controller=8)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "best.pt", {"task": "omniglot", "model_config": {**cfg.to_dict(), "pixel_skip": False},
                                           "train_config": {}, "model": build_learner(cfg).state_dict(), "step": 0,
                                           "metrics": {}})
    assert main(["eval", str(tmp_path / "best.pt"), "--episodes", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'best.pt'}: model config has unknown key pixel_skip; valid: arch,"), err
    assert len(err.splitlines()) == 1
