"""Soak test of the live loop: a million runtime steps with constant memory and a sane state.

    python benchmarks/soak.py [--model mann] [--steps 1000000] [--segments 20] [--teach-every 10]
                              [--save-every 10000] [--threads 1] [--rss-bound-mb 16] [--seed 0]

Drives `edgemeta.runtime.Learner` the way a device does for days: mostly `predict` (no commit),
`teach` every `--teach-every`-th step (a commit), the learned state saved to a file every
`--save-every` steps. Inputs are random ink maps at the learner's size (the arithmetic, and so the
speed and the memory, do not depend on what the images show). The run is cut into segments; after
each one the state is read back and checked. Printed per segment: steps/s (wall clock and per CPU
second, which a busy machine disturbs less), RSS, the largest |value| in the state and the LRUA
usage. The run fails (exit 1) when

- RSS grows by more than --rss-bound-mb between the end of the warm-up and the end of the run;
- any logit or state value is NaN or infinite;
- a usage value is negative or a stream's usage sums to more than 2H/(1-gamma), the most that H read
  and H write heads adding weights of sum 1 per step with decay gamma can accumulate;
- a segment's CPU-time rate falls below --min-rate-ratio of the median (something slows down with time);
- the last saved state file does not load back into a fresh learner unchanged.

Teaching a million-step run far past the learner's training episodes is the point of a soak, so the
runtime's EpisodeLengthWarning is silenced here.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_STEPS = 1_000_000
POOL = 512  # distinct input images cycled through
WARMUP_STEPS = 2_000  # steps (and one save) before the RSS baseline: arenas, caches, first allocations


def rss_bytes() -> int:
    """Resident set size now (Linux /proc), else the peak so far (other systems)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Segment:
    steps: int
    wall_s: float
    cpu_s: float
    rss: int
    max_abs: float  # largest |value| in the committed state at the segment's end
    max_abs_tensor: str
    usage_max: float | None
    usage_min: float | None
    usage_sum_max: float | None  # largest per-stream sum of usage
    finite: bool

    @property
    def rate(self) -> float:
        return self.steps / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def cpu_rate(self) -> float:
        return self.steps / self.cpu_s if self.cpu_s > 0 else float("inf")


@dataclass
class SoakReport:
    model: str
    backend: str
    steps: int
    teach_every: int
    save_every: int
    taught: int = 0
    saves: int = 0
    nonfinite_logits: int = 0  # steps whose logits held NaN/inf
    rss_start: int = 0  # before the first step
    rss_warm: int = 0  # after the warm-up: the baseline for growth
    rss_end: int = 0
    rss_max: int = 0
    usage_bound: float | None = None  # 2H/(1-gamma), None for a learner without LRUA usage
    reload_identical: bool | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_warm


def usage_bound(metadata: dict) -> float | None:
    """2H/(1-gamma) for a MANN (H read and H write heads), None when the metadata does not say."""
    model = (metadata.get("config") or {}).get("model") or {}
    heads, gamma = model.get("read_heads"), model.get("gamma")
    if not isinstance(heads, int) or not isinstance(gamma, (int, float)) or not 0 < gamma < 1:
        return None
    return 2 * heads / (1 - gamma)


def _inspect(state: dict) -> tuple:
    finite = all(bool(np.isfinite(v).all()) for v in state.values())
    name, big = max(((n, float(np.abs(v).max()) if v.size else 0.0) for n, v in state.items()), key=lambda t: t[1])
    usage = state.get("usage")
    if usage is None:
        return finite, big, name, None, None, None
    return finite, big, name, float(usage.max()), float(usage.min()), float(usage.reshape(len(usage), -1).sum(1).max())


