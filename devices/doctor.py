"""What `edgemeta doctor` checks: this machine against a device profile, each check with a fix.

Every check returns a Check (OK, WARN or FAIL). FAIL means the demo cannot run as the profile says
(a required package missing, the state folder not writable, the disk full); WARN means it runs with less
(no GPU: the CPU provider takes over; no camera or display: the headless demo with another --source still
works). Nothing here installs or changes anything, except one temporary file in the state folder and the
native step's library in the user's build cache (compiled as `--backend native` would on first use).
Torch-free: torch's version comes from package metadata, never from importing it.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from edgemeta.devices.profiles import CPU, CUDA, TRT, Profile

OK, WARN, FAIL = "OK", "WARN", "FAIL"

# Oldest versions edgemeta is tested with: keep in sync with [project] dependencies in pyproject.toml
# (tests/devices/test_doctor.py compares them).
MIN_PYTHON = (3, 10)
MIN_VERSIONS = {"numpy": "1.24", "onnxruntime": "1.17", "opencv": "4.8"}
MIN_TENSORRT = "8.6"  # the [trt] extra
# Several distributions install the same import name; two at once overwrite each other's files.
DISTRIBUTIONS = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
}
# Learned state is a few MB and a TensorRT engine tens of MB; below these the next save or engine build can fail.
DISK_FAIL_MB = 100
DISK_WARN_MB = 1024
CAMERA_TIMEOUT_S = 5.0
JETSON_ORT_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"


@dataclass
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def run_checks(profile: Profile, source: str | None = None, root: Path = Path("/")) -> list:
    """All checks in order; a check that itself breaks is reported as WARN, so doctor never crashes."""
    checks = [
        ("machine", lambda: check_machine(profile, root)),
        ("python", check_python),
        ("numpy", check_numpy),
        ("onnxruntime", check_onnxruntime),
        ("opencv", check_opencv),
        ("torch", check_torch),
        ("providers", lambda: check_providers(profile)),
        ("tensorrt", lambda: check_tensorrt(profile)),
        ("gpu", lambda: check_gpu(profile, root)),
        ("power", lambda: check_power(root)),
        ("native", check_native),
        ("camera", lambda: check_camera(profile, source)),
        ("display", check_display),
        ("data", check_data),
        ("state dir", lambda: check_state_dir(profile)),
        ("disk", lambda: check_disk(profile)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as e:  # a doctor that crashes helps nobody; say what could not be checked
            results.append(Check(name, WARN, f"could not check: {type(e).__name__}: {_first_line(e)}"))
    return results


# --- the machine ------------------------------------------------------------------------------------


def machine_arch(machine: str | None = None) -> str:
    m = (machine or platform.machine()).lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(m, m)


def board_model(root: Path = Path("/")) -> str:
    """The board's name from the device tree (Jetson, Raspberry Pi), '' on a PC."""
    return _read(root / "proc/device-tree/model").replace("\x00", "").strip()


def l4t_release(root: Path = Path("/")) -> str:
    """'R36.4.0' from /etc/nv_tegra_release on a Jetson, '' elsewhere."""
    m = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", _read(root / "etc/nv_tegra_release"))
    return f"R{m.group(1)}.{m.group(2)}" if m else ""


def nvidia_gpus(root: Path = Path("/")) -> str:
    """A description of the visible NVIDIA GPUs ('' if none): nvidia-smi, the device node, or a Jetson's iGPU."""
    smi = shutil.which("nvidia-smi")
    if smi and root == Path("/"):
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
            gpus = [line.split(" (UUID")[0] for line in out.stdout.splitlines() if line.startswith("GPU ")]
            if out.returncode == 0 and gpus:
                return "; ".join(gpus)
        except (OSError, subprocess.SubprocessError):
            pass
    if (root / "dev/nvidia0").exists():
        return "NVIDIA GPU at /dev/nvidia0"
    release = l4t_release(root)
    if release:
        return f"Jetson integrated GPU (L4T {release})"
    return ""


