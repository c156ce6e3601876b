"""`edgemeta doctor`: check this machine against a device profile; a table of OK/WARN/FAIL with fixes."""
from __future__ import annotations

import json

import click

_COLOURS = {"OK": "green", "WARN": "yellow", "FAIL": "red"}


@click.command()
@click.option("--device", default=None, metavar="NAME|FILE.toml",
              help="Profile to check against (see `edgemeta devices`). [detected from this machine]")
@click.option("--source", default=None, metavar="URI", help="Camera to check instead of the profile's default.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON instead of a table.")
def command(device, source, as_json):
    """Check Python, packages, providers, TensorRT, GPU, camera, display, Omniglot data folder, state folder and disk.

    Exits 1 when a check FAILs (the demo cannot run as the profile says); WARN rows still exit 0.
    """
    from edgemeta.devices.doctor import FAIL, OK, WARN, detect_profile, run_checks
    from edgemeta.devices.profiles import load_profile

    if device is None:
        name, why = detect_profile()
        profile, how = load_profile(name), f"detected: {why}"
    else:
        profile, how = load_profile(device), "from --device"
    checks = run_checks(profile, source)
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    if as_json:
        click.echo(json.dumps({"profile": profile.name, "profile_source": profile.source, "how": how,
                               "counts": counts, "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        _table(profile, how, checks, counts)
    if counts[FAIL]:
        from edgemeta import EdgemetaError

        failed = ", ".join(c.name for c in checks if c.status == FAIL)
        raise EdgemetaError(f"doctor: {counts[FAIL]} check(s) failed ({failed}); apply the fixes above and run it again")


def _table(profile, how, checks, counts) -> None:
    click.echo(f"edgemeta doctor: profile {profile.name} ({how})\n")
    width = max(len(c.name) for c in checks) + 2
    click.echo(f"{'CHECK':<{width}}{'STATUS':<8}DETAIL")
    for c in checks:
        status = click.style(f"{c.status:<8}", fg=_COLOURS.get(c.status))
        click.echo(f"{c.name:<{width}}{status}{c.detail}")
        if c.fix and c.status != "OK":
            click.echo(f"{'':<{width + 8}}fix: {c.fix}")
    verdict = ("FAIL rows stop the demo: fix them and run edgemeta doctor again" if counts["FAIL"]
               else "ready; WARN rows run with less (see the fixes)" if counts["WARN"] else "ready")
    click.echo(f"\n{counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL: {verdict}")