def soak(model="mann", steps: int = DEFAULT_STEPS, segments: int = 20, teach_every: int = 10, save_every: int = 10_000,
         state_path: str | os.PathLike | None = None, threads: int = 1, seed: int = 0, progress: bool = True) -> SoakReport:
    """Run the soak; returns the figures (check them with `problems`)."""
    from tqdm import tqdm

    from edgemeta.runtime import EpisodeLengthWarning, Learner

    if steps < segments or segments < 1 or teach_every < 1 or save_every < 1:
        raise ValueError("need steps >= segments >= 1, teach_every >= 1 and save_every >= 1")
    rng = np.random.default_rng(seed)
    tmpdir = None
    if state_path is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="edgemeta-soak-")
        state_path = Path(tmpdir.name) / "state.npz"
    state_path = Path(state_path)
    rss_start = rss_bytes()
    with warnings.catch_warnings(), Learner.load(model, threads=threads) as learner:
        warnings.simplefilter("ignore", EpisodeLengthWarning)
        s, c = learner.input_size, learner.num_classes
        # Ink maps of varying density, as a camera's characters vary in stroke area.
        density = rng.uniform(0.05, 0.3, size=(POOL, 1, 1))
        pool = (rng.random((POOL, s, s)) < density).astype(np.float32)
        report = SoakReport(model=str(learner.path), backend=learner.backend, steps=steps, teach_every=teach_every,
                            save_every=save_every, rss_start=rss_start, usage_bound=usage_bound(learner.metadata))

        def run(n: int, start: int) -> None:
            picks = rng.integers(0, POOL, size=n)
            labels = rng.integers(0, c, size=n)
            bad = 0
            for i in range(n):
                t = start + i + 1
                if t % teach_every == 0:
                    p = learner.teach(pool[picks[i]], int(labels[i]))
                    report.taught += 1
                else:
                    p = learner.predict(pool[picks[i]])
                if not np.isfinite(p.logits).all():
                    bad += 1
                if t % save_every == 0:
                    learner.save_state(state_path)
                    report.saves += 1
            report.nonfinite_logits += bad

        # Warm-up (not counted): allocations that happen once, then the RSS baseline.
        run(min(WARMUP_STEPS, steps), -min(WARMUP_STEPS, steps))
        learner.save_state(state_path)
        learner.reset()
        report.taught = report.saves = report.nonfinite_logits = 0
        report.rss_warm = report.rss_max = rss_bytes()

        bounds = np.linspace(0, steps, segments + 1).astype(int)
        bar = tqdm(total=steps, desc="soak", unit="step", unit_scale=True, disable=not progress, file=sys.stderr)
        try:
            for k in range(segments):
                n = int(bounds[k + 1] - bounds[k])
                w0, c0 = time.perf_counter(), time.process_time()
                run(n, int(bounds[k]))
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                finite, big, name, umax, umin, usum = _inspect(learner.state())
                rss = rss_bytes()
                report.rss_max = max(report.rss_max, rss)
                report.segments.append(Segment(n, wall, cpu, rss, big, name, umax, umin, usum, finite))
                bar.update(n)
        finally:
            bar.close()
        report.rss_end = rss_bytes()

        # What was saved last must come back exactly.
        learner.save_state(state_path)
        report.saves += 1
        saved = learner.state()
    with warnings.catch_warnings(), Learner.load(model, threads=threads) as fresh:
        warnings.simplefilter("ignore", EpisodeLengthWarning)
        fresh.load_state(state_path)
        back = fresh.state()
        report.reload_identical = all(np.array_equal(back[n], v) for n, v in saved.items())
    if tmpdir is not None:
        tmpdir.cleanup()
    return report


def problems(report: SoakReport, rss_bound_mb: float = 16.0, min_rate_ratio: float = 0.5) -> list[str]:
    """What went wrong, one line each (empty: the soak passed)."""
    out = []
    if report.rss_growth > rss_bound_mb * 2**20:
        out.append(f"RSS grew by {report.rss_growth / 2**20:.1f} MiB after the warm-up (bound {rss_bound_mb:g} MiB)")
    if report.nonfinite_logits:
        out.append(f"{report.nonfinite_logits} steps returned NaN or infinite logits")
    bad = [i + 1 for i, seg in enumerate(report.segments) if not seg.finite]
    if bad:
        out.append(f"the state held NaN or infinite values after segment(s) {bad}")
    for i, seg in enumerate(report.segments):
        if seg.usage_min is not None and seg.usage_min < 0:
            out.append(f"segment {i + 1}: negative usage {seg.usage_min:.3g}")
        if report.usage_bound is not None and seg.usage_sum_max is not None and seg.usage_sum_max > report.usage_bound * (1 + 1e-4):
            out.append(f"segment {i + 1}: usage sums to {seg.usage_sum_max:.6g} > bound {report.usage_bound:.6g}")
    rates = [seg.cpu_rate for seg in report.segments]
    if len(rates) >= 2:
        median = statistics.median(rates)
        slow = [i + 1 for i, r in enumerate(rates) if r < min_rate_ratio * median]
        if slow:
            out.append(f"segment(s) {slow} ran below {min_rate_ratio:g} x the median steps per CPU second ({median:,.0f})")
    if report.reload_identical is False:
        out.append("the last saved state did not load back identical")
    return out