def jetpack_below_floor(release: str) -> str:
    """Why a Jetson's JetPack cannot run edgemeta's GPU path ('' when it can, or when not a Jetson).

    JetPack 5 (L4T r34/r35) ships Python 3.8, and its TensorRT bindings and onnxruntime-gpu wheels are built for
    that Python only; edgemeta needs Python >= 3.10 (requires-python), so no Orin profile applies there.
    """
    m = re.match(r"R(\d+)", release)
    if m and int(m.group(1)) in (34, 35):
        return (f"JetPack 5 (L4T {release}) ships Python 3.8, below edgemeta's requires-python >= "
                f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}, and its TensorRT and onnxruntime-gpu are built for that Python only")
    return ""


def detect_profile(root: Path = Path("/"), machine: str | None = None) -> tuple:
    """(profile name, why) for this machine: the board's model name first, then the architecture and GPU."""
    model = board_model(root)
    low = model.lower()
    if "raspberry pi 5" in low:
        return "raspberry-pi-5", model
    release = l4t_release(root)
    if "jetson" in low or release:
        what = model or f"Jetson, L4T {release}"
        below = jetpack_below_floor(release)
        if below:  # not an Orin profile: its TensorRT and CUDA providers cannot load from a Python >= 3.10 here
            return "arm64-cpu", f"{what}: {below}; CPU only (JetPack 6 brings the GPU path to Orin boards)"
        if "agx orin" in low:
            return "jetson-agx-orin", what
        if "orin" in low:
            return "jetson-orin-nano", what
        if "nano" in low or release.startswith("R32"):
            return "jetson-nano", what
        return "jetson-orin-nano", f"{what} (closest profile)"
    arch = machine_arch(machine)
    if arch == "x86_64":
        gpus = nvidia_gpus(root)
        return ("x86-cuda", gpus) if gpus else ("x86-cpu", "x86-64, no NVIDIA GPU visible")
    if arch == "aarch64":
        return "arm64-cpu", model or "aarch64 board not recognised"
    return "x86-cpu", f"{arch}: no profile fits this architecture"


def check_machine(profile: Profile, root: Path = Path("/")) -> Check:
    arch = machine_arch()
    cores = os.cpu_count() or 1
    board = board_model(root) or f"host {platform.node()}"
    release = l4t_release(root)
    detail = f"{board}, {arch}, {cores} cores" + (f", L4T {release}" if release else "")
    below = jetpack_below_floor(release)
    if below:
        return Check("machine", WARN, f"{detail}; {below}",
                     "flash JetPack 6 (Orin boards) for TensorRT and CUDA; meanwhile run edgemeta on the CPU from a "
                     "Python >= 3.10 (a container such as python:3.11-slim) with --device arm64-cpu")
    if arch != profile.arch:
        return Check("machine", WARN, f"{detail}; profile {profile.name} is for {profile.arch}",
                     "pick this machine's profile: edgemeta doctor without --device detects it; edgemeta devices lists them")
    if profile.threads > cores:
        return Check("machine", WARN, f"{detail}; profile asks for {profile.threads} threads",
                     f"set runtime.threads <= {cores} in the profile")
    return Check("machine", OK, detail)


# --- Python and packages ----------------------------------------------------------------------------


def check_python() -> Check:
    v = sys.version_info
    text = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        return Check("python", FAIL, text, f"edgemeta needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}: create a venv with a newer python3")
    return Check("python", OK, text)


def check_numpy() -> Check:
    return _package("numpy", "numpy", "numpy", "pip install 'numpy>=1.24'")


def check_onnxruntime() -> Check:
    return _package("onnxruntime", "onnxruntime", "onnxruntime", "pip install onnxruntime (or onnxruntime-gpu on an NVIDIA machine)")


def check_opencv() -> Check:
    return _package("opencv", "cv2", "opencv", "pip install opencv-python (on a Jetson: JetPack's OpenCV, sudo apt install python3-opencv)")


