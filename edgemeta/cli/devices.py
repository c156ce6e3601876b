"""`edgemeta devices`: the device profiles in devices/boards/*.toml, listed, or one shown in full.

Also `device_option`, the `--device NAME|FILE.toml` option that demo, bench and export share: it hands the
command a loaded, validated Profile (or None).
"""
from __future__ import annotations

import click


def _load_option(ctx, param, value):
    if value is None:
        return None
    from edgemeta.devices.profiles import load_profile

    return load_profile(value)


def device_option(f):
    """`--device NAME|FILE.toml`: the command receives `device` as a Profile (None when not given)."""
    return click.option(
        "--device", "device", default=None, metavar="NAME|FILE.toml", callback=_load_option,
        help="Device profile (see `edgemeta devices`): execution providers, threads, camera, state folder.",
    )(f)


def providers_text(profile) -> str:
    from edgemeta.devices.doctor import short_provider
    from edgemeta.devices.profiles import TRT

    return " > ".join(short_provider(p) + (f" ({profile.precision})" if p == TRT else "") for p in profile.providers)


def reference_text(profile) -> str:
    parts = []
    for learner, ref in profile.reference.items():
        if ref["measured"]:
            threads = f"{ref['threads']} thread{'s' if ref['threads'] != 1 else ''}"
            parts.append(f"{learner} {ref['step_us_median']:g} us/step ({ref['backend']}, batch {ref['batch']}, "
                         f"{threads}, {ref['date']})")
        else:
            parts.append(f"{learner} not measured")
    return ", ".join(parts) if parts else "none recorded"


def _summary(profile) -> str:
    w, h = profile.resolution
    threads = f"{profile.threads} thread{'s' if profile.threads != 1 else ''}" if profile.threads else "default threads"
    return f"{providers_text(profile)} · {threads} · camera {profile.camera} {w}x{h}@{profile.fps}"


def _show(profile) -> None:
    w, h = profile.resolution
    rows = [
        ("profile", f"{profile.name} ({profile.source})"),
        ("description", profile.description),
        ("arch", profile.arch),
        ("providers", providers_text(profile)),
        ("threads", str(profile.threads) if profile.threads else "0 (ONNX Runtime's default)"),
        ("precision", profile.precision),
        ("trt workspace", f"{profile.trt_workspace_mb} MiB" if profile.trt_workspace_mb else "- (no TensorRT)"),
        ("camera", f"{profile.camera} {w}x{h} at {profile.fps} fps"),
        ("state dir", str(profile.state_dir)),
        ("reference", reference_text(profile)),
    ]
    for key, value in rows:
        click.echo(f"{key:<14} {value}")
    for name, options in zip(profile.providers, profile.provider_options):
        if options:
            click.echo(f"{'':<14} {name}: " + ", ".join(f"{k}={v}" for k, v in options.items()))
    for note in profile.notes:
        click.echo(f"{'note':<14} {note}")


@click.command()
@click.argument("name", required=False, metavar="[NAME|FILE.toml]")
def command(name):
    """List the device profiles, or show one (a shipped NAME or a FILE.toml) in full."""
    from edgemeta.devices.doctor import detect_profile
    from edgemeta.devices.profiles import list_profiles, load_profile, profiles_dir

    if name:
        _show(load_profile(name))
        return
    here, _ = detect_profile()
    names = list_profiles()
    width = max(len(n) for n in names) + 2
    for n in names:
        p = load_profile(n)
        mark = "  <- this machine" if n == here else ""
        click.echo(f"{n:<{width}}{p.description}{mark}")
        click.echo(f"{'':<{width}}{_summary(p)}")
        click.echo(f"{'':<{width}}reference: {reference_text(p)}")
    click.echo(f"\n{len(names)} profiles in {profiles_dir()}. Show one: edgemeta devices NAME. "
               "Check this machine against one: edgemeta doctor --device NAME")
