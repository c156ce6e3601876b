"""The `edgemeta` command line.

Each subcommand lives in its own module under edgemeta/commands and imports its heavy
dependencies inside the command, so `edgemeta --help` and `edgemeta demo --help` work on a
device that has only the runtime installed. Errors the user can fix end in one line, exit 1.
"""
from __future__ import annotations

import importlib
import sys

import click

from edgemeta import EdgemetaError, __version__

# name -> module under edgemeta.cli that defines `command`
COMMANDS = {
    "train": "train",
    "eval": "evaluate",
    "export": "export",
    "bench": "bench",
    "demo": "demo",
    "devices": "devices",
    "doctor": "doctor",
    "data": "data",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx, name):
        return self._load(name) if name in COMMANDS else None

    @staticmethod
    def _load(name):
        try:
            module = importlib.import_module(f"edgemeta.cli.{COMMANDS[name]}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("edgemeta.cli"):
                return None  # not written yet in this version
            raise
        return module.command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgemeta")
def cli():
    """edgemeta: meta-train a few-shot learner, export it with explicit state, run it live on a device."""


def main(argv=None) -> int:
    try:
        rv = cli.main(args=argv, standalone_mode=False)
    except EdgemetaError as e:
        click.echo(f"error: {e}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except click.UsageError as e:
        # one line, like every other error, with where to look for the valid options
        where = e.ctx.command_path if e.ctx else "edgemeta"
        click.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    # without standalone mode click returns ctx.exit(n)'s code instead of raising
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
