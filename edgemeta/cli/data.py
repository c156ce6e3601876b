"""`edgemeta data`: get and check the Omniglot data, or check your own image folder."""
from __future__ import annotations

import click


@click.group()
def command():
    """Get and check the Omniglot data, or check your own image folder."""


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
@click.option("--ways", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Image folders: classes per episode to check the split against.")
@click.option("--instances", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Image folders: images each class needs.")
def check(data, ways, instances):
    """Check DATA and print its pinned split: Omniglot (default: $EDGEMETA_DATA, else the folder found by the
    lookup), decoded once and counted; or an image folder (DIR/<class>/*, DIR/<group>/<class>/*): classes,
    images per class, sizes and channels, and every defect in one line each."""
    from edgemeta.data.tasks import is_omniglot

    if not is_omniglot(data):
        return _check_folder(data, ways, instances)
    from edgemeta.runtime.omniglot import load_omniglot, resolve_data_dir, split_classes

    folder = resolve_data_dir(data)
    ds = load_omniglot(folder)
    split = split_classes()
    click.echo(f"{folder}: {len(ds.names)} characters x 20 drawings; split: train {len(split['train'])}, "
               f"validation {len(split['validation'])}, test {len(split['test'])}")


def _check_folder(data, ways: int, instances: int) -> None:
    from edgemeta.data.image_folder import check_folder, scan

    dataset, problems = check_folder(data, ways, instances)
    if dataset is not None:
        layout = "DIR/<group>/<class>/*" if dataset.layout == "grouped" else "DIR/<class>/*"
        click.echo(f"{dataset.root}: {len(dataset.classes)} classes ({layout}), {sum(dataset.counts)} images, "
                   f"class list {dataset.class_hash}" + (f"; {dataset.ignored} non-image files skipped" if dataset.ignored else ""))
        for name, count, (h, w, c) in zip(dataset.classes, dataset.counts, dataset.sizes):
            click.echo(f"  {name}: {count} images, first {w}x{h} {'gray' if c == 1 else f'{c} channels'}")
        split = dataset.split()
        click.echo(f"episodes use the first {min(dataset.counts)} images of each class (the fewest any class has)")
        click.echo("split: " + ", ".join(f"{part} {len(names)}" for part, names in split.items()))
        for part, names in split.items():
            click.echo(f"  {part}: {', '.join(names)}")
    else:
        click.echo(f"{scan(data).root}: {len(scan(data).classes)} classes")
    if problems:
        for line in problems:
            click.echo(f"problem: {line}", err=True)
        raise click.ClickException(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in {data} (listed above)")
    click.echo(f"ok: {ways}-way episodes of {instances} instances can be drawn from every part of the split")
