"""Quadratic-task training: checkpoints, Ctrl-C, --resume, the CLI and its eval table."""
from __future__ import annotations

import json

import pytest
import torch

import edgemeta.quadratic as quadratic
from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import load_checkpoint
from edgemeta.cli import main
from edgemeta.quadratic import QuadraticConfig, train_quadratic




def tiny(**kw) -> QuadraticConfig:
    base = dict(episodes=6 * 8, batch_size=8, lr=1e-2, seed=3, device="cpu", steps=10, hidden=8,
                val_every=1000, val_episodes=20, ckpt_every=1000, eval_episodes=0)
    return QuadraticConfig(**{**base, **kw})


def quiet(*args):
    pass


def test_ctrl_c_saves_and_resume_replays_the_uninterrupted_run(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train_quadratic(tiny(), straight, progress=False, log=quiet)

    # Interrupt at step 3 exactly as Ctrl-C would: from inside the training loop.
    calls = {"n": 0}
    real_sample = quadratic.sample_episodes

    def sample_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(quadratic, "sample_episodes", sample_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_quadratic(tiny(), interrupted, progress=False, log=quiet)
    saved = load_checkpoint(interrupted / "last.pt")
    assert saved["step"] == 3 and saved["task"] == "quadratic"
    assert saved["train_config"]["steps"] == 10 and saved["model_config"]["hidden"] == 8

    monkeypatch.setattr(quadratic, "sample_episodes", real_sample)
    messages = []
    train_quadratic(tiny(), interrupted, resume=True, progress=False, log=messages.append)
    assert any("resumed" in m and "step 3/6" in m for m in messages)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(interrupted / "last.pt")
    assert a["step"] == b["step"] == 6
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=0, atol=1e-6)


def test_resume_refuses_a_different_model(tmp_path):
    train_quadratic(tiny(episodes=8), tmp_path, progress=False, log=quiet)
    with pytest.raises(EdgemetaError, match="different task or model"):
        train_quadratic(tiny(hidden=16), tmp_path, resume=True, progress=False, log=quiet)


def test_bad_options_are_one_line_errors():
    with pytest.raises(EdgemetaError, match="steps"):
        tiny(steps=1)
    with pytest.raises(EdgemetaError, match="learning rate"):
        tiny(lr=0)


def test_cli_trains_evaluates_and_writes_the_table(tmp_path, capsys):
    """The documented command (docs/quadratic.md), shortened."""
    run = tmp_path / "quadratic"
    rc = main(["train", "--task", "quadratic", "--out", str(run), "--episodes", "64", "--batch-size", "32",
               "--episode-length", "50", "--lr", "1e-2", "--threads", "1", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "mean" in out
    for index in (1, 2, 5, 10, 20, 30, 35, 40, 50):
        assert f"\n{index:>8} " in out
    result = json.loads((run / "eval.json").read_text())
    assert result["index"] == list(range(1, 51)) and len(result["nmse"]) == 50
    assert result["oracle"][10] < 1e-6  # exact after 6 examples
    best = load_checkpoint(run / "best.pt")
    assert best["task"] == "quadratic" and best["metrics"]["eval"]["nmse"] == result["nmse"]
    assert (run / "last.pt").is_file() and (run / "metrics.jsonl").is_file()


def test_unwritable_run_directory_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    rc = main(["train", "--task", "quadratic", "--out", str(tmp_path / "a-file" / "run"), "--episodes", "8"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith("error: cannot create run directory")