def check_torch() -> Check:
    # Only train/eval/export need torch; reading the version from metadata keeps doctor torch-free.
    version = _dist_version("torch")
    if version is None:
        return Check("torch", OK, "not installed (only train, eval and export need it: pip install 'edgemeta[train]')")
    return Check("torch", OK, f"{version} (for train, eval and export; the runtime does not use it)")


def _package(name: str, module: str, key: str, install: str) -> Check:
    try:
        mod = __import__(module)
    except Exception as e:  # ImportError, or a broken binary (missing libGL, numpy ABI mismatch, ...)
        return Check(name, FAIL, f"cannot import {module}: {_first_line(e)}", install)
    version = str(getattr(mod, "__version__", "?"))
    dists = [d for d in DISTRIBUTIONS.get(key, ()) if _dist_version(d) is not None]
    if len(dists) > 1:
        keep = dists[0] if key == "opencv" else "onnxruntime-gpu"
        return Check(name, WARN, f"{version}, but {' and '.join(dists)} are all installed and overwrite each other's files",
                     f"pip uninstall -y {' '.join(dists)} && pip install {keep}")
    minimum = MIN_VERSIONS.get(key)
    if minimum and version_tuple(version) < version_tuple(minimum):
        return Check(name, WARN, f"{version} is older than {minimum}, the oldest edgemeta is tested with",
                     f"pip install -U '{dists[0] if dists else name}>={minimum}'")
    return Check(name, OK, version + (f" ({dists[0]})" if dists else ""))


# --- accelerators -----------------------------------------------------------------------------------


def short_provider(name: str) -> str:
    return {TRT: "TensorRT", CUDA: "CUDA", CPU: "CPU"}.get(name, name.replace("ExecutionProvider", ""))


def check_providers(profile: Profile) -> Check:
    """The providers a session really gets: a tiny model opened (and run) with the profile's providers."""
    try:
        import onnxruntime as ort

        offered = ort.get_available_providers()
    except Exception as e:
        return Check("providers", FAIL, f"onnxruntime unusable: {_first_line(e)}", "reinstall onnxruntime")
    requested = profile.available_providers(offered)
    got, error, messages = probe_session(ort, requested)
    if got is None:
        return Check("providers", FAIL, f"a one-node session with {' > '.join(short_provider(p) for p in requested)} "
                     f"failed: {error}", "reinstall onnxruntime (pip install --force-reinstall onnxruntime)")
    detail = f"a test session ran on {' > '.join(short_provider(p) for p in got)}"
    not_loaded = [p for p in requested if p not in got]
    not_built = [p for p in profile.providers if p not in offered and p != CPU]
    if not not_loaded and not not_built:
        return Check("providers", OK, detail)
    if not_loaded:
        why = _provider_message(messages, not_loaded)
        detail += (f"; {', '.join(short_provider(p) for p in not_loaded)} compiled into this onnxruntime but did not "
                   f"load" + (f" ({why})" if why else ""))
    if not_built:
        detail += f"; this onnxruntime lacks {', '.join(short_provider(p) for p in not_built)} (has {', '.join(short_provider(p) for p in offered)})"
    return Check("providers", WARN, detail, _providers_fix(profile, not_built, not_loaded))


def _providers_fix(profile: Profile, not_built: list, not_loaded: list) -> str:
    if not_built and any(p in (TRT, CUDA) for p in not_built):
        if profile.arch == "aarch64":
            return ("install NVIDIA's onnxruntime-gpu for your JetPack: pip uninstall -y onnxruntime && "
                    f"pip install onnxruntime-gpu --index-url {JETSON_ORT_INDEX} (JetPack 6; see devices/README.md)")
        return "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (CUDA 12, cuDNN 9)"
    if not_built:
        return f"install an onnxruntime build with {', '.join(not_built)}, or remove it from the profile"
    if TRT in not_loaded:
        return ("TensorRT's libraries (libnvinfer) must be found: pip install 'edgemeta[trt]', or on a Jetson "
                "sudo apt install nvidia-jetpack; the CUDA provider runs meanwhile")
    return "install the CUDA 12 and cuDNN 9 libraries this onnxruntime-gpu was built for (nvidia-smi must list the GPU)"


