"""The quadratic task's data: function sampler, target offset, least-squares oracle, baselines."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "quadratic"))
from quadratic_task import (  # noqa: E402
    FAMILY_VARIANCE, features, nmse_by_index, oracle_predictions, running_mean_predictions, sample_episodes,
    settled_index, shift_targets,
)


def test_coefficients_and_inputs_are_uniform_on_minus_one_one():
    ep = sample_episodes(4000, 50, np.random.default_rng(0))
    for name, v in (("coeffs", ep.coeffs), ("x", ep.x)):
        assert v.min() >= -1.0 and v.max() <= 1.0, name
        assert v.min() < -0.99 and v.max() > 0.99, name  # the whole range is used
        assert abs(v.mean()) < 0.02, name
        assert abs(v.var() - 1 / 3) < 0.01, name  # variance of U[-1, 1]
    assert ep.coeffs.shape == (4000, 6) and ep.x.shape == (4000, 50, 2) and ep.y.shape == (4000, 50)


def test_targets_are_the_episode_function_written_out():
    ep = sample_episodes(3, 7, np.random.default_rng(1))
    a = ep.coeffs[:, None, :]
    x1, x2 = ep.x[..., 0], ep.x[..., 1]
    f = a[..., 0] * x1**2 + a[..., 1] * x2**2 + a[..., 2] * x1 * x2 + a[..., 3] * x1 + a[..., 4] * x2 + a[..., 5]
    np.testing.assert_allclose(ep.y, f, atol=1e-6)


def test_prev_target_is_the_previous_target_and_zero_first():
    ep = sample_episodes(5, 12, np.random.default_rng(2))
    prev = ep.prev_target
    assert np.all(prev[:, 0] == 0)
    np.testing.assert_array_equal(prev[:, 1:], ep.y[:, :-1])
    np.testing.assert_array_equal(shift_targets(np.array([[1.0, 2.0, 3.0]])), [[0.0, 1.0, 2.0]])


def test_episodes_are_reproducible_from_the_seed():
    a = sample_episodes(4, 10, np.random.default_rng([3, 5]))
    b = sample_episodes(4, 10, np.random.default_rng([3, 5]))
    c = sample_episodes(4, 10, np.random.default_rng([3, 6]))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.coeffs, b.coeffs)
    assert not np.array_equal(a.coeffs, c.coeffs)


def test_family_variance_matches_the_sampled_family():
    ep = sample_episodes(20000, 20, np.random.default_rng(4))
    assert abs(ep.y.var() / FAMILY_VARIANCE - 1) < 0.02
    # predicting 0 (the family mean) everywhere scores about 1.0
    assert abs(nmse_by_index(np.zeros_like(ep.y), ep.y).mean() - 1) < 0.02


def test_oracle_is_exact_once_six_examples_are_seen():
    ep = sample_episodes(200, 30, np.random.default_rng(5))
    # float64 targets: the stored float32 ones carry rounding noise that a badly conditioned fit amplifies
    y = features(ep.x.astype(np.float64)) @ ep.coeffs.astype(np.float64)[:, :, None]
    y = y[..., 0]
    err = np.abs(oracle_predictions(ep.x, y) - y)
    assert err[:, 6:].max() < 1e-8  # index 7 on: fitted on >= 6 noise-free examples
    assert np.all(err[:, 0] == np.abs(y[:, 0]))  # nothing seen: predicts 0
    assert err[:, 1:6].mean(axis=0).min() > 1e-3  # underdetermined before that
    assert np.median(np.abs(oracle_predictions(ep.x, ep.y) - ep.y)[:, 6:]) < 1e-5  # float32 data: nearly exact
    nmse = nmse_by_index(oracle_predictions(ep.x, y), y)
    assert np.all(np.diff(nmse[:7]) < 0)  # more examples, better guesses


def test_oracle_uses_the_minimum_norm_fit_before_six_examples():
    ep = sample_episodes(1, 10, np.random.default_rng(6))
    phi = features(ep.x[0].astype(np.float64))
    pred = oracle_predictions(ep.x, ep.y)
    for k in range(1, 6):
        coeffs = np.linalg.lstsq(phi[:k], ep.y[0, :k].astype(np.float64), rcond=None)[0]  # min-norm for k < 6
        np.testing.assert_allclose(pred[0, k], phi[k] @ coeffs, atol=1e-9)


def test_running_mean_baseline():
    y = np.array([[2.0, 4.0, 6.0, 0.0]])
    np.testing.assert_allclose(running_mean_predictions(y), [[0.0, 2.0, 3.0, 4.0]])


def test_settled_index_is_where_the_error_stays_below_the_threshold():
    nmse = [0.9, 0.2, 0.04, 0.06, 0.03, 0.02]
    assert settled_index(nmse, 0.05) == 5  # dips below at 3 but comes back above at 4
    assert settled_index(nmse, 0.1) == 3
    assert settled_index(nmse, 1.0) == 1
    assert settled_index(nmse, 0.01) is None
