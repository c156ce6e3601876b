"""`edgemeta demo`: learn new classes live from a camera (a window), or headless from a script / ground truth."""
from __future__ import annotations

import os
from pathlib import Path

import click

from edgemeta.cli.options import data_option
from edgemeta.runtime.demo.unknown_rule import NOVELTY_THRESHOLD, THRESHOLD, THRESHOLD_WITHOUT_NOVELTY

DEFAULT_SOURCE = "synthetic://omniglot"


def _a_region(ctx, param, value):
    """--region X,Y,W,H: four non-negative integers, a width and height of at least 8 pixels."""
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"{value!r} is not X,Y,W,H in whole pixels, e.g. 160,80,320,320")
    x, y, w, h = (int(p) for p in parts)
    if w < 8 or h < 8:
        raise click.BadParameter(f"{value!r}: the region must be at least 8x8 pixels")
    return (x, y, w, h)


def _a_number(ctx, param, value):
    """FloatRange lets NaN through (every comparison with NaN is false), and a NaN threshold says '?' never."""
    if value != value:
        raise click.BadParameter(f"{value} is not a number in [0, 1]", ctx=ctx, param=param)
    return value


@click.command()
@click.option("--model", "model", default=None, metavar="M",
              help="An exported learner (.onnx), or a shipped one by name: default, mann. [default, else mann]")
@click.option("--source", default=None, metavar="URI",
              help="0, /dev/videoN, csi://0, file://clip.mp4, a folder of images, rtsp://..., synthetic://omniglot?... "
                   f"[the --device profile's camera, else {DEFAULT_SOURCE}]")
@click.option("--input-flip", default="none", show_default=True, metavar="FLIP",
              type=click.Choice(["none", "counterclockwise", "rotate-180", "clockwise", "horizontal", "upper-right-diagonal",
                                 "vertical", "upper-left-diagonal"]),
              help="Turn a csi:// camera's frames in its pipeline (jetson-inference's names), e.g. rotate-180.")
@click.option("--device", "device", default=None, metavar="PROFILE",
              help="A device profile (name or .toml): providers, threads, camera, state folder.")
@click.option("--backend", type=click.Choice(["auto", "ort", "trt", "native"]), default="auto", show_default=True,
              help="native: the runtime's one-call C step (MANN learners with a flat encoder, e.g. --model mann).")
@click.option("--headless", is_flag=True, help="No window: process the source to its end, print a summary.")
@click.option("--script", type=click.Path(dir_okay=False), default=None, metavar="EVENTS.csv",
              help="Headless: teach class LABEL at source frame FRAME for each line 'FRAME,LABEL' (header frame,label).")
@click.option("--log", "log", type=click.Path(dir_okay=False), default=None, metavar="LOG.jsonl",
              help="One JSON record per processed frame: frame, pred, confidence, taught, found, unknown.")
@click.option("--record", type=click.Path(dir_okay=False), default=None, metavar="OUT.mp4",
              help="Write the annotated video (mp4v).")
