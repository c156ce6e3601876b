"""The code shown in docs/runtime.md runs as written (with a toy learner in place of an export)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from runtime_toy import toy_learner

DOC = Path(__file__).resolve().parents[2] / "docs" / "runtime.md"


def test_quick_start_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert 'Learner.load("export/learner.onnx")' in code
    (tmp_path / "export").mkdir()
    toy_learner(tmp_path / "export" / "learner.onnx", novelty=True)
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    scope = {name: (rng.random((8, 8)) < 0.2).astype(np.float32) for name in ("card_a", "card_b", "image")}
    exec(compile(code, str(DOC), "exec"), scope)
    assert (tmp_path / "state.npz").is_file()
    assert scope["p"].label.shape == (1,)
