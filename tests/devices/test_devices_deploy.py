"""Deployment files: the systemd unit and the Dockerfiles parse, and run real subcommands and options.

Docker and systemd cannot run here; these tests catch what breaks silently on a board: a typo in a
section name, an option the demo does not have, a profile that does not exist, a shell-form CMD.
"""
from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest

from edgemeta.cli import COMMANDS, cli
from edgemeta.devices.profiles import list_profiles

REPO = Path(__file__).resolve().parents[2]
DEVICES = REPO / "devices" / "deploy"
DOCKER_INSTRUCTIONS = {"FROM", "ARG", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "VOLUME", "ENTRYPOINT", "CMD",
                       "USER", "LABEL", "EXPOSE", "SHELL", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD"}


def unit() -> configparser.ConfigParser:
    # systemd allows repeated keys; interpolation off because % is systemd's specifier character.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read_string((DEVICES / "edgemeta-demo.service").read_text())
    return parser


def check_edgemeta_args(args: list) -> dict:
    """`demo --headless --source ...`: a real subcommand whose options exist; returns {option: value}."""
    assert args[0] == "demo" and "demo" in COMMANDS
    options, i = {}, 1
    while i < len(args):
        assert args[i].startswith("--"), f"stray argument {args[i]!r}"
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[args[i]] = args[i + 1]
            i += 2
        else:
            options[args[i]] = True
            i += 1
    assert options.get("--headless") is True, "a service has no screen"
    assert options.get("--device") in list_profiles()
    assert options.get("--state", "").startswith("/var/lib/edgemeta/")
    assert "--source" in options
    return options


def demo_options() -> set:
    demo = cli.get_command(None, "demo")
    if demo is None:
        pytest.skip("edgemeta demo is not in this version")
    return {opt for p in demo.params for opt in p.opts}


def test_unit_file_parses_and_restarts_on_failure():
    u = unit()
    assert {"Unit", "Service", "Install"} <= set(u.sections())
    service = u["Service"]
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "edgemeta"  # /var/lib/edgemeta, kept across reboots
    assert service["KillSignal"] == "SIGINT"  # the demo saves its state on Ctrl-C
    assert "video" in service["SupplementaryGroups"].split()
    assert "DynamicUser" not in service  # it would hide the Argus socket in a private /tmp
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_unit_runs_the_headless_demo_with_persistent_state():
    argv = shlex.split(unit()["Service"]["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/bin/edgemeta")
    options = check_edgemeta_args(argv[1:])
    assert options["--state"] == "/var/lib/edgemeta/state.npz"


def test_unit_and_dockerfile_options_exist_in_the_demo_command():
    known = demo_options()
    commands = [shlex.split(unit()["Service"]["ExecStart"])[2:]]
    commands += [cmd[1:] for cmd in (dockerfile_cmd(p) for p in DEVICES.glob("Dockerfile.*")) for cmd in cmd]
    for args in commands:
        used = {a for a in args if a.startswith("--")}
        assert used <= known, f"demo has no {sorted(used - known)}"


def dockerfile_instructions(path: Path) -> list:
    """(INSTRUCTION, arguments) per logical line: comments dropped, backslash continuations joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():  # Docker drops these, even mid-continuation
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical, pending = pending + line, ""
        word, _, rest = logical.strip().partition(" ")
        out.append((word, rest.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return out


def dockerfile_cmd(path: Path) -> list:
    """The argv of each stage's ENTRYPOINT + CMD (exec form is required: signals must reach edgemeta)."""
    stages, current = [], {}
    for word, rest in dockerfile_instructions(path):
        if word == "FROM":
            current = {}
            stages.append(current)
        if word in ("ENTRYPOINT", "CMD"):
            current[word] = json.loads(rest)  # shell form would not parse as JSON
    return [s["ENTRYPOINT"] + s["CMD"] for s in stages]


@pytest.mark.parametrize("name", ["Dockerfile.jetson", "Dockerfile.x86"])
def test_dockerfile_is_well_formed_and_starts_the_headless_demo(name):
    path = DEVICES / name
    instructions = dockerfile_instructions(path)
    assert instructions[0][0] in ("ARG", "FROM")
    assert {w for w, _ in instructions} <= DOCKER_INSTRUCTIONS
    for word, rest in instructions:
        if word == "COPY":
            *sources, _ = rest.split()
            for src in sources:  # the build context is the repository root
                assert (REPO / src).exists(), f"{name} copies {src}, which is not in the repository"
    commands = dockerfile_cmd(path)
    assert commands
    for argv in commands:
        assert argv[0] == "edgemeta"
        check_edgemeta_args(argv[1:])
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "torch" not in runs and "[train]" not in runs  # the runtime image stays light


def test_jetson_image_uses_an_l4t_base_and_nvidia_onnxruntime():
    instructions = dockerfile_instructions(DEVICES / "Dockerfile.jetson")
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG")
    assert args["L4T_IMAGE"].startswith("nvcr.io/nvidia/l4t-")
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "--no-deps ." in runs and "numpy>=1.24,<2" in runs and "tomli" in runs
    assert "--index-url" in runs and "--system-site-packages" in runs


def test_readme_walks_through_deployment():
    text = (REPO / "devices" / "README.md").read_text()
    assert "## Deploying to a device" in text
    for needle in ("edgemeta-demo.service", "Dockerfile.jetson", "Dockerfile.x86", "systemctl enable --now",
                   "edgemeta doctor"):
        assert needle in text


def test_unit_is_not_ordered_after_the_target_that_wants_it():
    u = unit()
    after = u["Unit"].get("After", "").split()
    wanted_by = u["Install"]["WantedBy"].split()
    assert not set(after) & set(wanted_by), f"After= {after} and WantedBy= {wanted_by}: ordered after its own target"
    assert "network.target" in after and "nvargus-daemon.service" in after


def test_unit_passes_systemd_analyze_verify_when_enabled(tmp_path):
    """`systemd-analyze verify` on the unit as `systemctl enable` installs it (a symlink in
    multi-user.target.wants), with ExecStart pointed at an executable that exists here."""
    import shutil
    import subprocess

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    units = tmp_path / "units"
    (units / "multi-user.target.wants").mkdir(parents=True)
    text = (DEVICES / "edgemeta-demo.service").read_text()
    exec_start = shlex.split(unit()["Service"]["ExecStart"])[0]
    (units / "edgemeta-demo.service").write_text(text.replace(exec_start, shutil.which("true")))
    (units / "multi-user.target.wants" / "edgemeta-demo.service").symlink_to("../edgemeta-demo.service")
    env = {"PATH": "/usr/bin:/bin", "SYSTEMD_UNIT_PATH": f"{units}:", "SYSTEMD_LOG_LEVEL": "debug"}
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", "multi-user.target", str(units / "edgemeta-demo.service")],
                            capture_output=True, text=True, env=env, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "edgemeta-demo.service/start" in out  # the enabled unit really was part of the boot transaction
    assert "cycle" not in out.lower(), out[-2000:]