def probe_session(ort, providers: list) -> tuple:
    """(providers the session got, or None; the error if it could not open or run; what onnxruntime printed).

    Providers get only their device: the profile's engine cache and precision options would write engines
    for the probe into the state folder. What onnxruntime prints while it falls back (its C++ log on stderr,
    its Python fallback notice on stdout) is captured, so `doctor --json` stays JSON, and kept for the detail.
    """
    import numpy as np

    from edgemeta.devices.probe_model import INPUT, WIDTH, probe_model_bytes

    entries = [(p, {"device_id": 0}) if p in (TRT, CUDA) else p for p in providers]
    x = np.linspace(-1, 1, WIDTH, dtype=np.float32).reshape(1, WIDTH)
    with _captured_output() as printed:
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 2  # warnings: a provider that fails to load says why at this level
            session = ort.InferenceSession(probe_model_bytes(), options, providers=entries)
            (y,) = session.run(None, {INPUT: x})
            got, error = list(session.get_providers()), None
            if not np.array_equal(np.asarray(y), np.maximum(x, 0)):
                got, error = None, "it ran, but Relu came out wrong"
        except Exception as e:
            got, error = None, _first_line(e)
    return got, error, printed.text


def _provider_message(text: str, providers: list) -> str:
    """The line onnxruntime printed about why one of `providers` did not load, shortened; '' if none."""
    names = [p for p in providers] + [short_provider(p) for p in providers] + ["libnvinfer", "libcudnn", "libcublas", "libcudart"]
    for line in text.splitlines():
        if any(n in line for n in names) and ("rror" in line or "ail" in line or "cannot" in line or "not found" in line):
            line = re.sub(r"^\S+ \S+ \[[A-Z]\S*\] ", "", line.strip())  # onnxruntime's timestamp/severity prefix
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


class _Printed:
    text = ""


@contextlib.contextmanager
def _captured_output():
    """Redirect file descriptors 1 and 2 (C++ logs and Python prints alike) into a temporary file."""
    printed = _Printed()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    out = io.StringIO()  # Python-level prints, when sys.stdout is not file descriptor 1 (pytest, click's runner)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(out):
                yield printed
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            printed.text = sink.read().decode(errors="replace") + out.getvalue()


def check_tensorrt(profile: Profile) -> Check:
    needed = profile.uses(TRT)
    if importlib.util.find_spec("tensorrt") is None:
        if not needed:
            return Check("tensorrt", OK, "not installed (not used by this profile)")
        fix = ("JetPack ships it: sudo apt install nvidia-jetpack, and create the venv with --system-site-packages"
               if profile.arch == "aarch64" else "pip install 'edgemeta[trt]'")
        return Check("tensorrt", WARN, "not installed: no TensorRT engines; ONNX Runtime falls back to CUDA or CPU", fix)
    try:
        import tensorrt

        version = str(tensorrt.__version__)
    except Exception as e:
        return Check("tensorrt", WARN, f"installed but import failed: {_first_line(e)}",
                     "reinstall TensorRT for this CUDA version (pip install -U 'edgemeta[trt]', or JetPack's apt packages)")
    from edgemeta.runtime.backends.trt import tensorrt_version_problem

    problem = tensorrt_version_problem(version)
    if problem:
        detail, _, fix = problem.partition(": pip install")
        return Check("tensorrt", WARN, detail, "pip install" + fix if fix else "use the CUDA/CPU providers")
    return Check("tensorrt", OK, f"TensorRT {version}" + ("" if needed else " (not used by this profile)"))