def format_report(report: SoakReport, rss_bound_mb: float = 16.0) -> str:
    mib = 2**20
    lines = [
        f"soak: {Path(report.model).name} ({report.backend}), {report.steps:,} steps: predict, teach every "
        f"{report.teach_every}th ({report.taught:,} taught), state saved every {report.save_every:,} steps ({report.saves} saves)",
        f"{'segment':>7} {'steps':>9} {'steps/s':>9} {'steps/cpu-s':>12} {'RSS MiB':>8} {'max|state|':>11} {'tensor':>12} "
        f"{'max usage':>10} {'usage sum':>10}",
    ]
    for i, seg in enumerate(report.segments):
        usage = "-" if seg.usage_max is None else f"{seg.usage_max:.3f}"
        usum = "-" if seg.usage_sum_max is None else f"{seg.usage_sum_max:.3f}"
        lines.append(f"{i + 1:>7} {seg.steps:>9,} {seg.rate:>9,.0f} {seg.cpu_rate:>12,.0f} {seg.rss / mib:>8.1f} "
                     f"{seg.max_abs:>11.4g} {seg.max_abs_tensor:>12} {usage:>10} {usum:>10}")
    rates = [seg.rate for seg in report.segments]
    cpu_rates = [seg.cpu_rate for seg in report.segments]
    med, cmed = statistics.median(rates), statistics.median(cpu_rates)
    lines.append(f"steps/s: median {med:,.0f} (min {min(rates):,.0f}, max {max(rates):,.0f}); per CPU second: median "
                 f"{cmed:,.0f}, slowest segment {min(cpu_rates) / cmed:.2f} x the median")
    lines.append(f"RSS: start {report.rss_start / mib:.1f} MiB, after warm-up {report.rss_warm / mib:.1f} MiB, end "
                 f"{report.rss_end / mib:.1f} MiB, max {report.rss_max / mib:.1f} MiB (growth {report.rss_growth / mib:+.2f} MiB, "
                 f"bound {rss_bound_mb:g} MiB)")
    big = max(report.segments, key=lambda s: s.max_abs)
    finite = all(s.finite for s in report.segments) and not report.nonfinite_logits
    lines.append(f"state: {'finite at every check' if finite else 'NaN/inf seen'}; max |state| {big.max_abs:.4g} "
                 f"({big.max_abs_tensor}), at the end {report.segments[-1].max_abs:.4g} ({report.segments[-1].max_abs_tensor})")
    if report.usage_bound is not None:
        umax = max(s.usage_max for s in report.segments)
        umin = min(s.usage_min for s in report.segments)
        usum = max(s.usage_sum_max for s in report.segments)
        lines.append(f"usage: in [{umin:.3g}, {umax:.3g}], per-stream sum at most {usum:.6g} "
                     f"(bound 2H/(1-gamma) = {report.usage_bound:.6g})")
    lines.append(f"last saved state reloaded {'identical' if report.reload_identical else 'DIFFERENT'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mann", help="learner.onnx, export directory or shipped name [mann]")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--teach-every", type=int, default=10, help="every Nth step teaches (commits); the rest predict")
    ap.add_argument("--save-every", type=int, default=10_000, help="steps between state saves")
    ap.add_argument("--state", default=None, help="state file to save to [a temporary file]")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rss-bound-mb", type=float, default=16.0, help="allowed RSS growth after the warm-up")
    ap.add_argument("--min-rate-ratio", type=float, default=0.5,
                    help="slowest segment's steps per CPU second, as a fraction of the median, at least")
    args = ap.parse_args(argv)
    report = soak(args.model, args.steps, args.segments, args.teach_every, args.save_every, args.state, args.threads,
                  args.seed)
    print(format_report(report, args.rss_bound_mb))
    found = problems(report, args.rss_bound_mb, args.min_rate_ratio)
    print("verdict: " + ("ok" if not found else "FAILED: " + "; ".join(found)))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
