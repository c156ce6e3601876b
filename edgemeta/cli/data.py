"""`edgemeta data`: get and check the Omniglot data."""
from __future__ import annotations

import click


@click.group()
def command():
    """Get and check the Omniglot data."""


@command.command("download")
@click.argument("dest", type=click.Path(file_okay=False))
def download(dest):
    """Download the official Omniglot zips into DEST and verify their checksums."""
    from edgemeta.data.download import download_omniglot

    for path in download_omniglot(dest):
        click.echo(f"ok {path}")
    click.echo(f"use it with --data {dest} or EDGEMETA_DATA={dest}")


@command.command("check")
@click.argument("data", type=click.Path(), required=False, envvar="EDGEMETA_DATA")
def check(data):
    """Decode DATA (default $EDGEMETA_DATA) once, check its counts and print the pinned split."""
    from edgemeta.data.omniglot import load_omniglot, split_classes

    ds = load_omniglot(data)
    split = split_classes()
    click.echo(f"{len(ds.names)} characters x 20 drawings; split: train {len(split['train'])}, "
               f"validation {len(split['validation'])}, test {len(split['test'])}")
