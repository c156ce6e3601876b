"""Step latency of a learner: the runtime's path against a naive ONNX Runtime loop, in the same run.

What is timed, per step (one image for each of B streams, state carried to the next step):
- "runtime step": what Learner.teach runs underneath: fill the bound image and label buffers,
  run the step (an IOBinding run, or the native backend's one C call), commit (swap the state buffers);
- "Learner.teach": the whole public call (input checks, softmax, counts) on top of that;
- "naive session.run": `session.run(None, {...})` with fresh dict feeds and the outputs carried
  back in as the next state, on a session with default options but the same thread count: how
  one would drive the exported graph without this runtime.
The loops take turns every 100 steps, so a busy machine slows them alike; the report gives the
median of the per-run medians, and p90/p99 over every step.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemeta.runtime import contract


@dataclass
class Timing:
    name: str
    run_medians: list  # seconds, one per run
    samples: np.ndarray  # seconds per step, all runs
    cpu_per_step: list  # process CPU seconds per step, one per run

    @property
    def median(self) -> float:
        return float(np.median(self.run_medians))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples, q))

    def as_dict(self, batch: int) -> dict:
        return {
            "median_us": self.median * 1e6,
            "p90_us": self.percentile(90) * 1e6,
            "p99_us": self.percentile(99) * 1e6,
            "steps_per_s": 1.0 / self.median,
            "stream_steps_per_s": batch / self.median,
            "cpu_us_per_step": float(np.median(self.cpu_per_step)) * 1e6,
            "run_medians_us": [m * 1e6 for m in self.run_medians],
        }


def time_steps(loops: dict, steps: int, runs: int, warmup: int = 200, chunk: int = 100, progress=None) -> dict[str, Timing]:
    """Time each `loops[name](i)` (one step) for `runs` runs of `steps` steps.

    Within a run the loops take turns every `chunk` steps, so a burst of load from another process
    hits all of them alike instead of whichever happened to be running.
    """
    clock, cpu = time.perf_counter_ns, time.process_time
    for fn in loops.values():
        for i in range(warmup):
            fn(i)
    out = {name: Timing(name, [], np.empty(0), []) for name in loops}
    per_run = {name: [] for name in loops}
    chunk = max(1, min(chunk, steps))
    for r in range(runs):
        times = {name: np.empty(steps, np.int64) for name in loops}
        cpu_used = dict.fromkeys(loops, 0.0)
        for start in range(0, steps, chunk):
            stop = min(start + chunk, steps)
            for name, fn in loops.items():
                t = times[name]
                c0 = cpu()
                for i in range(start, stop):
                    t0 = clock()
                    fn(i)
                    t[i] = clock() - t0
                cpu_used[name] += cpu() - c0
        for name in loops:
            out[name].cpu_per_step.append(cpu_used[name] / steps)
            per_run[name].append(times[name] * 1e-9)
            out[name].run_medians.append(float(np.median(times[name])) * 1e-9)
        if progress:
            progress(1)
    for name in loops:
        out[name].samples = np.concatenate(per_run[name])
    return out


def inputs_for(learner, count: int = 64, seed: int = 0):
    """Random ink images (B, 1, S, S) and one-hot previous labels (B, C) to cycle through."""
    rng = np.random.default_rng(seed)
    b, s, c = learner.batch, learner.input_size, learner.num_classes
    images = (rng.random((count, b, 1, s, s)) < 0.1).astype(np.float32)  # sparse strokes, like ink
    labels = rng.integers(0, c, (count, b))
    return images, labels, np.eye(c, dtype=np.float32)[labels]


def runtime_step_loop(learner, images, onehots):
    """The backend path under Learner.teach: buffers filled in place, one bound run, a buffer swap."""
    be = learner._backend
    image_buf, prev_buf, run, commit = be.image, be.prev_label, be.run, be.commit
    n = len(images)

    def step(i):
        np.copyto(image_buf, images[i % n])
        np.copyto(prev_buf, onehots[i % n])
        run()
        commit()

    return step


def teach_loop(learner, images, labels):
    n = len(images)
    one = learner.batch == 1

    def step(i):
        k = i % n
        learner.teach(images[k], int(labels[k][0]) if one else labels[k])

    return step


def naive_ort_loop(path, threads: int | None, images, onehots, providers=None):
    """Plain session.run with dict feeds and the state outputs fed back: the baseline."""
    import onnxruntime as ort

    from edgemeta.runtime.backends.ort import resolve_providers

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(str(path), so, providers=resolve_providers(providers))
    b = images.shape[1]
    state_inputs = [i for i in sess.get_inputs() if i.name not in (contract.IMAGE, contract.PREV_LABEL)]
    names = [i.name for i in state_inputs]
    out_names = [o.name for o in sess.get_outputs()]
    index = {n: out_names.index(contract.state_out(n)) for n in names}
    state = {i.name: np.zeros([b, *i.shape[1:]], np.float32) for i in state_inputs}
    n = len(images)

    def step(i):
        nonlocal state
        outs = sess.run(None, {contract.IMAGE: images[i % n], contract.PREV_LABEL: onehots[i % n], **state})
        state = {name: outs[index[name]] for name in names}

    return step


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far (None where the OS does not say)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def bench_learner(learner, steps: int = 2000, runs: int = 5, naive: bool = True, threads: int | None = None,
                  providers=None, progress=None, baseline=None) -> dict:
    """Time a loaded Learner and, for ONNX Runtime, the naive loop on the same file or on `baseline`
    (another export of the same learner, e.g. the float32 file next to an int8 one). Returns a report dict."""
    images, labels, onehots = inputs_for(learner)
    loops = {"runtime step": runtime_step_loop(learner, images, onehots), "Learner.teach": teach_loop(learner, images, labels)}
    naive = naive and learner._backend.kind in ("ort", "native")  # both read learner.onnx
    baseline = Path(baseline) if baseline else Path(learner.path)
    if naive:
        loops["naive session.run"] = naive_ort_loop(baseline, threads, images, onehots, providers)
    import warnings

    from edgemeta.runtime.learner import EpisodeLengthWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EpisodeLengthWarning)  # timing, not learning: episodes do not matter
        timings = time_steps(loops, steps, runs, progress=progress)
    learner.reset()
    report = {
        "model": str(learner.metadata.get("name", "?")),
        "path": str(learner.path),
        "backend": learner.backend,
        "batch": learner.batch,
        "steps": steps,
        "runs": runs,
        "state_bytes": learner.state_nbytes,
        "state_tensors": len(learner.state_shapes),
        "timings": {name: t.as_dict(learner.batch) for name, t in timings.items()},
        "peak_rss_bytes": peak_rss_bytes(),
    }
    if naive:
        report["baseline_path"] = str(baseline)
        report["speedup_vs_naive"] = timings["naive session.run"].median / timings["runtime step"].median
    return report


def format_report(report: dict) -> str:
    lines = [
        f"edgemeta bench: {report['model']} ({report['path']})",
        f"backend: {report['backend']}, batch {report['batch']}, {report['runs']} runs x {report['steps']} steps",
        f"{'':22s}{'median':>10s}{'p90':>10s}{'p99':>10s}{'steps/s':>11s}{'cpu/step':>10s}",
    ]
    for name, t in report["timings"].items():
        lines.append(
            f"{name:22s}{t['median_us']:8.1f}us{t['p90_us']:8.1f}us{t['p99_us']:8.1f}us"
            f"{t['steps_per_s']:11,.0f}{t['cpu_us_per_step']:8.1f}us"
        )
    if "speedup_vs_naive" in report:
        on = "" if report.get("baseline_path", report["path"]) == report["path"] else f" on {Path(report['baseline_path']).name}"
        lines.append(f"runtime step vs naive session.run{on}: {report['speedup_vs_naive']:.2f}x faster (medians)")
    if report["batch"] > 1:
        first = next(iter(report["timings"].values()))
        lines.append(f"streams: {report['batch']} -> {first['stream_steps_per_s']:,.0f} stream-steps/s for the first row")
    lines.append(f"state: {report['state_bytes']:,} bytes ({report['state_tensors']} tensors, batch {report['batch']})")
    rss = report.get("peak_rss_bytes")
    lines.append(f"peak memory (RSS): {rss / 2**20:.1f} MiB" if rss else "peak memory (RSS): not available on this OS")
    return "\n".join(lines)