def check_gpu(profile: Profile, root: Path = Path("/")) -> Check:
    gpus = nvidia_gpus(root)
    needed = profile.uses(TRT) or profile.uses(CUDA)
    if gpus:
        hint = "" if needed else "; this profile runs on the CPU (try --device x86-cuda)" if machine_arch() == "x86_64" else ""
        return Check("gpu", OK, gpus + hint)
    if not needed:
        return Check("gpu", OK, "no NVIDIA GPU visible (not used by this profile)")
    fix = ("on a Jetson run on the host or with docker run --runtime nvidia" if profile.arch == "aarch64"
           else "install the NVIDIA driver (nvidia-smi must list the GPU); in Docker add --gpus all")
    return Check("gpu", WARN, "no NVIDIA GPU visible (no nvidia-smi GPU, no /dev/nvidia0, not a Jetson): the CPU provider takes over", fix)


# --- Jetson power and the native kernel ---------------------------------------------------------------


def check_power(root: Path = Path("/")) -> Check:
    """A Jetson's power mode (`nvpmodel -q`) and clocks (`jetson_clocks --show`), where those tools exist."""
    nvpmodel, clocks = shutil.which("nvpmodel"), shutil.which("jetson_clocks")
    if not (nvpmodel or clocks):
        if l4t_release(root):
            return Check("power", WARN, "a Jetson, but nvpmodel and jetson_clocks are not on PATH: power mode unknown",
                         "sudo apt install nvidia-l4t-tools (in a container: run edgemeta doctor on the host)")
        return Check("power", OK, "not a Jetson (no nvpmodel): nothing to report")
    parts = []
    if nvpmodel:
        out, error = _run_tool([nvpmodel, "-q"])
        mode = re.search(r"NV Power Mode:\s*(.+)", out)
        number = re.search(r"^\s*(\d+)\s*$", out, re.MULTILINE)
        parts.append(f"power mode {mode.group(1).strip()}" + (f" (nvpmodel -m {number.group(1)})" if number else "")
                     if mode else f"nvpmodel -q: {error or 'no power mode in its output'}")
    if clocks:
        out, error = _run_tool([clocks, "--show"])
        summary = _clock_summary(out)
        parts.append(f"clocks {summary}" if summary else f"jetson_clocks --show: {error or 'no clocks in its output'} "
                     "(it needs root: sudo edgemeta doctor shows them)")
    return Check("power", OK, "; ".join(parts))


def _clock_summary(text: str) -> str:
    """'CPU 1510/1510 MHz, GPU 306/625 MHz, EMC 2133/2133 MHz' (current/max) from `jetson_clocks --show`."""
    found = []
    cpu = re.search(r"^cpu0:.*?MaxFreq=(\d+).*?CurrentFreq=(\d+)", text, re.MULTILINE)
    if cpu:  # kHz
        found.append(f"CPU {int(cpu.group(2)) // 1000}/{int(cpu.group(1)) // 1000} MHz")
    for name in ("GPU", "EMC"):  # Hz
        m = re.search(rf"^{name} .*?MaxFreq=(\d+).*?CurrentFreq=(\d+)", text, re.MULTILINE)
        if m:
            found.append(f"{name} {int(m.group(2)) // 10**6}/{int(m.group(1)) // 10**6} MHz")
    if found:
        found[-1] += " (current/max; sudo jetson_clocks holds them at max for steady step times)"
    return ", ".join(found)


def _run_tool(cmd: list) -> tuple:
    """(stdout, '' or why it failed) of a board tool, bounded in time."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return "", _first_line(e)
    why = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return done.stdout, why


def check_native() -> Check:
    """Which int8 kernel the native C step runs here (avx2, neon or plain C): the shipped mann learner is
    loaded on it, compiling the step into the user's build cache as its first use would."""
    try:
        from edgemeta.runtime.backends.native.backend import NativeBackend
        from edgemeta.runtime.learner import resolve_learner

        backend = NativeBackend(resolve_learner("mann"))
    except Exception as e:  # EdgemetaError: no compiler, a refused cache, ...; the ONNX Runtime backend still runs
        return Check("native", WARN, f"--backend native unavailable: {_first_line(e)}",
                     "install a C compiler (sudo apt install build-essential); ONNX Runtime runs meanwhile")
    kernel = backend.kernel
    backend.close()
    expected = {"x86_64": "avx2", "aarch64": "neon"}.get(machine_arch())
    detail = f"--backend native runs the {kernel} int8 kernel"
    if expected and kernel != expected:
        detail += f" (this CPU or compiler offers no {expected})"
    return Check("native", OK, detail)


