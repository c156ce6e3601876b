"""The quadratic-task learner: one explicit-state step, and meta-learning that really works."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemeta.data.quadratic import sample_episodes
from edgemeta.quadratic import (
    QuadraticConfig, QuadraticLearner, QuadraticModelConfig, episode_tensors, evaluate_quadratic, quadratic_table,
    settled_index, train_quadratic,
)




def test_step_by_step_equals_unroll_and_zero_state_is_fresh():
    torch.manual_seed(0)
    learner = QuadraticLearner(QuadraticModelConfig(hidden=8)).eval()
    assert learner.state_names == ("h", "c")
    state = learner.zero_state(3)
    assert {n: tuple(t.shape) for n, t in state.items()} == {"h": (3, 8), "c": (3, 8)}
    x, prev, _ = episode_tensors(sample_episodes(3, 12, np.random.default_rng(0)), "cpu")
    with torch.no_grad():
        unrolled, final = learner.unroll(x, prev)
        steps = []
        for t in range(12):
            p, state = learner.step(x[:, t], prev[:, t], state)
            assert p.shape == (3, 1)
            steps.append(p)
    torch.testing.assert_close(torch.stack(steps, 1), unrolled)
    torch.testing.assert_close(state["c"], final["c"])
    # two unrolls from the zero state agree: nothing leaks between episodes
    with torch.no_grad():
        torch.testing.assert_close(learner.unroll(x, prev)[0], unrolled)


@pytest.mark.slow  # about 10 s on an idle core
def test_learning_works(tmp_path):
    """A small LSTM meta-trained for real for a few seconds predicts fresh functions far better, late in
    the episode, than the running mean of the targets it has seen (the best a learner that ignores x can do)."""
    cfg = QuadraticConfig(episodes=16 * 600, batch_size=16, lr=2e-2, seed=0, device="cpu", steps=20, hidden=32,
                          val_every=600, val_episodes=200, ckpt_every=600, eval_episodes=0)
    train_quadratic(cfg, tmp_path, progress=False, log=lambda *a: None)
    learner = QuadraticLearner(cfg.model_config())
    learner.load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True)["model"])
    result = evaluate_quadratic(learner, 500, 20, np.random.default_rng(123))
    late = slice(10, 20)  # examples 11..20
    lstm, mean, oracle = (float(np.mean(result[k][late])) for k in ("nmse", "mean_baseline", "oracle"))
    print(quadratic_table(result))
    assert lstm < 0.6 * mean, (lstm, mean)
    assert oracle < 1e-6 < lstm  # sanity: the oracle is exact there, the LSTM is not
    # example 1 (nothing seen yet) cannot be predicted by anyone: no better than predicting 0
    assert result["nmse"][0] > 0.8


def test_settled_index_is_where_the_error_stays_below_the_threshold():
    nmse = [0.9, 0.2, 0.04, 0.06, 0.03, 0.02]
    assert settled_index(nmse, 0.05) == 5  # dips below at 3 but comes back above at 4
    assert settled_index(nmse, 0.1) == 3
    assert settled_index(nmse, 1.0) == 1
    assert settled_index(nmse, 0.01) is None
