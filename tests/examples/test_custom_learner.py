"""The custom-learner example end to end, as docs/own_learner.md runs it: a generated image folder, the
user's PrototypeLearner trained with `edgemeta train --model FILE:CLASS`, evaluated, exported, loaded by
Learner.load, taught and asked, and run in the headless demo."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path


from edgemeta.cli import main
from edgemeta.runtime.learner import Learner

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "own_learner.md"


def doc_commands() -> list[str]:
    """The commands of the doc's walkthrough, in order (lines starting with `edgemeta ` or `python ` in its
    ```bash blocks)."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith(("edgemeta ", "python "))]


def test_the_doc_walkthrough_trains_evaluates_exports_and_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    commands = doc_commands()
    assert [c.split()[:2] for c in commands] == [
        ["python", "examples/custom_learner/make_folder.py"], ["edgemeta", "data"], ["edgemeta", "train"],
        ["edgemeta", "eval"], ["edgemeta", "export"], ["edgemeta", "demo"]]
    for command in commands:
        args = shlex.split(command)
        if args[0] == "python":
            subprocess.run([sys.executable, *args[1:]], check=True, capture_output=True)
            continue
        if args[1] == "train":
            args += ["--threads", "1"]  # the test machine's share of the CPUs
        assert main(args[1:]) == 0, (command, capsys.readouterr().err)
    out = capsys.readouterr().out
    # the prototype learner learns the folder's classes from one example each: well above chance (20%)
    ours = next(line for line in out.splitlines() if line.startswith("edgemeta (ours)")).split()[2:]
    assert float(ours[1]) > 60, out  # second instance
    assert "parity onnxruntime (CPU), state carried" in out and "processed" in out
    with Learner.load(tmp_path / "exports" / "proto" / "learner.onnx") as learner:
        from edgemeta.data.image_folder import load_image_folder

        folder = load_image_folder(tmp_path / "my-images")
        images = folder.class_images(folder.split()["test"][:3], 20)  # (3 classes, 12, 20, 20)
        for label in range(3):
            learner.teach(images[label, 0], label)
        right = sum(int(learner.predict(images[c, k]).label[0]) == c for c in range(3) for k in range(1, 6))
        assert right >= 12, right  # of 15