# --- camera and display -----------------------------------------------------------------------------


def check_camera(profile: Profile, source: str | None = None, timeout_s: float = CAMERA_TIMEOUT_S) -> Check:
    """Open the camera the demo would open (runtime/camera/sources.py) and read one frame; problems are WARN."""
    uri = source or profile.camera
    width, height = profile.resolution
    other = "or pass another --source to the demo"
    try:
        from edgemeta import EdgemetaError
        from edgemeta.runtime.camera import sources as video

        spec = video.parse_uri(uri, width, height, profile.fps)
    except EdgemetaError as e:
        return Check("camera", WARN, str(e), f"fix the camera URI, {other}")
    except Exception as e:  # OpenCV missing or broken: the opencv row says why
        return Check("camera", WARN, f"cannot check {uri}: {_first_line(e)}", "fix OpenCV first (see the opencv row)")
    if spec.kind == "synthetic":
        return Check("camera", OK, f"{uri}: the synthetic camera, nothing to open")
    if spec.kind == "v4l2":
        node = spec.target if isinstance(spec.target, str) else f"/dev/video{spec.target}"
        if not Path(node).exists():
            return Check("camera", WARN, f"no camera at {node}",
                         f"plug in a camera (ls /dev/video*; v4l2-ctl --list-devices), {other}")
        if not os.access(node, os.R_OK | os.W_OK):
            return Check("camera", WARN, f"{node} exists but this user may not open it",
                         "sudo usermod -aG video $USER, then log in again")
    if spec.kind == "csi":
        if not video._gstreamer_available():
            return Check("camera", WARN, f"{uri}: this OpenCV was built without GStreamer, which csi:// cameras need",
                         "use JetPack's OpenCV: pip uninstall -y opencv-python; sudo apt install python3-opencv; venv with --system-site-packages")
        if not _gst_element("nvarguscamerasrc"):
            return Check("camera", WARN, f"{uri}: GStreamer element nvarguscamerasrc not found (not a Jetson, or JetPack's GStreamer plugins missing)",
                         f"on a Jetson: sudo apt install nvidia-l4t-gstreamer; {other}")
    frame, error = _grab_frame(video, uri, width, height, profile.fps, timeout_s)
    if error is not None:
        return Check("camera", WARN, f"{uri}: {error}", f"check the camera, {other}")
    if frame is None:
        return Check("camera", WARN, f"{uri} opened but sent no frame within {timeout_s:g} s",
                     "close other programs using the camera; for csi://: sudo systemctl restart nvargus-daemon")
    return Check("camera", OK, f"{uri}: got a {frame.shape[1]}x{frame.shape[0]} frame")


def _grab_frame(video, uri, width, height, fps, timeout_s):
    """One frame from a fresh source, in a thread so a hung driver cannot hang doctor."""
    result = {}

    def grab():
        try:
            src = video.VideoSource(uri, width=width, height=height, fps=fps, timeout_ms=int(timeout_s * 1000),
                                    reconnect_tries=0)
            try:
                result["frame"] = src.read()
            finally:
                src.close()
        except Exception as e:
            result["error"] = _first_line(e)

    worker = threading.Thread(target=grab, daemon=True)
    worker.start()
    worker.join(timeout_s + 2)
    if worker.is_alive():
        return None, f"no answer within {timeout_s:g} s"
    return result.get("frame"), result.get("error")


