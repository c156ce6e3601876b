"""Option parsing shared by several commands."""
from __future__ import annotations

import click


class WaysRange(click.ParamType):
    """`5` or `2-10`: a fixed or varying number of classes per episode."""

    name = "N|MIN-MAX"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            parts = [int(p) for p in str(value).split("-")]
        except ValueError:
            self.fail(f"{value!r} is not a number of ways like 5 or 2-10", param, ctx)
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2 or parts[0] < 1 or parts[0] > parts[1]:
            self.fail(f"{value!r} is not a number of ways like 5 or 2-10", param, ctx)
        return tuple(parts)


data_option = click.option(
    "--data", type=click.Path(file_okay=False), default=None, envvar="EDGEMETA_DATA", show_envvar=True,
    help="Omniglot directory (images_background.zip, images_evaluation.zip).",
)
