"""`edgemeta doctor`: runs on any machine, reports a missing GPU/TensorRT as WARN, fails only on FAIL."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgemeta.cli import main
from edgemeta.devices import doctor as dc
from edgemeta.devices.profiles import load_profile, parse_profile

REPO = Path(__file__).resolve().parents[2]
HAS_GPU = bool(shutil.which("nvidia-smi")) or Path("/dev/nvidia0").exists() or Path("/etc/nv_tegra_release").exists()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    # Profiles keep state under ~ (x86) or /var/lib; checks must not depend on this machine's home.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def doctor_json(capsys, *args) -> tuple:
    rc = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    return rc, report, {c["name"]: c for c in report["checks"]}


def test_doctor_on_this_machine_warns_about_missing_gpu_and_tensorrt(capsys):
    rc, report, checks = doctor_json(capsys, "--device", "x86-cuda")
    assert report["profile"] == "x86-cuda"
    expected = {"machine", "python", "numpy", "onnxruntime", "opencv", "torch", "providers", "tensorrt", "gpu",
                "camera", "display", "data", "state dir", "disk"}
    assert set(checks) == expected
    assert all(c["status"] in ("OK", "WARN", "FAIL") for c in checks.values())
    if not HAS_GPU:
        assert checks["gpu"]["status"] == "WARN" and checks["gpu"]["fix"]
    if not HAS_TRT:
        assert checks["tensorrt"]["status"] == "WARN" and "edgemeta[trt]" in checks["tensorrt"]["fix"]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert checks["providers"]["status"] == "WARN" and "onnxruntime-gpu" in checks["providers"]["fix"]
    assert rc == (1 if report["counts"]["FAIL"] else 0)
    # On the CPU machines edgemeta is developed on, nothing here is a FAIL: a missing GPU is not fatal.
    if not HAS_GPU:
        assert report["counts"]["FAIL"] == 0 and rc == 0


def test_doctor_table_names_every_check_with_a_fix_for_warnings(capsys):
    rc = main(["doctor", "--device", "x86-cpu"])
    out = capsys.readouterr().out
    assert out.startswith("edgemeta doctor: profile x86-cpu (from --device)")
    for row in ("python", "numpy", "onnxruntime", "opencv", "providers", "tensorrt", "gpu", "camera", "display",
                "data", "state dir", "disk"):
        assert f"\n{row} " in out
    warned = [line for line in out.splitlines() if line.split()[1:2] == ["WARN"]]
    assert out.count("fix: ") >= len(warned)
    assert "Traceback" not in out and rc == 0


def test_a_state_dir_that_cannot_be_created_fails_with_exit_1(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # even root cannot make a folder inside a file
    board = tmp_path / "board.toml"
    board.write_text((REPO / "devices" / "boards" / "x86-cpu.toml").read_text().replace(
        'state_dir = "~/.local/state/edgemeta"', f'state_dir = "{blocker}/state"'))
    rc, report, checks = doctor_json(capsys, "--device", str(board))
    assert rc == 1 and checks["state dir"]["status"] == "FAIL"
    assert str(blocker) in checks["state dir"]["detail"] and checks["state dir"]["fix"]


def test_state_dir_writable_when_present_and_creatable_when_not(tmp_path):
    text = (REPO / "devices" / "boards" / "x86-cpu.toml").read_text()
    existing = tmp_path / "state"
    existing.mkdir()
    p = parse_profile(text.replace('"~/.local/state/edgemeta"', f'"{existing}"'))
    assert dc.check_state_dir(p).status == "OK" and list(existing.iterdir()) == []  # the probe file is gone
    later = parse_profile(text.replace('"~/.local/state/edgemeta"', f'"{tmp_path}/a/b"'))
    check = dc.check_state_dir(later)
    assert check.status == "OK" and "will be created" in check.detail and not (tmp_path / "a").exists()


def test_missing_camera_is_a_warning_not_a_failure():
    p = load_profile("x86-cpu")
    check = dc.check_camera(p, source="/dev/video99")
    assert check.status == "WARN" and "/dev/video99" in check.detail and "--source" in check.fix
    assert dc.check_camera(p, source="synthetic://omniglot").status == "OK"
    assert dc.check_camera(p, source="bogus://x").status == "WARN"


def test_camera_check_reads_a_frame_from_a_video_file(tmp_path):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 255, np.uint8))
    check = dc.check_camera(load_profile("x86-cpu"), source=str(image))
    assert check.status == "OK" and "64x48" in check.detail


def test_data_check_reports_the_folder_found_or_how_to_get_one(tmp_path, monkeypatch):
    from edgemeta.runtime import omniglot as og

    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(og, "CHECKOUT", None)
    monkeypatch.chdir(tmp_path)
    missing = dc.check_data()
    assert missing.status == "WARN" and missing.detail.startswith("only the embedded demo set (no Omniglot folder")
    assert "edgemeta data download" in missing.fix
    (tmp_path / "cache" / "omniglot" / "images_background").mkdir(parents=True)
    found = dc.check_data()
    assert found.status == "OK" and found.detail.startswith(str(tmp_path / "cache" / "omniglot"))
    monkeypatch.setenv("EDGEMETA_DATA", str(tmp_path))  # named, but holds no Omniglot
    named = dc.check_data()
    assert named.status == "WARN" and "$EDGEMETA_DATA" in named.detail and named.fix == f"edgemeta data download {tmp_path}"


def test_display_check_follows_the_environment(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert dc.check_display().status == "WARN"
    monkeypatch.setenv("DISPLAY", ":99")
    check = dc.check_display()
    assert check.status == ("WARN" if dc.opencv_gui() in ("", "NONE") else "OK") and ":99" in check.detail


def test_profile_for_another_architecture_is_flagged():
    other = "jetson-orin-nano" if dc.machine_arch() == "x86_64" else "x86-cpu"
    check = dc.check_machine(load_profile(other))
    assert check.status == "WARN" and "is for" in check.detail


def fake_board(root: Path, model: str = "", tegra: str = "") -> Path:
    if model:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_text(model + "\x00")
    if tegra:
        (root / "etc").mkdir(parents=True)
        (root / "etc/nv_tegra_release").write_text(tegra)
    return root


@pytest.mark.parametrize("model,tegra,machine,expected", [
    ("Raspberry Pi 5 Model B Rev 1.0", "", "aarch64", "raspberry-pi-5"),
    ("NVIDIA Jetson Orin Nano Developer Kit", "# R36 (release), REVISION: 4.0, GCID: 1", "aarch64", "jetson-orin-nano"),
    ("Jetson AGX Orin Developer Kit", "# R36 (release), REVISION: 3.0", "aarch64", "jetson-agx-orin"),
    ("NVIDIA Jetson Nano Developer Kit", "# R32 (release), REVISION: 7.4", "aarch64", "jetson-nano"),
    ("", "# R32 (release), REVISION: 7.1", "aarch64", "jetson-nano"),
    ("Some Rockchip board", "", "aarch64", "arm64-cpu"),
    ("", "", "x86_64", "x86-cpu"),
])
def test_detect_profile_from_the_board(tmp_path, model, tegra, machine, expected):
    root = fake_board(tmp_path, model, tegra)
    name, why = dc.detect_profile(root, machine)
    assert name == expected and why
    load_profile(name)  # every detected name is a shipped profile


def test_jetson_gpu_is_seen_through_the_tegra_release(tmp_path):
    root = fake_board(tmp_path, "NVIDIA Jetson Orin Nano Developer Kit", "# R36 (release), REVISION: 4.0")
    assert dc.l4t_release(root) == "R36.4.0"
    check = dc.check_gpu(load_profile("jetson-orin-nano"), root)
    assert check.status == "OK" and "R36.4.0" in check.detail


def test_version_floors_match_pyproject():
    from edgemeta.devices.profiles import tomllib  # tomli on Python 3.10

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(d.split(">=") for d in deps if ">=" in d)
    assert floors["numpy"] == dc.MIN_VERSIONS["numpy"]
    assert floors["onnxruntime"] == dc.MIN_VERSIONS["onnxruntime"]
    assert floors["opencv-python"] == dc.MIN_VERSIONS["opencv"]
    trt = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["trt"]
    assert f"tensorrt-cu12>={dc.MIN_TENSORRT},<11" in trt and "cuda-python>=12,<13" in trt  # CUDA 12 stacks only
    assert dc.version_tuple("4.8.0.76") == (4, 8, 0) and dc.version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert dc.version_tuple("1.9") < dc.version_tuple("1.17")


def test_doctor_as_a_process_exits_0_with_warnings_only(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "edgemeta", "doctor", "--device", "x86-cpu"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=REPO)
    assert "Traceback" not in done.stderr
    assert "WARN" in done.stdout and done.returncode == (1 if " FAIL " in done.stdout else 0)


def documented_commands() -> list:
    """`edgemeta devices|doctor ...` lines from the code blocks of the docs (deployment steps need a board)."""
    found = []
    for doc in (REPO / "docs" / "devices.md", REPO / "devices" / "README.md"):
        blocks = doc.read_text().split("```")[1::2]
        for block in blocks:
            for line in block.splitlines():
                words = line.split("#")[0].split()
                if len(words) >= 2 and words[0].endswith("edgemeta") and words[1] in ("devices", "doctor"):
                    found.append(words[1:])
    return found


def test_documented_devices_and_doctor_commands_run(capsys):
    commands = documented_commands()
    assert len(commands) >= 6
    for args in commands:
        rc = main(args)
        out = capsys.readouterr()
        assert "Traceback" not in out.err, args
        if args[0] == "devices":
            assert rc == 0, (args, out.err)
        else:  # a doctor run may FAIL (exit 1) on a machine that is not the board, but always reports
            assert rc in (0, 1) and ("CHECK" in out.out or '"checks"' in out.out), (args, out.err)


@pytest.mark.parametrize("version, ok", [("10.3.0", True), ("8.6.1", True), ("11.0.0", False), ("8.5.3", False)])
def test_tensorrt_outside_the_supported_window_warns(monkeypatch, version, ok):
    import sys
    import types

    from edgemeta.devices.profiles import load_profile

    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    fake.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    check = dc.check_tensorrt(load_profile("x86-cuda"))
    assert (check.status == dc.OK) == ok, check
    if not ok:
        assert "tensorrt-cu12>=8.6,<11" in check.fix
