"""The symbol camera at any distance and position: today's front end (a centred square) and the whole-frame search,
side by side, on synthetic sessions with the card near, in the middle distance, far, and off-centre.

    python benchmarks/symbol_distance.py [--model M] [--seeds 3] [--shots 5] [--fps-frames 300] [--runs 3] [--drawings]
                                         [--threshold T] [--novelty-threshold N]

For each session kind and seed, a synthetic session (5 classes, `--shots` shots each) runs through the headless
demo loop, taught one shot per class from its ground truth, once with each front end. It prints, per kind and
front end: "found" on the frames that show a whole character (and on those the frame edge cuts, which should be
"not found"), and on the untaught frames after one taught shot the share named right, wrong and "?". A stranger
session per kind and seed (6 classes, the 6th never taught) gives the share of the stranger's frames, once all
five others are taught, that the demo refuses with "?" (the price of a looser "?" rule). Then the
frame -> input cost per frame, and the headless loop's frames/s on a 640x480 clip of a `far` and a `near` session
(decode + frame -> input in the capture thread, learner step + overlay in the loop, as in the demo).
With --drawings a third row per kind feeds the learner each card frame's drawing itself, preprocessed as in
training (no camera): what the same sessions get with a perfect front end.
Targets (printed, not asserted): >= 95% right at every distance, found on >= 98% of whole-character frames,
the loop >= 300 frames/s. --threshold and --novelty-threshold are the demo's "?" rule (edgemeta demo's options).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from synthetic_clip import record_session  # benchmarks/ is on sys.path: these run as scripts

from edgemeta.runtime.demo.unknown_rule import NOVELTY_THRESHOLD, THRESHOLD, default_threshold

KINDS = {  # synthetic:// parameters of each session kind: the card's side in a 640x480 frame, offset, tilt
    "near": "card=560&tilt=20",
    "middle": "card=350&tilt=20",
    "far": "card=170&tilt=20",
    "off-centre": "card=350&offset=20&tilt=30",
    "near, off-centre": "card=560&offset=20&tilt=30",
}
FRONT_ENDS = ("centred square", "whole frame")
DRAWINGS = "the drawings"  # --drawings: the card's drawing itself as input, an upper bound for any front end


def front_end(name: str, size: int):
    """frame -> FrameResult: today's centred square (60% of the shorter side), or the whole-frame search."""
    from edgemeta.runtime.camera.frames import centred_roi, frame_to_input

    if name == "centred square":
        return lambda frame: frame_to_input(frame, size, roi=centred_roi(frame.shape))
    return lambda frame: frame_to_input(frame, size)  # the whole frame (the drawings replace it on card frames)


def session(model: str, uri: str, prepare_name: str, rule: dict) -> dict:
    """One session through the headless loop, taught one shot per class; what was found and named."""
    from edgemeta.runtime.camera.frames import FrameResult
    from edgemeta.runtime.camera.scoring import NO_SYMBOL, RIGHT, UNKNOWN, WRONG
    from edgemeta.runtime.camera.sources import VideoSource
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner
    from edgemeta.runtime.preprocess import omniglot_to_input

    counts = {"whole": 0, "whole found": 0, "cut": 0, "cut found": 0, "blank": 0, "blank found": 0}

    class TallyingFeed(FrameFeed):
        """The demo's feed, counting what the front end found on each kind of frame."""

        def next(self):
            captured = super().next()
            if captured is not None and prepare_name == DRAWINGS and captured.truth.card:
                image = omniglot_to_input(self.source.backend.drawing(captured.truth), core.size)
                box = (0, 0, 1, 1)
                captured = replace(captured, symbol=FrameResult(True, image, box, box, 0.0, 1.0))
            if captured is not None:
                truth = captured.truth
                key = "blank" if not truth.card else ("whole" if truth.whole else "cut")
                counts[key] += 1
                counts[key + " found"] += captured.symbol.found
            return captured

    with Learner.load(model, threads=1) as learner:
        core = DemoCore(learner, **rule)
        with TallyingFeed(VideoSource(uri), front_end(prepare_name, core.size)) as feed:
            result = run_headless(feed, core, shots_to_teach=1, progress=False, echo=lambda line: None)
    after_one = result.curve.tallies.get(1)
    return {**counts, **{k: (after_one.counts[k] if after_one else 0) for k in (RIGHT, WRONG, UNKNOWN, NO_SYMBOL)}}


def stranger_session(model: str, uri: str, rule: dict) -> tuple[int, int]:
    """A session whose last class is never taught (the others: one shot each, the middle frame of their first
    shot) through the whole-frame search -> (the stranger's frames found once all others are taught, refused)."""
    from edgemeta.runtime.camera.sources import VideoSource
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.events import read_log
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner

    source = VideoSource(uri)
    camera = source.backend
    stranger = camera.params.classes - 1
    truths = [camera.truth_of(i) for i in range(len(source))]
    events = {t.frame: t.label for t in truths
              if t.card and t.class_shot == 0 and t.shot_frame == camera.middle_frame and t.label != stranger}
    with tempfile.TemporaryDirectory() as tmp, Learner.load(model, threads=1) as learner:
        core = DemoCore(learner, **rule)
        with FrameFeed(source, front_end("whole frame", core.size)) as feed:
            result = run_headless(feed, core, events=events, log=Path(tmp) / "log.jsonl", progress=False,
                                  echo=lambda line: None)
        _, records = read_log(result.log)
    all_taught = max(events) if events else len(truths)
    shown = [r for r in records if r["frame"] > all_taught and r.get("truth") == stranger and r["found"]]
    return len(shown), sum(r["unknown"] or r["pred"] is None for r in shown)


