"""A short soak of the live loop (benchmarks/soak.py): constant memory, finite state, bounded usage, steady speed.

The benchmark runs a million steps of the paper-size MANN (`python benchmarks/soak.py`); here 20,000 steps
of a small untrained MANN check the same properties in a few seconds.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from edgemeta.runtime.preprocess import PREPROCESS_ID

SOAK_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
SMALL = dict(arch="mann", image_size=12, num_classes=3, controller=32, memory_slots=16, memory_width=8, read_heads=2,
             gamma=0.95)


def load_soak():
    spec = importlib.util.spec_from_file_location("edgemeta_soak", SOAK_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak():
    return load_soak()


@pytest.fixture(scope="module")
def small_mann(tmp_path_factory) -> Path:
    """An untrained small MANN: the soak tests the runtime's arithmetic and memory, not what was learned."""
    import torch

    from edgemeta.export.onnx_export import export_step
    from edgemeta.models import ModelConfig, build_learner

    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL)
    meta = dict(name="small", task="omniglot", preprocess=PREPROCESS_ID, config={"model": cfg.to_dict(), "train": {}},
                eval={}, episode_steps=15)
    return export_step(build_learner(cfg), tmp_path_factory.mktemp("soak") / "learner.onnx", meta)


def test_twenty_thousand_steps_keep_memory_state_and_speed_steady(soak, small_mann, tmp_path):
    state = tmp_path / "state.npz"
    report = soak.soak(small_mann, steps=20_000, segments=8, teach_every=4, save_every=1_000, state_path=state,
                       threads=1, seed=3, progress=False)
    print(soak.format_report(report, rss_bound_mb=8))
    assert len(report.segments) == 8 and sum(s.steps for s in report.segments) == 20_000
    assert report.taught == 5_000 and report.saves == 21 and state.is_file()
    assert report.rss_growth < 8 * 2**20, report.rss_growth  # a leak of 400 bytes per step would show
    assert report.nonfinite_logits == 0 and all(s.finite for s in report.segments)
    bound = 2 * SMALL["read_heads"] / (1 - SMALL["gamma"])
    assert report.usage_bound == pytest.approx(bound)
    for seg in report.segments:
        assert seg.usage_min >= 0 and seg.usage_sum_max <= bound * (1 + 1e-4)
    # 5,000 commits is ~100 decay times: the usage sum sits at its bound, so the check above is not vacuous
    assert report.segments[-1].usage_sum_max > 0.99 * bound
    assert report.reload_identical
    # Loose: the CPU is shared with other work; a per-step cost that grows with time would still fail it.
    assert soak.problems(report, rss_bound_mb=8, min_rate_ratio=0.25) == []


def test_the_checks_catch_leaks_nans_usage_overflow_and_slowdowns(soak):
    seg = soak.Segment(steps=1000, wall_s=0.1, cpu_s=0.1, rss=0, max_abs=1.0, max_abs_tensor="c", usage_max=2.0,
                       usage_min=0.0, usage_sum_max=10.0, finite=True)
    report = soak.SoakReport(model="m", backend="b", steps=3000, teach_every=2, save_every=100, rss_warm=100 * 2**20,
                             rss_end=100 * 2**20, usage_bound=80.0, reload_identical=True, segments=[seg, seg, seg])
    assert soak.problems(report) == []
    leaky = soak.SoakReport(**{**report.__dict__, "rss_end": 120 * 2**20})
    assert "RSS grew by 20.0 MiB" in soak.problems(leaky)[0]
    nan = soak.Segment(**{**seg.__dict__, "finite": False})
    assert "NaN or infinite values after segment(s) [2]" in soak.problems(soak.SoakReport(**{**report.__dict__, "segments": [seg, nan, seg]}))[0]
    over = soak.Segment(**{**seg.__dict__, "usage_sum_max": 81.0})
    assert "usage sums to 81 > bound 80" in soak.problems(soak.SoakReport(**{**report.__dict__, "segments": [seg, over]}))[0]
    slow = soak.Segment(**{**seg.__dict__, "cpu_s": 0.5})
    assert "segment(s) [3] ran below 0.5" in soak.problems(soak.SoakReport(**{**report.__dict__, "segments": [seg, seg, slow]}))[0]
    assert soak.problems(soak.SoakReport(**{**report.__dict__, "reload_identical": False})) == [
        "the last saved state did not load back identical"]


def test_command_line_prints_the_figures(soak, small_mann, capsys):
    """`python benchmarks/soak.py` as the docs show it, shortened."""
    code = soak.main(["--model", str(small_mann), "--steps", "2000", "--segments", "2", "--save-every", "500"])
    out = capsys.readouterr().out
    assert code == 0, out
    for figure in ("steps/s: median", "RSS: start", "max |state|", "usage: in [", "per-stream sum at most",
                   "reloaded identical", "verdict: ok"):
        assert figure in out, out