@click.option("--state", "state", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Learned state: loaded at start if it exists, saved on exit (keys s/l use it too).")
@click.option("--shots-to-teach", type=click.IntRange(0, 20), default=3, show_default=True, metavar="K",
              help="Headless on synthetic:// without --script: teach the first K shots of each class.")
@click.option("--max-frames", type=click.IntRange(1), default=None, metavar="N", help="Stop after N frames.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, metavar="T", callback=_a_number,
              help=f"Say '?' when the confidence is below T.  [default: {THRESHOLD} for a learner with a novelty "
                   f"head, else {THRESHOLD_WITHOUT_NOVELTY}]")
@click.option("--novelty-threshold", type=click.FloatRange(0, 1), default=NOVELTY_THRESHOLD, show_default=True, callback=_a_number,
              help="Say '?' when the learner's novelty output is above this (learners with a novelty head).")
@click.option("--region", default=None, metavar="X,Y,W,H", callback=_a_region,
              help="Look only inside this rectangle of the frame, in pixels (the symbol front end searches the whole "
                   "frame otherwise; the objects front end takes a centred square).")
@data_option
def command(model, source, input_flip, device, backend, headless, script, log, record, state, shots_to_teach, max_frames,
            threshold, novelty_threshold, region, data):
    """Show symbols to a camera and teach them with keys 1-9, 0; it names what it sees from then on.

    Headless (--headless) runs a source to its end, taught by --script, or on synthetic:// by the session's
    ground truth (printing the learning curve), and writes --log / --record.
    """
    from edgemeta.runtime.stop_signals import stop_signals_interrupt

    with stop_signals_interrupt():  # SIGTERM and SIGHUP end a session as Ctrl-C does: what was learned is saved
        _run(model, source, input_flip, device, backend, headless, script, log, record, state, shots_to_teach, max_frames,
             threshold, novelty_threshold, region, data)


def _run(model, source, input_flip, device, backend, headless, script, log, record, state, shots_to_teach, max_frames,
         threshold, novelty_threshold, region, data):
    from edgemeta import EdgemetaError
    from edgemeta.devices.profiles import load_profile
    from edgemeta.runtime.demo.core import DemoCore, configure_opencv, resolve_model
    from edgemeta.runtime.demo.feed import FrameFeed
    from edgemeta.runtime.demo.headless import run_headless
    from edgemeta.runtime.demo.window import run_interactive
    from edgemeta.runtime.demo.events import load_events
    from edgemeta.runtime.learner import Learner
    from edgemeta.runtime.camera.sources import VideoSource, parse_uri
    from edgemeta.runtime.camera.synthetic import synthetic_opener

    if script and not headless:
        raise EdgemetaError("--script needs --headless (in the window, keys 1-9, 0 teach)")
    profile = load_profile(device) if device else None
    if not headless:
        from edgemeta.runtime.demo.window import check_display

        check_display()
    uri = source or (profile.camera if profile is not None else DEFAULT_SOURCE)
    spec = parse_uri(uri, flip=input_flip)  # a mistyped source fails before the model loads
    kwargs = {}
    if profile is not None and backend != "native":  # a profile's providers are ONNX Runtime's
        import onnxruntime

        kwargs = profile.learner_kwargs(onnxruntime.get_available_providers())
    path = resolve_model(model)
    state_path = Path(state) if state else (profile.state_file if profile is not None else None)
    _check_outputs_are_not_inputs({"--log": log, "--record": record},
                                  {"--source": uri, "--script": script, "--model": path, "--state": state_path})
    learner = Learner.load(path, backend=backend, **kwargs)
    events = load_events(script, learner.num_classes) if script else None
    if state_path is not None:
        _check_state_path(state_path)
    if state_path is not None and state_path.exists():
        learner.load_state(state_path)
        click.echo(f"loaded learned state from {state_path} ({learner.num_taught} examples taught)")

    # --data reaches a synthetic:// session explicitly (the URI's own data= takes precedence).
    open_backend = synthetic_opener(data) if spec.kind == "synthetic" else None
    # The profile's camera mode; files, folders and synthetic sessions ignore it.
    size = dict(width=profile.resolution[0], height=profile.resolution[1], fps=profile.fps) if profile is not None else {}
    configure_opencv()
    core = DemoCore(learner, threshold=threshold, novelty_threshold=novelty_threshold, region=region)
    # Decoding and preprocessing run in the feed's capture thread, the learner and the overlay in this one.
    video = VideoSource(uri, open_backend=open_backend, flip=input_flip, **size)
    with FrameFeed(video, core.prepare, background=True) as feed:
        click.echo(f"model {learner.path.name}: {learner.num_classes} classes, {learner.input_size}x{learner.input_size} input; "
                   f"source {uri}")
        if getattr(video.backend, "data_source", None):  # the synthetic camera: a data folder or the embedded set
            click.echo(f"drawings: {video.backend.data_source}")
        try:
            if headless:
                result = run_headless(feed, core, events=events, shots_to_teach=shots_to_teach, log=log,
                                      record=record, max_frames=max_frames, echo=click.echo)
                _summary(result, learner)
            else:
                run_interactive(feed, core, state_path=state_path, log=log, record=record, max_frames=max_frames)
        finally:
            if state_path is not None:  # saved even when the run ends in an error: nothing learned is lost
                learner.save_state(state_path)
                click.echo(f"saved learned state to {state_path}")


def _check_outputs_are_not_inputs(outputs: dict, inputs: dict) -> None:
    """Refuse an output that would replace one of this command's inputs (or another output), links resolved:
    the input would be lost the moment the output is published."""
    from edgemeta import EdgemetaError

    seen: dict[Path, str] = {}
    for flag, value in inputs.items():
        if value and "://" not in str(value):
            seen.setdefault(Path(value).expanduser().resolve(), flag)
    for flag, value in outputs.items():
        if not value:
            continue
        target = Path(value).expanduser().resolve()
        if target in seen:
            raise EdgemetaError(f"{flag} {value} is also {seen[target]}: writing it would replace that file; "
                                "pass another path")
        if target.name == "metrics.jsonl" and (target.parent / "last.pt").exists():
            raise EdgemetaError(f"{flag} {value} is a training run's metrics; pass another path")
        seen[target] = flag


def _check_state_path(path: Path) -> None:
    """Fail now on a state file that can never be written, not after the session whose learning it should keep."""
    from edgemeta import EdgemetaError

    if path.is_dir():
        raise EdgemetaError(f"--state {path} is a directory; pass a file name such as {path / 'state.npz'}")
    for folder in path.parents:  # the nearest existing folder must be a writable directory
        if folder.exists():
            if not folder.is_dir():
                raise EdgemetaError(f"--state {path}: {folder} is a file, not a directory; pass another path")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise EdgemetaError(f"--state {path}: cannot write in {folder} (read-only or no permission); pass another path")
            return


def _summary(result, learner) -> None:
    stopped = " (stopped by Ctrl-C or a stop signal)" if result.interrupted else ""
    click.echo(f"processed {result.frames} frames{stopped}: a symbol was found in {result.found}, {result.taught} taught; "
               f"{learner.num_taught} examples known")
    if result.curve is not None and result.curve.rows():
        click.echo("learning curve (frames not taught, by examples of their class taught; accuracy, wrong and '?' "
                   "among the frames with a symbol found):")
        click.echo(result.curve.format())
    if result.missed_events:
        shown = ", ".join(str(f) for f in result.missed_events[:5]) + (" ..." if len(result.missed_events) > 5 else "")
        click.echo(f"warning: the source ended after {result.frames} frames; scripted frames {shown} never came", err=True)
    if result.log:
        click.echo(f"wrote {result.log}")
    if result.record:
        resized = f" ({result.resized} frames of another size scaled to the first's)" if result.resized else ""
        click.echo(f"wrote {result.record}{resized}")
