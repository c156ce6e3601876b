"""examples/quadratic: the learner's step equals its unroll, meta-learning works, the script trains,
tabulates and exports a step that ONNX Runtime runs as PyTorch does, and a failed parity writes nothing."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quadratic"
sys.path.insert(0, str(EXAMPLE))
import train_quadratic  # noqa: E402
from quadratic_learner import QuadraticLearner, episode_tensors, predict  # noqa: E402
from quadratic_task import nmse_table, sample_episodes  # noqa: E402


def test_step_by_step_equals_unroll_and_zero_state_is_fresh():
    torch.manual_seed(0)
    learner = QuadraticLearner(hidden=8).eval()
    assert learner.state_names == ("h", "c")
    state = learner.zero_state(3)
    x, prev, _ = episode_tensors(sample_episodes(3, 12, np.random.default_rng(0)))
    with torch.no_grad():
        unrolled, final = learner.unroll(x, prev)
        steps = []
        for t in range(12):
            p, state = learner.step(x[:, t], prev[:, t], state)
            steps.append(p)
    torch.testing.assert_close(torch.stack(steps, 1), unrolled)
    torch.testing.assert_close(state["c"], final["c"])


@pytest.mark.slow  # about 10 s on an idle core
def test_learning_works():
    """A small LSTM meta-trained for a few seconds predicts fresh functions late in the episode far better
    than the running mean of the targets it has seen (the best a learner that ignores x can do)."""
    torch.manual_seed(0)
    learner = QuadraticLearner(hidden=32)
    train_quadratic.train(learner, 16 * 600, 16, 2e-2, 20, seed=0, log=lambda *a: None)
    ep = sample_episodes(500, 20, np.random.default_rng(123))
    result = nmse_table(predict(learner, ep), ep)
    late = slice(10, 20)  # examples 11..20
    lstm, mean, oracle = (float(np.mean(result[k][late])) for k in ("nmse", "mean_baseline", "oracle"))
    assert lstm < 0.6 * mean, (lstm, mean)
    assert oracle < 1e-6 < lstm  # the oracle is exact there, the LSTM is not
    assert result["nmse"][0] > 0.8  # example 1 (nothing seen yet): no better than predicting 0


def run_script(out: Path, *extra: str) -> int:
    return train_quadratic.main(["--out", str(out), "--episodes", "64", "--batch-size", "32", "--hidden", "12",
                                 "--eval-episodes", "50", *extra])


def test_the_script_trains_tabulates_and_exports_a_step_onnx_runtime_runs_like_pytorch(tmp_path, capsys):
    out = tmp_path / "quadratic"
    assert run_script(out) == 0
    printed = capsys.readouterr().out
    for index in (1, 2, 5, 10, 20, 30, 35, 40, 50):
        assert f"\n{index:>8} " in printed
    result = json.loads((out / "eval.json").read_text())
    assert result["index"] == list(range(1, 51)) and result["oracle"][10] < 1e-6  # exact after 6 examples
    assert result["parity"]["max_abs_diff"] <= train_quadratic.PARITY_TOL and result["parity"]["steps"] == 50

    model = onnx.load(str(out / "learner.onnx"))
    assert [i.name for i in model.graph.input] == train_quadratic.INPUTS
    assert [o.name for o in model.graph.output] == train_quadratic.OUTPUTS
    for v in list(model.graph.input) + list(model.graph.output):
        dims = v.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and all(d.dim_value > 0 for d in dims[1:]), v.name  # only batch is dynamic

    saved = torch.load(out / "model.pt", weights_only=True)
    learner = QuadraticLearner(saved["options"]["hidden"])
    learner.load_state_dict(saved["model"])
    sess = ort.InferenceSession(str(out / "learner.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # batch sizes the export never traced
        ep = sample_episodes(batch, 50, np.random.default_rng(batch))
        state = {"h": np.zeros((batch, 12), np.float32), "c": np.zeros((batch, 12), np.float32)}
        got = []
        for t in range(50):
            pred, h, c = sess.run(None, {"x": ep.x[:, t], "prev_target": ep.prev_target[:, t, None], **state})
            got.append(pred[:, 0])
            state = {"h": h, "c": c}
        np.testing.assert_allclose(np.stack(got, 1), predict(learner, ep), atol=1e-4, rtol=0)


def test_a_failed_parity_writes_no_learner(tmp_path, monkeypatch):
    monkeypatch.setattr(train_quadratic, "PARITY_TOL", -1.0)  # no export can pass this
    with pytest.raises(SystemExit, match="differ by"):
        run_script(tmp_path / "q")
    assert not (tmp_path / "q" / "learner.onnx").exists()
    assert not [p for p in (tmp_path / "q").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_script(tmp_path / "q", "--steps", "1")
    assert e.value.code == 2 and "--steps must be at least 2" in capsys.readouterr().err
