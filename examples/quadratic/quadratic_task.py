"""The quadratic task of Hochreiter et al. 2001 / Younger et al. 2001: learn a new function every episode.

Each episode draws a fresh function

    f(x1, x2) = a1 x1^2 + a2 x2^2 + a3 x1 x2 + a4 x1 + a5 x2 + a6,   a_i ~ U[-1, 1],

and a sequence of inputs x_t ~ U[-1, 1]^2. At step t the learner sees (x_t, f(x_{t-1})), 0 for
the target at t = 0, and must predict f(x_t): it can only do well by working out the coefficients
from the targets that arrive one step late.

Also here, in numpy so that evaluation needs no learner to compute them: the least-squares oracle
(the best any learner can do from the examples seen so far) and the running-mean baseline, and the
table that prints them beside the learner.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_FEATURES = 6  # x1^2, x2^2, x1 x2, x1, x2, 1

# Variance of f(x) over the whole family (coefficients and inputs independent, U[-1, 1]):
# E[f] = 0 and the cross terms vanish, so Var f = E[a^2] * sum_i E[phi_i(x)^2]
# = 1/3 * (1/5 + 1/5 + 1/9 + 1/3 + 1/3 + 1) = 98/135. Dividing by this constant (rather than by each
# episode's own variance, which is tiny for nearly flat functions) keeps the normalised MSE stable:
# predicting 0 everywhere scores 1.0.
FAMILY_VARIANCE = 98.0 / 135.0


@dataclass
class QuadraticEpisodes:
    x: np.ndarray  # (B, T, 2) float32 inputs in [-1, 1]
    y: np.ndarray  # (B, T) float32 targets f(x_t)
    coeffs: np.ndarray  # (B, 6) float32 a1..a6 in [-1, 1]

    @property
    def prev_target(self) -> np.ndarray:
        """(B, T) what the learner sees beside x_t: f(x_{t-1}), and 0 at t = 0."""
        return shift_targets(self.y)


def features(x: np.ndarray) -> np.ndarray:
    """(..., 2) inputs -> (..., 6) features [x1^2, x2^2, x1 x2, x1, x2, 1]; f = features @ coeffs."""
    x1, x2 = x[..., 0], x[..., 1]
    return np.stack([x1 * x1, x2 * x2, x1 * x2, x1, x2, np.ones_like(x1)], axis=-1)


def shift_targets(y: np.ndarray) -> np.ndarray:
    """The one-step offset of the task: position t carries y_{t-1}; 0 at t = 0 (nothing seen yet)."""
    prev = np.zeros_like(y)
    prev[:, 1:] = y[:, :-1]
    return prev


def sample_episodes(batch: int, steps: int, rng: np.random.Generator) -> QuadraticEpisodes:
    """`batch` fresh functions with `steps` inputs each, drawn from `rng` (seeded by the caller)."""
    coeffs = rng.uniform(-1.0, 1.0, size=(batch, NUM_FEATURES))
    x = rng.uniform(-1.0, 1.0, size=(batch, steps, 2))
    y = np.einsum("btf,bf->bt", features(x), coeffs)
    return QuadraticEpisodes(x.astype(np.float32), y.astype(np.float32), coeffs.astype(np.float32))


def oracle_predictions(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, T) least-squares predictions: at step t, fit the 6 coefficients on examples 0..t-1 only.

    Before 6 examples the system is underdetermined and we take the minimum-norm solution (pinv),
    which is also the posterior mean under an isotropic prior on the coefficients; with no example
    at all it predicts 0, the family's mean. From the 7th example on it is exact for noise-free data.
    """
    phi = features(np.asarray(x, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    b, t = y.shape
    pred = np.zeros((b, t))
    for k in range(1, t):
        coeffs = np.linalg.pinv(phi[:, :k]) @ y[:, :k, None]  # (B, 6, 1), one fit per episode
        pred[:, k] = (phi[:, k, None, :] @ coeffs)[:, 0, 0]
    return pred


def running_mean_predictions(y: np.ndarray) -> np.ndarray:
    """(B, T) the 'predict the mean' baseline: mean of the targets seen so far, 0 before any."""
    y = np.asarray(y, dtype=np.float64)
    prev_sum = np.cumsum(shift_targets(y), axis=1)
    count = np.arange(y.shape[1], dtype=np.float64)
    return np.divide(prev_sum, count, out=np.zeros_like(prev_sum), where=count > 0)


def nmse_by_index(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, T) predictions and targets -> (T,) MSE at each example index over FAMILY_VARIANCE."""
    err = (np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2
    return err.mean(axis=0) / FAMILY_VARIANCE


TABLE_INDICES = (1, 2, 5, 10, 20, 30, 35, 40, 50)  # example indices printed in the table (1-based)
SETTLE_THRESHOLDS = (0.1, 0.05, 0.01)  # NMSE levels at which a function counts as "learned"


def settled_index(nmse, threshold: float) -> int | None:
    """First example index (1-based) from which the NMSE stays below `threshold` to the episode's end."""
    above = [i for i, v in enumerate(nmse, start=1) if v >= threshold]
    last_above = above[-1] if above else 0
    return last_above + 1 if last_above < len(nmse) else None


def nmse_table(predictions: np.ndarray, episodes: QuadraticEpisodes) -> dict:
    """The learner's normalised MSE by example index beside the oracle's and the running mean's."""
    y = episodes.y
    nmse = nmse_by_index(predictions, y).tolist()
    return {
        "episodes": int(y.shape[0]),
        "steps": int(y.shape[1]),
        "normalisation": "MSE / Var f over the family (98/135); predicting 0 scores 1.0",
        "index": list(range(1, y.shape[1] + 1)),
        "nmse": nmse,
        "oracle": nmse_by_index(oracle_predictions(episodes.x, y), y).tolist(),
        "mean_baseline": nmse_by_index(running_mean_predictions(y), y).tolist(),
        "learned_from": {f"{th:g}": settled_index(nmse, th) for th in SETTLE_THRESHOLDS},
    }


def format_table(result: dict) -> str:
    cols = [("LSTM", "nmse"), ("oracle", "oracle"), ("mean", "mean_baseline")]
    lines = [f"normalised MSE by example index ({result['episodes']} fresh functions; {result['normalisation']})",
             f"{'example':>8}" + "".join(f"{title:>10}" for title, _ in cols)]
    for i in TABLE_INDICES:
        if i <= result["steps"]:
            lines.append(f"{i:>8}" + "".join(f"{result[key][i - 1]:>10.4f}" for _, key in cols))
    lines.append("oracle: least squares on the examples seen so far; mean: running mean of the targets seen so far")
    settled = ", ".join(f"< {th}: {'never' if k is None else f'from example {k}'}" for th, k in result["learned_from"].items())
    lines.append(f"LSTM NMSE stays {settled}")
    return "\n".join(lines)
