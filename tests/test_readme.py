"""Every command in the README stays true: each `edgemeta` command parses with the flags it shows and its
subcommand is run by a test, the make targets and extras exist, the links resolve, and `make demo` prints
what the README says it prints. The commands of docs/benchmarks.md parse too, scripts' flags included, and
every file docs/architecture.md names exists."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import click
import pytest

from edgemeta.cli import COMMANDS, cli, main

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BENCHMARKS = (REPO / "docs" / "benchmarks.md").read_text()


def code_blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def shell_commands(text: str = README) -> list[list[str]]:
    """The bash lines of a page as argument lists, comments and line continuations dropped."""
    commands = []
    for block in code_blocks("bash", text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def inline_commands(text: str, program: str) -> list[list[str]]:
    return [shlex.split(c) for c in re.findall(rf"`({program} [^`]*)`", text)]


def edgemeta_commands(text: str = README) -> list[list[str]]:
    """`edgemeta ...` from the code blocks and from inline code (the pipeline table, the benchmark tables),
    with the pages' placeholder S (a seed) as 0."""
    found = [c for c in shell_commands(text) + inline_commands(text, "edgemeta") if c[0] == "edgemeta"]
    return [["0" if w == "S" else w for w in c[1:]] for c in found]


def test_readme_is_short_and_has_the_commands():
    assert len(README.splitlines()) <= 120
    subcommands = {c[0] for c in edgemeta_commands()}
    assert {"train", "eval", "export", "bench", "demo", "devices", "doctor"} <= subcommands
    assert ["make", "demo"] in shell_commands() and ["make", "test"] in shell_commands()


@pytest.mark.parametrize("args", edgemeta_commands() + edgemeta_commands(BENCHMARKS), ids=" ".join)
def test_edgemeta_command_parses(args):
    name, rest = args[0], args[1:]
    assert name in COMMANDS, f"no command edgemeta {name}"
    command = cli.get_command(None, name)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        name, rest = rest[0], rest[1:]
        command = command.commands[name]
    # click's parser alone: unknown options fail, values are checked by type, but paths that only exist
    # on the user's machine (runs/mann, clip.mp4) are not opened
    ctx = click.Context(command, info_name=name)
    opts, positional, _ = command.make_parser(ctx).parse_args(list(rest))
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    assert len(positional) <= sum(p.nargs for p in arguments), f"edgemeta {name}: stray arguments {positional}"
    for param in command.params:
        if param.name in opts and not isinstance(param.type, click.Path):
            param.type_cast_value(ctx, opts[param.name])


def test_benchmark_scripts_exist_with_the_flags_shown():
    scripts = [c for c in shell_commands(BENCHMARKS) + inline_commands(BENCHMARKS, "python") if c[0] == "python"]
    assert len(scripts) >= 6
    for words in scripts:
        source = (REPO / words[1]).read_text()
        for flag in (w for w in words[2:] if w.startswith("--")):
            assert f'"{flag}"' in source, f"{words[1]} has no option {flag}"


def test_every_readme_subcommand_is_run_by_a_test():
    invoked = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        invoked |= set(re.findall(r"""main\(\[\s*["'](\w+)["']""", path.read_text()))
    missing = {c[0] for c in edgemeta_commands()} - invoked
    assert not missing, f"README commands no test runs: {sorted(missing)}"


def test_make_targets_and_extras_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for words in shell_commands():
        if words[0] == "make":
            assert set(words[1:]) <= targets, words
        elif words[:2] == ["pip", "install"]:
            for spec in words[2:]:
                m = re.fullmatch(r"edgemeta(?:\[([\w,]+)\])?", spec)
                assert m, spec
                assert set((m.group(1) or "").split(",")) - {""} <= extras, spec
    for extra in re.findall(r"`\[(\w+)\]`", README):
        assert extra in extras, extra


def test_links_and_pictures_resolve():
    targets = re.findall(r"\]\(([^)#]+)\)", README)
    assert "docs/images/accuracy_by_instance.png" in targets and "docs/images/demo_window.png" in targets
    missing = [t for t in targets if not t.startswith("http") and not (REPO / t).exists()]
    assert not missing, missing


def test_devices_runs_as_written(capsys):
    assert main(["devices"]) == 0
    assert "x86-cpu" in capsys.readouterr().out


def test_make_demo_prints_what_the_readme_shows(monkeypatch, capsys):
    """On a fresh clone with no Omniglot anywhere: the demo draws from the embedded demo set."""
    import edgemeta.runtime.omniglot as omniglot

    recipe = re.search(r"^demo:.*\n\t\$\(BIN\)/edgemeta (.*)$", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile's demo target runs one edgemeta command"
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setattr(omniglot, "conventional_places", lambda: [])
    assert main(shlex.split(recipe.group(1))) == 0
    out = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    (shown,) = code_blocks("text")
    i = 0
    for line in shown.splitlines():
        if line == "...":
            continue
        while i < len(out) and out[i] != line.rstrip():
            i += 1
        assert i < len(out), f"make demo no longer prints, in this order: {line!r}"
        i += 1


@pytest.mark.slow
def test_bench_of_a_shipped_learner_runs_as_written(capsys):
    (args,) = [c for c in edgemeta_commands() if c[0] == "bench"]
    assert main(args) == 0
    assert "faster" in capsys.readouterr().out


def test_every_file_the_architecture_page_names_exists():
    text = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"\b((?:edgemeta|export|runtime|devices|tests|scripts|benchmarks)/[\w/]*\.(?:py|c|md))", text))
    assert len(named) >= 30
    missing = sorted(p for p in named if not (REPO / p).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
