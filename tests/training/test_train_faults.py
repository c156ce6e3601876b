"""Training survives SIGKILL: resume continues from the last checkpoint and ends with the same weights."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgemeta.training.checkpoint import load_checkpoint

SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from conftest import TINY_MODEL, TINY_TRAIN
from edgemeta.models import ModelConfig
from edgemeta.training.loop import TrainConfig, train
torch.set_num_threads(1)
cfg = TrainConfig(**{{**TINY_TRAIN, "episodes": 12 * 4, "batch_size": 4, "val_every": 1000, "ckpt_every": 1,
                     "data": {data!r}}})
train(ModelConfig(**TINY_MODEL), cfg, sys.argv[1], resume=True, progress=False, log=lambda *a: None)
"""


def run(script, out, env):
    return subprocess.Popen([sys.executable, "-c", script, str(out)], env=env)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, data_dir):
    tests = os.path.dirname(os.path.dirname(__file__))
    script = SCRIPT.format(tests=tests, data=str(data_dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    assert run(script, tmp_path / "straight", env).wait(timeout=300) == 0

    killed = tmp_path / "killed"
    proc = run(script, killed, env)
    deadline = time.time() + 120
    while not (killed / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))  # a random moment, checkpoint writes included
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = load_checkpoint(killed / "last.pt")["step"]  # never half-written: it loads
    assert run(script, killed, env).wait(timeout=300) == 0

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(killed / "last.pt")
    assert a["step"] == b["step"] == 12 and step_at_kill <= 12
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-6)