def fps_run(model: str, video: str, prepare_name: str, events: dict, frames: int) -> tuple[float, int]:
    from edgemeta.runtime.camera.sources import VideoSource
    from edgemeta.runtime.demo.core import DemoCore
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.learner import Learner

    with Learner.load(model, threads=1) as learner:
        core = DemoCore(learner)
        with FrameFeed(VideoSource(video), front_end(prepare_name, core.size), background=True) as feed:
            t = time.perf_counter()
            result = run_headless(feed, core, events=events, overlay=True, max_frames=frames, progress=False,
                                  echo=lambda line: None)
            return result.frames / (time.perf_counter() - t), result.frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="learner (.onnx or shipped name) [the demo's default]")
    ap.add_argument("--seeds", type=int, default=3, help="sessions per kind (seeds 0..N-1)")
    ap.add_argument("--shots", type=int, default=5, help="shots per class in each session")
    ap.add_argument("--fps-frames", type=int, default=300, help="frames in each clip of the frames/s measurement")
    ap.add_argument("--runs", type=int, default=3, help="runs of each clip and front end (the median is printed)")
    ap.add_argument("--drawings", action="store_true", help="also feed each card frame's drawing itself (no camera)")
    ap.add_argument("--threshold", type=float, default=None,
                    help=f"say '?' below this confidence (the demo's option) [{THRESHOLD} with a novelty head, else 0.5]")
    ap.add_argument("--novelty-threshold", type=float, default=NOVELTY_THRESHOLD,
                    help="say '?' above this novelty (the demo's option) [%(default)s]")
    args = ap.parse_args(argv)
    rule = {"threshold": args.threshold, "novelty_threshold": args.novelty_threshold}

    from edgemeta import EdgemetaError
    from edgemeta.runtime.demo.core import configure_opencv, resolve_model

    configure_opencv()
    try:
        model = str(resolve_model(args.model))
        if args.threshold is None:
            from edgemeta.runtime.learner import Learner

            with Learner.load(model, threads=1) as learner:
                rule["threshold"] = default_threshold(learner.has_novelty)
        print(f"model {Path(model).name}; 5 classes, {args.shots} shots each, one shot per class taught; "
              f"seeds 0-{args.seeds - 1} per kind; '?' below confidence {rule['threshold']} or above novelty "
              f"{args.novelty_threshold}")
        print(f"{'session':<18} {'front end':<15} {'found: whole':>12} {'found: cut':>11} {'found: blank':>12} "
              f"{'right':>7} {'wrong':>7} {'?':>7} {'stranger ?':>10}")
        for kind, query in KINDS.items():
            for name in FRONT_ENDS + ((DRAWINGS,) if args.drawings else ()):
                total: dict = {}
                strangers = refused = 0
                for seed in range(args.seeds):
                    uri = f"synthetic://omniglot?classes=5&shots={args.shots}&seed={seed}&{query}"
                    for k, v in session(model, uri, name, rule).items():
                        total[k] = total.get(k, 0) + v
                    if name == "whole frame":
                        shown, said = stranger_session(
                            model, f"synthetic://omniglot?classes=6&shots={args.shots}&seed={seed}&{query}", rule)
                        strangers, refused = strangers + shown, refused + said
                named = total["right"] + total["wrong"] + total["?"]
                share = lambda a, b: f"{a / b:.1%}" if b else "-"
                print(f"{kind:<18} {name:<15} {share(total['whole found'], total['whole']):>12} "
                      f"{share(total['cut found'], total['cut']):>11} {share(total['blank found'], total['blank']):>12} "
                      f"{share(total['right'], named):>7} {share(total['wrong'], named):>7} {share(total['?'], named):>7} "
                      f"{share(refused, strangers):>10}")
        print("targets: right >= 95% at every distance; found on >= 98% of whole-character frames")

        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("far", "near"):
                video = str(Path(tmp) / f"{kind}.mp4")
                events, frames = record_session(
                    Path(video), f"synthetic://omniglot?classes=5&shots=5&width=640&height=480&{KINDS[kind]}", args.fps_frames)
                cost = {}
                for name in FRONT_ENDS:
                    prepare = front_end(name, 28)
                    t = time.perf_counter()
                    for frame in frames:
                        prepare(frame)
                    cost[name] = 1e3 * (time.perf_counter() - t) / len(frames)
                rates = {name: statistics.median(fps_run(model, video, name, events, args.fps_frames)[0]
                                                 for _ in range(args.runs)) for name in FRONT_ENDS}
                print(f"{kind} clip, 640x480, {len(frames)} frames: frame -> input "
                      + ", ".join(f"{n} {cost[n]:.2f} ms" for n in FRONT_ENDS)
                      + "; headless loop " + ", ".join(f"{n} {rates[n]:.0f} frames/s" for n in FRONT_ENDS)
                      + f" (median of {args.runs}; target >= 300)")
    except EdgemetaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
