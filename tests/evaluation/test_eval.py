"""`edgemeta eval`: one evaluator over any EpisodeRunner; where its files go; exported learners need no torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgemeta.cli import main
from edgemeta.data.episodes import EpisodeSampler
from edgemeta.evaluation.accuracy import accuracy_by_instance

EVAL = ["--episodes", "20", "--no-plot"]


class ScriptedRunner:
    """Predicts the right label from the 2nd instance on and a wrong one at the 1st; novelty 0.9 on 1st sightings."""

    num_classes, image_size = 5, 8

    def run(self, episodes):
        first = episodes.instance == 1
        predicted = np.where(first, (episodes.labels + 1) % self.num_classes, episodes.labels)
        return predicted, np.where(first, 0.9, 0.2).astype(np.float32)


def test_accuracy_by_instance_reads_predictions_and_novelty_probabilities():
    images = np.zeros((10, 20, 8, 8), np.float32)
    result = accuracy_by_instance(ScriptedRunner(), images, ways=5, instances=4, episodes=30, batch=7)
    assert result["accuracy"] == [0.0, 100.0, 100.0, 100.0]
    assert result["novelty"] == {"first_instance_mean": 0.9, "later_instances_mean": 0.2, "accuracy_at_0.5": 100.0}


def test_torch_and_runtime_runners_agree_on_the_same_episodes(tiny_onnx, tiny_run):
    from edgemeta.evaluation.runtime_runner import RuntimeEpisodes
    from edgemeta.evaluation.torch_runner import TorchEpisodes
    from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint

    torch_runner = TorchEpisodes(learner_from_checkpoint(load_checkpoint(tiny_run / "last.pt")))
    runtime_runner = RuntimeEpisodes(tiny_onnx)
    assert (runtime_runner.num_classes, runtime_runner.image_size) == (torch_runner.num_classes, torch_runner.image_size)
    rng = np.random.default_rng(3)
    images = (rng.random((6, 20, 12, 12)) < 0.2).astype(np.float32)
    ep = EpisodeSampler(images, 3, 3, instances=5).sample(4, rng)
    (p_torch, n_torch), (p_rt, n_rt) = torch_runner.run(ep), runtime_runner.run(ep)
    assert p_torch.shape == p_rt.shape == (4, 15) and np.array_equal(p_torch, p_rt)
    assert n_torch is None and n_rt is None  # the tiny learner has no novelty head


def test_eval_files_go_beside_an_onnx_file_and_into_the_current_directory_for_a_shipped_name(
        tiny_onnx, tmp_path, data_dir, monkeypatch, capsys):
    args = ["--data", str(data_dir), "--ways", "3", "--instances", "5", *EVAL]
    onnx_dir = tmp_path / "export"
    onnx_dir.mkdir()
    onnx_path = onnx_dir / "learner.onnx"
    onnx_path.write_bytes(tiny_onnx.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["eval", str(onnx_path), *args]) == 0
    assert (onnx_dir / "eval.json").is_file() and not (work / "eval.json").exists()
    assert main(["eval", "mann", *args]) == 0
    assert json.loads((work / "eval.json").read_text())["learner"].endswith("mann.onnx")
    assert main(["eval", "mann", *args, "--out", str(tmp_path / "chosen")]) == 0
    assert (tmp_path / "chosen" / "eval.json").is_file()
    capsys.readouterr()
    assert main(["eval", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "[the checkpoint's folder; for a .onnx file its folder; for a shipped name the current directory]" in help_text


@pytest.mark.slow
def test_eval_of_a_checkpoint_writes_beside_it(tiny_run, tmp_path, data_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((tiny_run / "last.pt").read_bytes())
    assert main(["eval", str(run / "last.pt"), "--data", str(data_dir), "--ways", "3", "--instances", "5", *EVAL]) == 0
    assert json.loads((run / "eval.json").read_text())["checkpoint"] == str(run / "last.pt")


def test_eval_of_a_shipped_learner_needs_no_torch(tmp_path, data_dir):
    # torch (and matplotlib: the runtime-only install has neither) blocked: the table and eval.json still come
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['matplotlib'] = None\n"
        "from edgemeta.cli import main\n"
        f"rc = main(['eval', 'mann', '--data', {str(data_dir)!r}, '--episodes', '20', '--out', {str(tmp_path)!r}])\n"
        "banned = sorted(m for m in sys.modules if m.startswith(('torch', 'edgemeta.models', 'edgemeta.training', "
        "'edgemeta.export')) and sys.modules[m] is not None)\n"
        "assert not banned, banned\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EDGEMETA_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "edgemeta (ours)" in proc.stdout and "no eval.png: the plot needs matplotlib" in proc.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"][-1] > 90


def test_eval_of_a_checkpoint_without_torch_is_one_line(tiny_run, tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgemeta.cli import main\n"
            f"sys.exit(main(['eval', {str(tiny_run / 'last.pt')!r}, '--out', {str(tmp_path)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pip install 'edgemeta[train]'" in proc.stderr
