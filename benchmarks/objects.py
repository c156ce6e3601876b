"""The objects learner live: one-shot accuracy on untaught frames of synthetic://objects sessions and the headless
loop's frames/s, next to the default learner on synthetic://omniglot in the same run.

    python benchmarks/objects.py [--sessions 5] [--threads 1]

Each session (seeds 0..N-1, 5 classes, 10 shots of 10 frames each, 640x480) is taught the first shot of each class
by its ground truth (as `edgemeta demo --headless --shots-to-teach 1`), then every later frame of a taught class
is scored: right, wrong or '?' (below the demo's confidence threshold). The loop draws the overlay on every frame;
the synthetic camera renders the frames in the capture thread, so frames/s include rendering. Targets (issue 17):
>= 95% right on untaught frames, >= 100 frames/s.
"""
from __future__ import annotations

import argparse
import statistics
import time

URIS = {"objects": "synthetic://objects?seed={seed}", "default": "synthetic://omniglot?seed={seed}"}


def one_session(model: str, uri: str, threads: int) -> dict:
    from edgemeta.runtime.camera.sources import VideoSource
    from edgemeta.runtime.camera.scoring import RIGHT, WRONG
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner

    with Learner.load(model, threads=threads) as learner:
        core = DemoCore(learner)
        with FrameFeed(VideoSource(uri), core.prepare, background=True) as feed:
            t = time.perf_counter()
            result = run_headless(feed, core, shots_to_teach=1, overlay=True, progress=False, echo=lambda _: None)
            wall = time.perf_counter() - t
    tally = result.curve.tallies[1]
    return {"right": tally.share(RIGHT), "wrong": tally.share(WRONG), "frames": tally.frames,
            "fps": result.frames / wall, "step_ms": 1e3 * result.seconds["step"] / max(result.frames, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the learner step")
    args = ap.parse_args(argv)

    from edgemeta.runtime.demo.core import configure_opencv

    configure_opencv()
    for model, uri in URIS.items():
        runs = [one_session(model, uri.format(seed=seed), args.threads) for seed in range(args.sessions)]
        right = sum(r["right"] * r["frames"] for r in runs) / sum(r["frames"] for r in runs)
        wrong = sum(r["wrong"] * r["frames"] for r in runs) / sum(r["frames"] for r in runs)
        by_session = ", ".join(f"{100 * r['right']:.0f}" for r in runs)
        print(f"{model:<8} {uri.split('?')[0]:<20} {args.sessions} sessions, 1 shot taught per class: "
              f"{100 * right:.1f}% of {sum(r['frames'] for r in runs)} untaught frames right, {100 * wrong:.1f}% wrong "
              f"(by session: {by_session}); loop "
              f"{statistics.median(r['fps'] for r in runs):.0f} frames/s median, step "
              f"{statistics.median(r['step_ms'] for r in runs):.2f} ms per frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
