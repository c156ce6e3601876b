"""The `edgemeta` command line.

Each subcommand lives in its own module under edgemeta/cli and imports its heavy dependencies
inside the command, so `edgemeta --help` and `edgemeta demo --help` work on a device that has only
the runtime installed. Errors the user can fix end in one line, exit 1; so does a command that needs
the training extra on such a device.
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
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        return self._load(name) if name in COMMANDS else None

    @staticmethod
    def _load(name):
        return importlib.import_module(f"edgemeta.cli.{COMMANDS[name]}").command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgemeta")
def cli():
    """edgemeta: meta-train a few-shot learner, export it with explicit state, run it live on a device."""


# What `pip install 'edgemeta[train]'` adds to the runtime-only install.
TRAINING_MODULES = ("torch", "onnx", "onnxscript", "matplotlib")


def missing_training_module(e: ModuleNotFoundError) -> str | None:
    """The training dependency whose absence raised `e`, or None when something else is missing."""
    root = (e.name or "").split(".")[0]
    return root if root in TRAINING_MODULES else None


def main(argv=None) -> int:
    try:
        rv = cli.main(args=argv, standalone_mode=False)
    except ModuleNotFoundError as e:
        missing = missing_training_module(e)
        if missing is None:
            raise
        click.echo(f"error: this command needs {missing}, which the runtime-only install lacks: "
                   "pip install 'edgemeta[train]'", err=True)
        return 1
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
