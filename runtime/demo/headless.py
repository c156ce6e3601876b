"""The headless demo: a source to its end (or --max-frames), taught by a script or, on a synthetic session,
by its ground truth; writes the log and the annotated video, and times each stage."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from edgemeta.runtime.camera.overlay import draw
from edgemeta.runtime.demo.core import PAST_EPISODES, DemoCore, Fps, finish_outputs, open_recorder
from edgemeta.runtime.demo.feed import FrameFeed


@dataclass
class HeadlessResult:
    frames: int = 0
    found: int = 0
    taught: int = 0
    curve: object = None  # scoring.LearningCurve when taught from ground truth
    missed_events: tuple = ()  # scripted frames the source never delivered
    log: Optional[Path] = None
    record: Optional[Path] = None
    seconds: dict = field(default_factory=dict)  # time per stage: decode, preprocess, step, overlay, output
    interrupted: bool = False  # stopped by Ctrl-C, SIGTERM or SIGHUP (runtime/stop_signals.py)
    resized: int = 0  # recorded frames of another size than the first, scaled to it


def run_headless(
    feed: FrameFeed,
    core: DemoCore,
    *,
    events: Optional[dict] = None,
    shots_to_teach: Optional[int] = None,
    log: Optional[os.PathLike] = None,
    record: Optional[os.PathLike] = None,
    max_frames: Optional[int] = None,
    overlay: Optional[bool] = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> HeadlessResult:
    """Run the feed's source to its end (or max_frames): teach scripted `events` {frame: label}, or, on a synthetic
    source with `shots_to_teach` k and no events, the first k shots of each class (ground truth).

    overlay: draw the annotated frame (default: only when recording); benchmarks turn it on.
    """
    from tqdm import tqdm

    from edgemeta.runtime.camera.scoring import TruthTeacher
    from edgemeta.runtime.demo.events import JsonlLog, log_header

    events = dict(events or {})
    for label in set(events.values()):
        core.check_label(label)
    bar = None

    def say(line: str) -> None:
        _say(line, echo, bar)

    source = feed.source
    camera = getattr(source, "backend", None)
    teacher = None
    if not events and shots_to_teach and hasattr(camera, "truth_of"):
        teacher = TruthTeacher(camera, core.num_classes, shots_to_teach, say)
    result = HeadlessResult(curve=teacher.curve if teacher else None)
    overlay = bool(record) if overlay is None else overlay
    writer = JsonlLog(log, header=log_header(source)) if log else None
    recorder = open_recorder(record, source)
    total = len(source) if hasattr(source, "__len__") else 0
    total = min(total, max_frames) if (total and max_frames) else (max_frames or total or None)
    # disable=None: no progress bar when stderr is not a terminal (a service's journal, a CI log)
    bar = tqdm(total=total, unit="frame", desc="demo", disable=None if progress else True, leave=False, file=sys.stderr)
    fps = Fps()
    core_before = dict(core.seconds)
    seconds = {"decode": 0.0, "overlay": 0.0, "output": 0.0}
    ok = past = False
    try:
        index = 0
        while max_frames is None or index < max_frames:
            t0 = time.perf_counter()
            captured = feed.next()
            seconds["decode"] += time.perf_counter() - t0
            if captured is None:
                if feed.ended:
                    break
                continue  # a live source timed out or is reconnecting; what was learned is kept
            truth = captured.truth
            label = teacher.label_for(truth) if teacher else events.get(index)
            counts_before = core.counts() if teacher else None
            obs = core.process(captured.frame, index, teach=label, symbol=captured.symbol)
            if label is not None and obs.taught is None:
                say(f"frame {index}: no symbol found; class {label} not taught")
            if teacher:
                teacher.after(truth, obs, counts_before)
            result.frames += 1
            result.found += obs.found
            result.taught += obs.taught is not None
            t1 = time.perf_counter()
            canvas = draw(obs.frame, obs, core.hud(fps.tick()), inplace=True) if overlay else None
            t2 = time.perf_counter()
            if writer:
                rec = obs.record()
                if truth is not None:
                    rec["truth"] = truth.label
                writer.write(rec)
            if recorder:
                recorder.write(canvas)
            seconds["overlay"] += t2 - t1
            seconds["output"] += time.perf_counter() - t2
            bar.update(1)
            index += 1
            if not past and getattr(core.learner, "past_training_episodes", False):
                past = True
                say(f"warning: frame {index - 1}: {PAST_EPISODES}")
        ok = True
    except KeyboardInterrupt:  # Ctrl-C or SIGINT (systemd's KillSignal) is how a live run ends: a clean stop
        ok = result.interrupted = True
    finally:
        bar.close()
        result.log, result.record, result.resized = finish_outputs(writer, recorder, ok)
    if teacher:
        teacher.flush()
    result.seconds = {"decode": seconds["decode"],
                      **{k: core.seconds[k] - core_before.get(k, 0.0) for k in core.seconds},
                      "overlay": seconds["overlay"], "output": seconds["output"]}
    result.missed_events = tuple(sorted(f for f in events if f >= result.frames))
    return result


def _say(line: str, echo, bar) -> None:
    if bar is not None and not bar.disable:
        bar.write(line)  # above the progress bar, not through it
    else:
        echo(line)
