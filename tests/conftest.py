"""Shared fixtures; hardware-dependent markers skip with a reason where the hardware is missing."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

# One thread per test process: CI and dev boxes have 2 cores, and several thread pools spinning
# against each other (torch's OpenMP, onnxruntime's) slow a contended machine down by 10x or more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # runtime-only installs test without torch
    pass

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EDGEMETA_DATA", REPO.parent / "shared" / "data" / "omniglot"))


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def pytest_collection_modifyitems(config, items):
    reasons = {
        "gpu": None if _has_cuda() else "no CUDA GPU visible to torch",
        "trt": None if importlib.util.find_spec("tensorrt") else "TensorRT not installed (pip install edgemeta[trt] on a GPU device)",
        "camera": None if Path("/dev/video0").exists() else "no camera at /dev/video0",
        "gui": None if _has_display() else "no display and no Xvfb (apt-get install xvfb)",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "images_background.zip").exists() and not (DATA / "images_background").exists():
        pytest.skip(f"Omniglot not found at {DATA}; set EDGEMETA_DATA")
    return DATA


@pytest.fixture(scope="session")
def omniglot(data_dir):
    from edgemeta.runtime.omniglot import load_omniglot

    return load_omniglot(data_dir)


# A tiny MANN, meta-trained for real (about 150 optimizer steps, tens of seconds on one core):
# small enough for the suite, trained enough to learn new classes clearly above chance.
TINY_MODEL = dict(arch="mann", image_size=12, num_classes=3, encoder="flat", controller=32, memory_slots=16,
                  memory_width=16, read_heads=1)
TINY_TRAIN = dict(model="tiny", ways=(3, 3), instances=5, episodes=150 * 16, batch_size=16, lr=5e-3, lr_min_ratio=1.0,
                  val_every=150, val_episodes=100, ckpt_every=50, threads=1, augment=False, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, data_dir) -> Path:
    """Run directory of the tiny trained learner (last.pt, best.pt, metrics.jsonl)."""
    from edgemeta.models import ModelConfig
    from edgemeta.training.loop import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_run")
    train(ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN, data=str(data_dir)), out, progress=False, log=lambda *a: None)
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run, tmp_path_factory) -> Path:
    """The tiny trained learner exported to ONNX (image_size 12, 3 classes)."""
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint
    from edgemeta.export.onnx_export import export_step
    from edgemeta.runtime.preprocess import PREPROCESS_ID

    ckpt = load_checkpoint(tiny_run / "last.pt")
    path = tmp_path_factory.mktemp("tiny_onnx") / "learner.onnx"
    meta = dict(name="tiny", task="omniglot", preprocess=PREPROCESS_ID,
                config={"model": ckpt["model_config"], "train": ckpt["train_config"]}, eval={}, episode_steps=15)
    return export_step(learner_from_checkpoint(ckpt), path, meta)


def taught_accuracy(learner, images, ways: int, rounds: int, queries: int, shots: int = 2, seed: int = 4) -> float:
    """Runtime learning-works: each round teaches `shots` drawings each of `ways` held-out characters
    (in shuffled order) to a reset learner, then asks it to name `queries` other drawings of each.
    images: (characters, 20, S, S). Returns the fraction named right."""
    import numpy as np

    rng = np.random.default_rng(seed)
    right = total = 0
    for _ in range(rounds):
        learner.reset()
        classes = rng.choice(len(images), ways, replace=False)
        drawings = [rng.permutation(20) for _ in classes]
        lessons = [(c, k) for k in range(shots) for c in range(ways)]
        rng.shuffle(lessons)
        for c, k in lessons:
            learner.teach(images[classes[c], drawings[c][k]], c)
        for c in range(ways):
            for k in range(shots, shots + queries):
                right += int(learner.predict(images[classes[c], drawings[c][k]]).label[0] == c)
                total += 1
    return right / total
