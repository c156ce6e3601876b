"""Option parsing shared by several commands, and the train options built from the preset table."""
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

# train and eval: Omniglot, or your own images (edgemeta/data/image_folder.py)
folder_data_option = click.option(
    "--data", type=click.Path(file_okay=False), default=None, envvar="EDGEMETA_DATA", show_envvar=True,
    help="Omniglot directory (images_background.zip, images_evaluation.zip), or an image folder "
         "(DIR/<class>/*.png|jpg or DIR/<group>/<class>/*; see docs/own_data.md).",
)


def preset_option(field: str, *decls: str, help: str, **kwargs):
    """A click option for TrainConfig field `field` whose default comes from the preset table: the
    shared value where every preset agrees (shown as click's default), else None and each preset's
    value in the help (the command then takes the chosen preset's)."""
    from edgemeta.training.presets import PRESETS

    values = {name: getattr(p.train, field) for name, p in PRESETS.items()}
    if len(set(values.values())) == 1:
        return click.option(*decls, field, default=next(iter(values.values())), show_default=True, help=help, **kwargs)
    shown = ", ".join(f"{name} {_shown(v)}" for name, v in values.items())
    return click.option(*decls, field, default=None, help=f"{help}  [preset default: {shown}]", **kwargs)


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):  # ways
        return str(value[0]) if value[0] == value[1] else f"{value[0]}-{value[1]}"
    return f"{value:g}" if isinstance(value, float) else str(value)


class ModelName(click.ParamType):
    """A preset name (edgemeta/training/presets.py) or a user's step module, path/to/file.py:ClassName."""

    name = "PRESET|FILE.py:CLASS"

    def convert(self, value, param, ctx):
        from edgemeta.training.presets import PRESETS

        if value in PRESETS or (":" in str(value) and str(value).rpartition(":")[0].endswith(".py")):
            return value
        self.fail(f"{value!r}: expected one of {', '.join(PRESETS)}, or path/to/file.py:ClassName", param, ctx)


class ModelOption(click.ParamType):
    """`NAME=VALUE`: one field of the model config over the preset's (e.g. memory_width=128)."""

    name = "NAME=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        from dataclasses import fields

        from edgemeta.models import ModelConfig

        name, sep, text = str(value).partition("=")
        kinds = {f.name: f.type for f in fields(ModelConfig)}
        if not sep or name not in kinds:
            self.fail(f"{value!r}: expected NAME=VALUE with NAME one of {', '.join(kinds)}", param, ctx)
        kind = kinds[name]
        try:
            if kind == "bool":
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                parsed = text.lower() in ("true", "1")
            elif kind == "int":
                parsed = int(text)
            elif kind == "float":
                parsed = float(text)
            elif kind.startswith("tuple"):
                parsed = tuple(int(v) for v in text.split(","))
            else:
                parsed = text
        except ValueError:
            self.fail(f"{value!r}: {name} takes a value of type {kind}", param, ctx)
        return name, parsed
