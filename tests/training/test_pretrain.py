"""Encoder pretraining: it teaches a conv encoder to separate characters it never saw, `train` runs it once,
and a stopped pretraining continues where it stopped."""
from __future__ import annotations

import pytest
import torch

from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import load_checkpoint
from edgemeta.runtime.omniglot import split_classes
from edgemeta.models import ModelConfig, build_learner
from edgemeta.training.pretrain import EncoderPretraining, one_shot_accuracy
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
    pretraining = EncoderPretraining(encoder, train_images, val_images, epochs=2, seed=0, device=torch.device("cpu"),
                                     batch_size=64)
    assert pretraining.run(progress=False, log=lambda *a: None) and pretraining.done
    result = pretraining.result
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
        EncoderPretraining(encoder, train_images[:20], val_images[:10], epochs=1, seed=3, device=torch.device("cpu"),
                           batch_size=64).run(progress=False, log=lambda *a: None)
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
    calls = []

    def fake_run(self, *args, **kwargs):  # stands in for the minutes of real pretraining
        calls.append([p.requires_grad for p in self.encoder.parameters()])
        with torch.no_grad():
            self.encoder.proj.weight.add_(1.0)
        self.epoch = self.epochs
        return True

    monkeypatch.setattr(EncoderPretraining, "run", fake_run)
    cfg = ModelConfig(**SMALL_CONV)
    kw = {**TINY_TRAIN, "episodes": 2 * 16, "val_every": 1000, "pretrain_epochs": 1, "encoder_lr_scale": 0.0,
          "data": str(data_dir)}
    train(cfg, TrainConfig(**kw), tmp_path, progress=False, log=lambda *a: None)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert len(calls) == 1 and all(calls[0]) and len(ckpt["optimizer"]["param_groups"]) == 1
    first = load_checkpoint(tmp_path / "last.pt")["model"]
    # the encoder is exactly what pretraining left; the rest of the learner trained
    torch.manual_seed(TINY_TRAIN["seed"])
    fresh = build_learner(cfg).state_dict()
    torch.testing.assert_close(first["encoder.proj.weight"], fresh["encoder.proj.weight"] + 1.0)
    assert not torch.equal(first["out.weight"], fresh["out.weight"])
    assert not (tmp_path / "pretrain.pt").exists()  # done: last.pt at step 0 marks it


def test_stopped_pretraining_continues_to_the_same_weights(images16, tmp_path):
    """Stopped between two batches (mid-epoch), saved through a checkpoint file (weights_only) and continued
    in a fresh process's objects: the same encoder, bit for bit, as a pretraining never stopped."""
    from edgemeta.training.checkpoint import save_checkpoint

    train_images, val_images = images16[0][:20], images16[1][:10]
    cpu, quiet = torch.device("cpu"), (lambda *a: None)

    def fresh(seed):
        torch.manual_seed(seed)
        encoder = build_learner(ModelConfig(**SMALL_CONV)).encoder
        return encoder, EncoderPretraining(encoder, train_images, val_images, epochs=2, seed=3, device=cpu, batch_size=64)

    straight_encoder, straight = fresh(0)
    assert straight.run(progress=False, log=quiet)

    encoder, stopped = fresh(0)
    batches = []
    assert not stopped.run(stop=lambda: len(batches) >= 30 or batches.append(1), progress=False, log=quiet)
    assert (stopped.epoch, stopped.position) == (1, 30 - stopped.batches_per_epoch)  # in the second epoch
    save_checkpoint(tmp_path / "p.pt", {"model_config": {}, "model": encoder.state_dict(), "step": 0,
                                        "pretrain": stopped.state_dict()})
    saved = load_checkpoint(tmp_path / "p.pt")

    encoder, resumed = fresh(1)  # other initial weights: everything must come from the file
    encoder.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["pretrain"])
    assert resumed.run(progress=False, log=quiet) and resumed.done
    for name, w in straight_encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], w), name
    assert resumed.result == straight.result


def test_stop_signals_only_raise_a_flag():
    import os
    import signal

    from edgemeta.training.loop import _stop_requested

    before = signal.getsignal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        with _stop_requested() as stopped:
            assert not stopped()
            os.kill(os.getpid(), sig)
            assert stopped()
    assert signal.getsignal(signal.SIGTERM) is before


TINY_DEFAULT = ["--model", "default", "--model-option", "image_size=16", "--model-option", "conv_channels=8,16",
                "--model-option", "embedding=32", "--model-option", "memory_width=32", "--model-option", "controller=32",
                "--model-option", "memory_slots=16", "--model-option", "read_heads=1", "--episodes", "16",
                "--batch-size", "16", "--val-every", "1000", "--pretrain-epochs", "2", "--threads", "1",
                "--device", "cpu"]


@pytest.mark.slow
def test_sigterm_during_pretraining_saves_and_resume_continues_it(tmp_path, data_dir):
    """`edgemeta train --model default`: SIGTERM in the middle of pretraining leaves OUT/pretrain.pt and
    says so; --resume continues the pretraining and ends where a run never stopped ends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def edgemeta(out, *extra, stop_after=None):
        cmd = [sys.executable, "-m", "edgemeta", "train", *TINY_DEFAULT, "--data", str(data_dir), "--out", str(out), *extra]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip())
            if stop_after and stop_after in line:
                time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=300), lines

    code, lines = edgemeta(tmp_path / "straight")
    assert code == 0, lines
    assert lines[0] == ("pretraining the encoder for 2 epochs as a character classifier before meta-training "
                        "(skip it with --pretrain-epochs 0)")
    assert lines[-2:] == [f"last checkpoint: {tmp_path / 'straight' / 'last.pt'} (step 1)",
                          f"best checkpoint: {tmp_path / 'straight' / 'best.pt'} (validation {lines[-1].split('(validation ')[1]}"]

    run = tmp_path / "stopped"
    code, lines = edgemeta(run, stop_after="pretrain epoch 1/2")
    assert code == 130, lines
    assert lines[-1].startswith(f"interrupted: pretraining saved to {run / 'pretrain.pt'} (epoch 2/2, batch "), lines
    assert lines[-1].endswith("continue with --resume. No last.pt or best.pt yet.")
    assert sorted(p.name for p in run.iterdir()) == ["pretrain.pt"]

    code, lines = edgemeta(run, "--resume")
    assert code == 0, lines
    assert lines[0].startswith(f"resumed pretraining from {run / 'pretrain.pt'} at epoch 2/2, batch "), lines
    assert lines[1].startswith("pretrain epoch 2/2")
    assert not (run / "pretrain.pt").exists()
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = load_checkpoint(run / "last.pt")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
