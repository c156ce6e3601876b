"""Throughput of the headless demo loop on a 640x480 video: decode, preprocess, learner step, overlay.

    python benchmarks/demo_fps.py [--model M] [--video clip.mp4] [--frames 300] [--runs 5] [--threads 1]

Without --video, a 640x480 clip of a synthetic session (synthetic://omniglot) is written to a temporary
folder first. Every run decodes the whole clip again with a fresh learner state,
teaches one frame of each class at the start (so every later frame with a symbol runs a learner step), and
draws the overlay on every frame; nothing is recorded. As in the demo, decoding and preprocessing run in
the FrameFeed's capture thread and the learner step and overlay in the loop's (--no-prefetch: all in one).
Prints the median frames per second over the runs, the CPU time per frame (wall-clock rates depend on
what else the machine runs), and the time per stage from one more run with everything in one thread, so
it is plain whether the learner step is the bottleneck. Target on a 2-core x86 machine: >= 300 frames/s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from synthetic_clip import record_session  # benchmarks/ is on sys.path: these run as scripts
from tqdm import tqdm

STAGES = ("decode", "preprocess", "step", "overlay", "output")


def make_clip(path: Path, frames: int, classes: int) -> dict[int, int]:
    """Write a synthetic session to `path`; returns {frame: label} teaching the first shot of each class."""
    fpshot = 10
    shots = max(1, -(-frames // (classes * (fpshot + 2))))
    uri = f"synthetic://omniglot?classes={classes}&shots={shots}&frames_per_shot={fpshot}&width=640&height=480"
    return record_session(path, uri, frames)[0]


def one_run(model: str, video: str, events: dict, threads: int | None, max_frames: int, prefetch: bool,
            preprocess_in_capture: bool = True):
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner
    from edgemeta.runtime.camera.sources import VideoSource

    learner = Learner.load(model, threads=threads)
    core = DemoCore(learner)
    prepare = core.prepare if prefetch and preprocess_in_capture else None  # else the loop preprocesses
    with FrameFeed(VideoSource(video), prepare, background=prefetch) as feed:
        t, loop_cpu, all_cpu = time.perf_counter(), time.thread_time(), time.process_time()
        result = run_headless(feed, core, events=events, overlay=True, max_frames=max_frames, progress=False,
                              echo=lambda line: None)
        wall = time.perf_counter() - t
        result.cpu = {"loop": time.thread_time() - loop_cpu, "process": time.process_time() - all_cpu}
    learner.close()
    return result, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="learner (.onnx or shipped name) [the demo's default]")
    ap.add_argument("--video", default=None, help="a 640x480 video [a synthetic session clip]")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the learner step")
    ap.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads [the demo's: 1]")
    ap.add_argument("--no-prefetch", action="store_true", help="everything in one thread (as on a 1-core board)")
    ap.add_argument("--preprocess-in-loop", action="store_true",
                    help="preprocess in the loop's thread instead of the capture thread")
    args = ap.parse_args(argv)

    import cv2

    from edgemeta import EdgemetaError
    from edgemeta.runtime.demo.core import configure_opencv, resolve_model

    configure_opencv()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    try:
        model = str(resolve_model(args.model))
        with tempfile.TemporaryDirectory() as tmp:
            video, events = args.video, {}
            if video is None:
                video = str(Path(tmp) / "session.mp4")
                events = make_clip(Path(video), args.frames, args.classes)
            runs = [one_run(model, video, events, args.threads, args.frames, not args.no_prefetch,
                            not args.preprocess_in_loop)
                    for _ in tqdm(range(args.runs), desc="runs", leave=False)]
            split, split_wall = one_run(model, video, events, args.threads, args.frames, prefetch=False)
    except EdgemetaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    fps = [r.frames / wall for r, wall in runs]
    n = max(split.frames, 1)
    print(f"model {Path(model).name}, video {Path(video).name if args.video else 'synthetic session'} 640x480, "
          f"{runs[0][0].frames} frames x {args.runs} runs, learner threads {args.threads}, "
          f"OpenCV threads {cv2.getNumThreads()}")
    if args.no_prefetch:
        mode = "one thread"
    elif args.preprocess_in_loop:
        mode = "decode in the capture thread, preprocess + step + overlay in the loop"
    else:
        mode = "decode + preprocess in the capture thread, step + overlay in the loop"
    print(f"headless loop ({mode}): {statistics.median(fps):.0f} frames/s median "
          f"(runs: {', '.join(f'{f:.0f}' for f in fps)}); target >= 300")
    loop_ms = statistics.median(1e3 * r.cpu["loop"] / max(r.frames, 1) for r, _ in runs)
    proc_ms = statistics.median(1e3 * r.cpu["process"] / max(r.frames, 1) for r, _ in runs)
    print(f"CPU time per frame: loop thread {loop_ms:.2f} ms, all threads {proc_ms:.2f} ms "
          "(wall-clock rates depend on what else the machine runs; CPU time much less)")
    if not args.no_prefetch:
        bound = 1e3 / max(loop_ms, proc_ms - loop_ms)
        print(f"  -> on two idle cores the busier thread allows about {bound:.0f} frames/s")
    print(f"symbol found in {split.found}/{split.frames} frames, {split.taught} taught")
    print(f"time per stage, all in one thread ({split.frames / split_wall:.0f} frames/s that way):")
    total = sum(split.seconds.get(st, 0.0) for st in STAGES)
    for stage in STAGES:
        sec = split.seconds.get(stage, 0.0)
        print(f"  {stage:<11} {1e3 * sec / n:7.3f} ms  {sec / total:6.1%}")
    slowest = max(STAGES, key=lambda st: split.seconds.get(st, 0.0))
    print(f"slowest stage: {slowest}" + ("  <- the learner step is the bottleneck" if slowest == "step" else
                                         "; the learner step is not the bottleneck"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