def _gst_element(name: str) -> bool:
    inspect = shutil.which("gst-inspect-1.0")
    if not inspect:
        return False
    try:
        return subprocess.run([inspect, name], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def check_display() -> Check:
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        return Check("display", WARN, "no display (DISPLAY and WAYLAND_DISPLAY are unset): only the headless demo runs",
                     "use edgemeta demo --headless here, or run the window demo in a desktop session, over ssh -X or under Xvfb")
    gui = opencv_gui()
    if gui in ("", "NONE"):
        return Check("display", WARN, f"display {display}, but this OpenCV has no GUI backend (a -headless build?)",
                     "pip uninstall -y opencv-python-headless && pip install opencv-python")
    return Check("display", OK, f"{display} (OpenCV GUI: {gui})")


def opencv_gui() -> str:
    """OpenCV's GUI backend ('QT5', 'GTK3', ... or 'NONE'); '' when OpenCV is missing."""
    try:
        import cv2

        m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
        return m.group(1) if m else ""
    except Exception:
        return ""


# --- storage ----------------------------------------------------------------------------------------


def check_data() -> Check:
    """The Omniglot folder the synthetic camera (and training) would use, and how it was found."""
    from edgemeta.runtime.omniglot import conventional_places, find_data_dir, has_omniglot

    found = find_data_dir()
    download = "edgemeta data download (into ~/.cache/edgemeta/omniglot, where it is found), or set EDGEMETA_DATA=DIR"
    if found is None:
        places = ", ".join(str(path) for path, _ in conventional_places())
        return Check("data", WARN, f"only the embedded demo set (no Omniglot folder in $EDGEMETA_DATA, {places}): the demo "
                                   "runs, training and evaluation need the full data set", download)
    path, how = found
    if not has_omniglot(path):
        return Check("data", WARN, f"{path} ({how}) holds no Omniglot (images_background.zip or images_background/)",
                     f"edgemeta data download {path}")
    return Check("data", OK, f"{path} ({how})")



def check_state_dir(profile: Profile) -> Check:
    d = profile.state_dir
    service = "the service's StateDirectory=edgemeta creates /var/lib/edgemeta for it"
    if d.exists():
        if not d.is_dir():
            return Check("state dir", FAIL, f"{d} is a file, not a folder", "move it away or set state_dir in the profile")
        try:
            with tempfile.NamedTemporaryFile(dir=d, prefix=".edgemeta-doctor."):
                pass
        except OSError as e:
            return Check("state dir", FAIL, f"{d} is not writable ({e.strerror})",
                         f"sudo chown -R $USER {d}, or run as the user that owns it")
        return Check("state dir", OK, f"{d} is writable")
    parent = _existing_ancestor(d)
    if not parent.is_dir():
        return Check("state dir", FAIL, f"{d} cannot be created: {parent} is a file",
                     "set state_dir in the profile to a folder you can write")
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check("state dir", FAIL, f"{d} does not exist and {parent} is not writable",
                     f"sudo install -d -o $USER {d} ({service})")
    return Check("state dir", OK, f"{d} does not exist yet; it will be created in {parent}")


def check_disk(profile: Profile) -> Check:
    where = _existing_ancestor(profile.state_dir)
    free_mb = shutil.disk_usage(where).free / 2**20
    detail = f"{free_mb / 1024:.1f} GiB free on {where}"
    fix = "free some space (old recordings, logs, docker images: docker system prune)"
    if free_mb < DISK_FAIL_MB:
        return Check("disk", FAIL, detail + f" (< {DISK_FAIL_MB} MiB: the next save can fail)", fix)
    if free_mb < DISK_WARN_MB:
        return Check("disk", WARN, detail + f" (< {DISK_WARN_MB} MiB)", fix)
    return Check("disk", OK, detail)


# --- helpers ----------------------------------------------------------------------------------------


def version_tuple(text: str) -> tuple:
    """'4.8.0.76' -> (4, 8, 0); '2.13.0+cpu' -> (2, 13, 0); unparseable -> ()."""
    return tuple(int(n) for n in re.findall(r"\d+", str(text).split("+")[0])[:3])


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _existing_ancestor(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _first_line(e) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
