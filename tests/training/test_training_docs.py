"""Every `edgemeta train` command shown in docs/training.md is accepted as written (flags, values, presets)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def train_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", DOC.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "train" in words and "edgemeta" in words and words.index("train") == words.index("edgemeta") + 1:
                commands.append(words[words.index("train"):])
    return commands


def test_the_doc_shows_train_commands():
    assert len(train_commands()) >= 4


@pytest.mark.parametrize("argv", train_commands(), ids=" ".join)
def test_train_command_in_the_doc_is_accepted(argv, monkeypatch, tmp_path):
    import edgemeta.training.loop
    from edgemeta.cli import main

    seen = []
    monkeypatch.setattr(edgemeta.training.loop, "train", lambda model_cfg, cfg, out, resume=False, overwrite=False: seen.append(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    assert len(seen) == 1
