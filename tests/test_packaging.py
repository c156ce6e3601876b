"""What `pip install edgemeta` gets: a wheel built without warnings that carries every module, the shipped
ONNX learners and the native C source, and no checkpoints; and a runtime-only install whose training
commands end in one line naming the extra to install."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# source folder -> where its files land in the wheel
INSTALLED_AS = {"edgemeta": "edgemeta", "export": "edgemeta/export", "runtime": "edgemeta/runtime",
                "devices": "edgemeta/devices"}


def source_files() -> list[str]:
    """The files git sees in the checkout (tracked or new, never ignored build output), as they are now."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if (REPO / p).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[set[str], str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files are sources")
    # A clean copy: setuptools reuses an in-tree build/ and *.egg-info, which would hide what the
    # configuration alone puts in the wheel.
    src = tmp_path_factory.mktemp("src")
    for rel in source_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = out.glob("edgemeta-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist()), proc.stdout + proc.stderr


def test_wheel_builds_without_warnings(wheel):
    _, log = wheel
    warnings = [line.strip() for line in log.splitlines() if "Warning" in line]
    assert not warnings, "\n".join(warnings)


def test_wheel_carries_every_module_and_the_runtime_data(wheel):
    names, _ = wheel
    expected = {f"{INSTALLED_AS[p.split('/')[0]]}/{p.split('/', 1)[1]}"
                for p in source_files() if p.endswith(".py") and p.split("/")[0] in INSTALLED_AS}
    assert "edgemeta/runtime/learner.py" in expected and "edgemeta/devices/doctor.py" in expected
    assert not expected - names, sorted(expected - names)
    shipped = {f"edgemeta/runtime/learners/{p.name}" for p in (REPO / "runtime" / "learners").iterdir()
               if p.suffix in (".onnx", ".json")}
    assert {f"edgemeta/runtime/learners/{n}{ext}" for n in ("mann", "default") for ext in (".onnx", ".json")} <= shipped
    assert shipped <= names, sorted(shipped - names)  # every shipped learner file, int8 variants included
    assert "edgemeta/runtime/backends/native/mann_step.c" in names
    assert {f"edgemeta/runtime/demo_set/{n}" for n in ("omniglot-demo.npz", "LICENSE", "README.md")} <= names
    assert {f"edgemeta/devices/boards/{p.name}" for p in (REPO / "devices" / "boards").glob("*.toml")} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_wheel_leaves_the_training_checkpoints_out(wheel):
    names, _ = wheel
    assert not [n for n in names if n.endswith(".pt")]


# A runtime-only install: the training side's imports fail the way they do when torch is absent.
BLOCK_TORCH = "import sys; sys.modules['torch'] = None\nfrom edgemeta.cli import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.mark.parametrize("args", [
    ["train", "--out", "{tmp}/run", "--episodes", "16"],
    ["export", str(REPO / "edgemeta" / "learners" / "mann.pt"), "--out", "{tmp}/export"],
])
def test_training_commands_without_torch_say_what_to_install(args, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: this command needs torch, which the runtime-only install lacks: pip install 'edgemeta[train]'"]
    assert not list(tmp_path.iterdir()), "nothing is written before the missing dependency is found"


def test_help_works_without_torch():
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--episodes" in proc.stdout
