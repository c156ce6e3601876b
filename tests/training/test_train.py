"""Meta-training: learning works, checkpoints round-trip, resume is exact, bad input is refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint, save_checkpoint
from edgemeta.cli import main
from edgemeta.runtime.omniglot import split_classes
from edgemeta.evaluation.accuracy import accuracy_by_instance
from edgemeta.evaluation.torch_runner import TorchEpisodes
from edgemeta.models import ModelConfig
from edgemeta.training.loop import TrainConfig, train

from conftest import TINY_MODEL, TINY_TRAIN


@pytest.mark.slow
def test_learning_works_on_held_out_classes(tiny_run, omniglot):
    learner = learner_from_checkpoint(load_checkpoint(tiny_run / "last.pt"))
    test_images = omniglot.images(12)[split_classes()["test"]]
    result = accuracy_by_instance(TorchEpisodes(learner), test_images, ways=3, instances=5, episodes=300, seed=123)
    acc = result["accuracy"]
    # chance is 33%; a learner that only guesses "the label not used yet" gets ~47% at the 2nd instance
    # and less after. Learning from the late labels is what lifts the later instances.
    assert np.mean(acc[1:]) > 65, acc
    assert acc[0] < 60, acc  # the first instance cannot be known (beyond excluding used labels)


def test_checkpoint_round_trip(tmp_path):
    from edgemeta.models import build_learner

    cfg = ModelConfig(**TINY_MODEL)
    learner = build_learner(cfg)
    save_checkpoint(tmp_path / "c.pt", {"task": "omniglot", "model_config": cfg.to_dict(), "train_config": {},
                                        "model": learner.state_dict(), "step": 7, "metrics": {"x": 1.5}})
    ckpt = load_checkpoint(tmp_path / "c.pt")
    assert ckpt["step"] == 7 and ckpt["metrics"] == {"x": 1.5}
    again = learner_from_checkpoint(ckpt)
    for k, v in learner.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)


def test_resume_gives_the_same_weights(tmp_path, data_dir):
    cfg = ModelConfig(**TINY_MODEL)
    kw = {**TINY_TRAIN, "episodes": 8 * 16, "val_every": 1000, "ckpt_every": 4, "data": str(data_dir)}
    train(cfg, TrainConfig(**kw), tmp_path / "straight", progress=False, log=lambda *a: None)
    # the same run stopped after 4 steps, then resumed
    train(cfg, TrainConfig(**{**kw, "episodes": 4 * 16}), tmp_path / "resumed", progress=False, log=lambda *a: None)
    ckpt = load_checkpoint(tmp_path / "resumed" / "last.pt")
    ckpt["train_config"]["episodes"] = 8 * 16  # pretend it was the long run killed at step 4
    save_checkpoint(tmp_path / "resumed" / "last.pt", {k: v for k, v in ckpt.items() if k not in ("kind", "format", "path")})
    train(cfg, TrainConfig(**kw), tmp_path / "resumed", resume=True, progress=False, log=lambda *a: None)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(EdgemetaError, match="not a readable edgemeta checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(EdgemetaError, match="not an edgemeta checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "nope", "--out", "X"], "Invalid value for '--model'"),
        (["train", "--task", "quadratic", "--out", "X"], "No such option '--task'"),
        (["train", "--ways", "0", "--out", "X"], "not a number of ways"),
        (["train", "--lr", "-1", "--out", "X"], "Invalid value for '--lr'"),
        (["train", "--data", "/nonexistent/omniglot", "--out", "X", "--episodes", "1"], "does not exist"),
        (["eval", "README.md"], "not a readable edgemeta checkpoint"),
        (["train", "--model-option", "memory_width=wide", "--out", "X"], "memory_width takes a value of type int"),
        (["train", "--model-option", "colour=red", "--out", "X"], "expected NAME=VALUE with NAME one of arch,"),
        (["train", "--model-option", "read_heads=0", "--out", "X"], "read_heads must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line(args, message, tmp_path, capsys, monkeypatch):
    if args[0] == "eval":
        (tmp_path / "README.md").write_text("not a checkpoint")
        args = ["eval", str(tmp_path / "README.md")]
    else:
        args = [a.replace("X", str(tmp_path / "run")) for a in args]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert message in err, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err


def test_a_missing_dataset_is_reported_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), "--episodes", "10"]) != 0
    assert "images_background.zip" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # no empty run directory left behind


def test_resume_with_a_new_learning_rate_uses_it(tmp_path, data_dir):
    import math

    cfg = ModelConfig(**TINY_MODEL)
    kw = {**TINY_TRAIN, "episodes": 2 * 16, "val_every": 1000, "ckpt_every": 1, "lr": 1e-3, "lr_min_ratio": 0.1,
          "data": str(data_dir)}
    train(cfg, TrainConfig(**kw), tmp_path, progress=False, log=lambda *a: None)
    lines = []
    train(cfg, TrainConfig(**{**kw, "episodes": 4 * 16, "lr": 4e-3}), tmp_path, resume=True, progress=False,
          log=lines.append)
    assert any("base 0.004 from --lr (the checkpoint's run used 0.001)" in line for line in lines)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["scheduler"]["base_lrs"] == [4e-3]
    # after step 4 of a 4-step cosine: 4e-3 * lr_min_ratio
    assert math.isclose(ckpt["optimizer"]["param_groups"][0]["lr"], 4e-3 * 0.1, rel_tol=1e-6)


def test_model_options_change_the_preset():
    from edgemeta.cli.options import ModelOption

    opt = ModelOption()
    assert opt.convert("memory_width=128", None, None) == ("memory_width", 128)
    assert opt.convert("gamma=0.99", None, None) == ("gamma", 0.99)
    assert opt.convert("novelty=false", None, None) == ("novelty", False)
    assert opt.convert("conv_channels=8,16", None, None) == ("conv_channels", (8, 16))
    assert opt.convert("encoder=flat", None, None) == ("encoder", "flat")


def test_train_says_where_it_saved_at_the_end_and_when_interrupted(tmp_path, data_dir, monkeypatch):
    import edgemeta.training.compiled_step as compiled_step

    kw = {**TINY_TRAIN, "episodes": 3 * 16, "val_every": 2, "val_episodes": 4, "ckpt_every": 1, "data": str(data_dir)}
    lines: list[str] = []
    train(ModelConfig(**TINY_MODEL), TrainConfig(**kw), tmp_path / "done", progress=False, log=lines.append)
    best = load_checkpoint(tmp_path / "done" / "best.pt")["metrics"]["best_val"]
    assert lines[-2:] == [f"last checkpoint: {tmp_path / 'done' / 'last.pt'} (step 3)",
                          f"best checkpoint: {tmp_path / 'done' / 'best.pt'} (validation {best:.2f}%)"]

    stream = compiled_step.batch_stream

    def stopped_after_one(*args, **kwargs):  # Ctrl-C arrives during the second optimizer step
        for k, batch in enumerate(stream(*args, **kwargs)):
            if k == 1:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(compiled_step, "batch_stream", stopped_after_one)
    lines.clear()
    with pytest.raises(KeyboardInterrupt):
        train(ModelConfig(**TINY_MODEL), TrainConfig(**kw), tmp_path / "stopped", progress=False, log=lines.append)
    assert lines[-2:] == [f"last checkpoint: {tmp_path / 'stopped' / 'last.pt'} (step 1)",
                          f"best checkpoint: none yet ({tmp_path / 'stopped' / 'best.pt'} is written at the first validation)"]
    assert load_checkpoint(tmp_path / "stopped" / "last.pt")["step"] == 1
