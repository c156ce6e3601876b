"""`edgemeta doctor`: runs on any machine, reports a missing GPU/TensorRT as WARN, fails only on FAIL."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
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
                "power", "native", "camera", "display", "data", "state dir", "disk"}
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
    for row in ("python", "numpy", "onnxruntime", "opencv", "providers", "tensorrt", "gpu", "power", "native", "camera",
                "display", "data", "state dir", "disk"):
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


# --- providers: what a session really gets --------------------------------------------------------------


class _SessionGetting:
    """An InferenceSession stand-in that loads only `loads` of the providers asked for, printing (as
    onnxruntime does, on file descriptor 2) why the others failed."""

    def __init__(self, loads):
        import onnxruntime as ort

        self.loads = loads
        self.real_session = ort.InferenceSession

    def __call__(self, model, options=None, providers=()):
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        for name in names:
            if name not in self.loads:
                os.write(2, f"2025-01-01 00:00:00.0 [E:onnxruntime:Default, provider_bridge_ort.cc:1862] Failed to load "
                            f"library libonnxruntime_providers_tensorrt.so with error: libnvinfer.so.10: cannot open "
                            f"shared object file ({name})\n".encode())
        real = self.real_session(model, options, providers=["CPUExecutionProvider"])
        got = [n for n in names if n in self.loads]
        real.get_providers = lambda: got
        return real


def test_providers_are_what_a_session_got_not_what_was_compiled_in(monkeypatch):
    import onnxruntime as ort

    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: everything)
    monkeypatch.setattr(ort, "InferenceSession", _SessionGetting({"CUDAExecutionProvider", "CPUExecutionProvider"}))
    check = dc.check_providers(load_profile("x86-cuda"))
    assert check.status == "WARN", check
    assert check.detail.startswith("a test session ran on CUDA > CPU")
    assert "TensorRT compiled into this onnxruntime but did not load" in check.detail
    assert "libnvinfer.so.10: cannot open shared object file" in check.detail  # onnxruntime's own reason, captured
    assert "libnvinfer" in check.fix and "edgemeta[trt]" in check.fix
    monkeypatch.setattr(ort, "InferenceSession", _SessionGetting(set(everything)))
    assert dc.check_providers(load_profile("x86-cuda")) == dc.Check("providers", "OK", "a test session ran on TensorRT > CUDA > CPU")


def test_provider_probe_opens_and_runs_a_real_session_quietly(capfd):
    import onnxruntime as ort

    got, error, printed = dc.probe_session(ort, ["CPUExecutionProvider"])
    assert (got, error) == (["CPUExecutionProvider"], None)
    assert capfd.readouterr() == ("", "")  # nothing leaks into doctor's table or --json
    check = dc.check_providers(load_profile("x86-cpu"))
    assert check.status == "OK" and check.detail == "a test session ran on CPU"


def test_probe_model_is_valid_onnx():
    onnx = pytest.importorskip("onnx")
    from edgemeta.devices.probe_model import probe_model_bytes

    model = onnx.load_from_string(probe_model_bytes())
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Relu"] and model.opset_import[0].version == 13


# --- Jetson power mode and clocks, JetPack 5, the native kernel ----------------------------------------------

NVPMODEL_Q = "NV Power Mode: 15W\n0\n"
JETSON_CLOCKS_SHOW = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Developer Kit
Online CPUs: 0-5
cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=1510400 CurrentFreq=729600 IdleStates: WFI=1 cpuidle=1
cpu1: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=1510400 CurrentFreq=1510400 IdleStates: WFI=1 cpuidle=1
GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000 FreqOverride=0
NV Power Mode: 15W
"""


def fake_tools(folder: Path, monkeypatch, **tools) -> None:
    """Executables on PATH that print the given text (or fail with exit status 1 when the text is None)."""
    folder.mkdir(exist_ok=True)
    for name, text in tools.items():
        script = folder / name
        body = "echo 'need root' >&2; exit 1" if text is None else f"cat <<'OUT'\n{text}OUT"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_power_mode_and_clocks_on_a_jetson(tmp_path, monkeypatch):
    fake_tools(tmp_path / "bin", monkeypatch, nvpmodel=NVPMODEL_Q, jetson_clocks=JETSON_CLOCKS_SHOW)
    check = dc.check_power(fake_board(tmp_path / "root", "NVIDIA Jetson Orin Nano Developer Kit", "# R36 (release), REVISION: 4.0"))
    assert check.status == "OK"
    assert check.detail.startswith("power mode 15W (nvpmodel -m 0); clocks CPU 729/1510 MHz, GPU 306/624 MHz, EMC 2133/2133 MHz")


def test_power_without_root_or_tools(tmp_path, monkeypatch):
    fake_tools(tmp_path / "bin", monkeypatch, nvpmodel=NVPMODEL_Q, jetson_clocks=None)
    check = dc.check_power(tmp_path)
    assert check.status == "OK" and "power mode 15W" in check.detail and "needs root" in check.detail
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert dc.check_power(tmp_path).detail.startswith("not a Jetson")
    jetson = fake_board(tmp_path / "jetson", tegra="# R36 (release), REVISION: 4.0")
    missing = dc.check_power(jetson)
    assert missing.status == "WARN" and "nvidia-l4t-tools" in missing.fix


@pytest.mark.parametrize("model", ["Jetson AGX Orin Developer Kit", "NVIDIA Jetson Xavier NX Developer Kit", ""])
def test_jetpack_5_is_below_the_python_floor_not_an_orin_profile(tmp_path, model):
    root = fake_board(tmp_path, model, "# R35 (release), REVISION: 4.1, GCID: 33958178")
    name, why = dc.detect_profile(root, "aarch64")
    assert name == "arm64-cpu" and "JetPack 5 (L4T R35.4.1)" in why and "requires-python >= 3.10" in why
    check = dc.check_machine(load_profile("jetson-agx-orin"), root)
    assert check.status == "WARN" and "Python 3.8" in check.detail and "JetPack 6" in check.fix


def test_native_row_names_the_kernel_that_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    check = dc.check_native()
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        assert check.status == "OK" and re.search(r"runs the (avx2|neon|plain C) int8 kernel", check.detail), check
    monkeypatch.setenv("EDGEMETA_CC", "no-such-compiler")
    missing = dc.check_native()
    assert missing.status == "WARN" and "C compiler" in missing.detail and "build-essential" in missing.fix
