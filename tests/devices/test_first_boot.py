"""docs/devices.md's "first boot on a Jetson / on a Pi" block, run on a CPU machine as far as it goes."""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.devices import profiles
from edgemeta.runtime.camera import sources
from edgemeta.runtime.learner import LEARNERS_DIR

REPO = Path(__file__).resolve().parents[2]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def first_boot_commands() -> list:
    page = (REPO / "docs" / "devices.md").read_text()
    section = page.split("## First boot on a Jetson / on a Pi", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].split() for line in block.splitlines() if line.split("#")[0].strip()]


@pytest.fixture
def board_home(tmp_path, monkeypatch):
    """A home folder holding the copied export (learner/learner.onnx), a private cache, and no camera."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "learner").mkdir()
    shutil.copy(LEARNERS_DIR / "mann.onnx", tmp_path / "learner" / "learner.onnx")
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    monkeypatch.setattr(sources, "L4T_RELEASE_FILE", release)  # `--source 0` as on a Jetson
    # The boards keep learned state in /var/lib/edgemeta; here it goes to the home folder, never the machine's.
    monkeypatch.setattr(profiles.Profile, "state_file", property(lambda self: tmp_path / "state" / "state.npz"))
    return tmp_path


def test_the_walkthrough_block_is_all_edgemeta_commands():
    commands = first_boot_commands()
    assert [c[1] for c in commands] == ["doctor", "export", "bench", "demo", "demo"]
    assert all(c[0] == "edgemeta" for c in commands)


def test_first_boot_runs_as_far_as_a_cpu_machine_allows(board_home, monkeypatch, capsys):
    opened = []

    def no_camera(spec, *args):
        opened.append(spec)
        raise EdgemetaError(f"cannot open {spec.uri!r}: no camera on this machine")

    for words in first_boot_commands():
        args = words[1:]
        if args[0] == "demo" and "--source" in args and args[args.index("--source") + 1] == "0":
            monkeypatch.setattr(sources, "_default_backend", no_camera)
            args = [*args, "--headless"]  # no display here: the window is the only part not run
        rc = main(args)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, args
        if args[0] == "doctor":
            assert rc in (0, 1) and "\nproviders " in out and "\nnative " in out and "\npower " in out, (args, err)
        elif args[0] == "export":
            if HAS_TRT:
                continue  # a real build needs the GPU as well; the trt tests cover it
            assert rc != 0 and len(err.strip().splitlines()) == 1 and "TensorRT" in err, err
            assert not (board_home / "learner" / "learner.engine").exists()
        elif args[0] == "bench":
            assert rc == 0 and re.search(r"(avx2|neon|plain C) kernel", out), (out, err)
        elif "synthetic://omniglot" in args:
            assert rc == 0 and "processed 60 frames" in out, (out, err)
        else:
            assert rc != 0 and "cannot open 'csi://0'" in err
            assert opened[0].kind == "csi" and "flip-method=2" in opened[0].target
