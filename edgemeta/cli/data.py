"""`edgemeta data`: get and check the Omniglot data."""
from __future__ import annotations

import click


@click.group()
def command():
    """Get and check the Omniglot data."""


@command.command("download")
@click.argument("dest", type=click.Path(file_okay=False), required=False)
def download(dest):
    """Download the official Omniglot zips into DEST and verify their checksums.

    DEST defaults to ~/.cache/edgemeta/omniglot ($EDGEMETA_CACHE/omniglot), where every command looks last.
    """
    from edgemeta.data.download import download_omniglot
    from edgemeta.runtime.omniglot import default_download_dir

    dest = dest or default_download_dir()
    for path in download_omniglot(dest):
        click.echo(f"ok {path}")
    if dest == default_download_dir():
        click.echo("every edgemeta command finds it there (unless --data or EDGEMETA_DATA names another folder)")
    else:
        click.echo(f"use it with --data {dest} or EDGEMETA_DATA={dest}")


@command.command("check")
@click.argument("data", type=click.Path(), required=False, envvar="EDGEMETA_DATA")
def check(data):
    """Decode DATA (default: $EDGEMETA_DATA, else the folder found by the lookup) once, check its counts and
    print the pinned split."""
    from edgemeta.runtime.omniglot import load_omniglot, resolve_data_dir, split_classes

    folder = resolve_data_dir(data)
    ds = load_omniglot(folder)
    split = split_classes()
    click.echo(f"{folder}: {len(ds.names)} characters x 20 drawings; split: train {len(split['train'])}, "
               f"validation {len(split['validation'])}, test {len(split['test'])}")
