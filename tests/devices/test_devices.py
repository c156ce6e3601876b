"""Device profiles: every shipped one validates; broken ones fail with one line naming the key;
a profile decides which providers and threads the runtime asks for."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgemeta.cli import main
from edgemeta.devices.profiles import CPU, CUDA, TRT, ProfileError, list_profiles, load_profile, parse_profile, profiles_dir

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"x86-cpu", "x86-cuda", "jetson-orin-nano", "jetson-agx-orin", "jetson-nano", "raspberry-pi-5"}

MINIMAL = """
schema = 1
name = "mini"
description = "a test board"
arch = "x86_64"
state_dir = "{state}"

[runtime]
threads = 2
precision = "fp16"
trt_workspace_mb = 64
tensorrt = "8.6"

[[runtime.providers]]
name = "TensorrtExecutionProvider"
options = {{ trt_engine_cache_enable = true, trt_engine_cache_path = "{{state_dir}}/engines" }}

[[runtime.providers]]
name = "CPUExecutionProvider"

[camera]
uri = "/dev/video0"
width = 640
height = 480
fps = 30

[reference.mann]
measured = false
"""


def minimal(tmp_path) -> str:
    return MINIMAL.format(state=tmp_path / "state")


# --- shipped profiles ---------------------------------------------------------------------------------


def test_the_boards_of_the_issue_are_shipped():
    assert REQUIRED <= set(list_profiles())
    assert profiles_dir() == REPO / "devices" / "boards"


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_loads_and_is_consistent(name):
    p = load_profile(name)
    assert p.name == name and p.description and p.source == f"devices/{name}.toml"
    assert p.providers[-1] == CPU and len(p.provider_options) == len(p.providers)
    assert p.arch in ("x86_64", "aarch64") and p.precision in ("fp32", "fp16")
    w, h = p.resolution
    assert w > 0 and h > 0 and p.fps > 0 and p.camera
    assert p.state_file == p.state_dir / "state.npz" and "~" not in str(p.state_dir)
    if TRT in p.providers:
        trt = p.provider_options[p.providers.index(TRT)]
        assert trt["trt_fp16_enable"] == (p.precision == "fp16")
        assert trt["trt_max_workspace_size"] == p.trt_workspace_mb * 2**20
        assert trt["trt_engine_cache_enable"] is True
        assert Path(trt["trt_engine_cache_path"]).parent == p.state_dir  # placeholder filled in
    else:
        assert p.trt_workspace_mb is None
    # No invented numbers: every reference is either unmeasured (and numberless) or fully described.
    assert {"mann", "default"} <= set(p.reference)
    for ref in p.reference.values():
        assert ref["measured"] or set(ref) <= {"measured", "notes"}


def test_orin_jetsons_prefer_tensorrt_fp32_then_cuda_and_read_a_csi_camera():
    # fp32: full fp16 over learner.onnx breaks MANN's slot choice
    for name in ("jetson-orin-nano", "jetson-agx-orin"):
        p = load_profile(name)
        assert p.providers == [TRT, CUDA, CPU] and p.precision == "fp32" and p.arch == "aarch64"
        assert p.camera == "csi://0"


def test_jetson_nano_is_cpu_only_and_says_why():
    p = load_profile("jetson-nano")
    assert p.providers == [CPU] and p.trt_workspace_mb is None and p.camera == "csi://0"
    notes = " ".join(p.notes)
    assert "TensorRT 8.2" in notes and "Python 3.6" in notes and "opset <= 13" in notes and "CPU only" in p.description


def test_load_by_path_and_by_name_agree(tmp_path):
    copy = tmp_path / "board.toml"
    copy.write_text((REPO / "devices" / "boards" / "x86-cuda.toml").read_text())
    by_path, by_name = load_profile(copy), load_profile("x86-cuda")
    assert by_path.providers == by_name.providers and by_path.provider_options == by_name.provider_options
    assert by_path.source == str(copy)


def test_unknown_name_lists_the_known_profiles():
    with pytest.raises(ProfileError, match="unknown device profile 'jetson-tx2'.*jetson-orin-nano"):
        load_profile("jetson-tx2")
    with pytest.raises(ProfileError, match="not found"):
        load_profile("/nonexistent/board.toml")


# --- broken profiles ------------------------------------------------------------------------------------


BROKEN = [
    # (what to change in MINIMAL, the key the message must name, a phrase it must contain)
    (('schema = 1', 'schema = 1\ncolour = "red"'), "colour", "unknown key"),
    (("threads = 2", "threads = 2\nthread = 4"), "runtime.thread", "unknown key"),
    (("threads = 2", 'threads = "four"'), "runtime.threads", "must be an integer"),
    (("threads = 2", "threads = true"), "runtime.threads", "must be an integer"),
    (("threads = 2", "threads = -1"), "runtime.threads", ">= 0"),
    (('uri = "/dev/video0"\n', ""), "camera.uri", "missing required key"),
    (('name = "mini"\n', ""), "name", "missing required key"),
    (('precision = "fp16"', 'precision = "int4"'), "runtime.precision", "must be one of fp32, fp16"),
    (('arch = "x86_64"', 'arch = "riscv"'), "arch", "must be one of"),
    (("width = 640", "width = 0"), "camera.width", "between 1 and"),
    (("measured = false", "measured = false\nstep_us_median = 21.0"), "reference.mann.step_us_median",
     "measured = false"),
    (("measured = false", "measured = true\nstep_us_median = 21.0"), "reference.mann.backend", "missing required key"),
    (("measured = false", 'measured = "no"'), "reference.mann.measured", "must be true or false"),
    (("trt_engine_cache_enable = true", "trt_fp16_enable = true"),
     "runtime.providers[0].options.trt_fp16_enable", "runtime.precision"),
    (("{state_dir}/engines", "{home}/engines"), "runtime.providers[0].options.trt_engine_cache_path", "placeholder"),
    (('name = "CPUExecutionProvider"', 'name = "CPU"'), "runtime.providers[1].name", "provider name"),
    (('[[runtime.providers]]\nname = "CPUExecutionProvider"\n', ""), "runtime.providers", f"must end with {CPU}"),
    (("trt_workspace_mb = 64\n", ""), "runtime.trt_workspace_mb", "missing required key"),
    (('tensorrt = "8.6"\n', ""), "runtime.tensorrt", "missing required key"),
    (('tensorrt = "8.6"', 'tensorrt = "latest"'), "runtime.tensorrt", "must be a version like"),
    (("schema = 1", "schema = 2"), "schema", "reads schema 1"),
    (("[camera]", "[camera\n"), None, "not valid TOML"),
]


@pytest.mark.parametrize("change,key,phrase", BROKEN, ids=[b[2] + ":" + str(b[1]) for b in BROKEN])
def test_broken_profile_is_one_line_naming_the_key(tmp_path, change, key, phrase):
    old, new = change
    text = minimal(tmp_path)
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert phrase in message
    if key is not None:
        assert f"'{key}'" in message


def test_the_minimal_profile_itself_is_valid(tmp_path):
    p = parse_profile(minimal(tmp_path), "mini.toml")
    assert p.providers == [TRT, CPU] and p.threads == 2
    assert p.provider_options[0]["trt_engine_cache_path"] == str(tmp_path / "state" / "engines")


def test_a_shipped_profile_must_match_its_file_name():
    text = (REPO / "devices" / "boards" / "x86-cpu.toml").read_text()
    with pytest.raises(ProfileError, match="'name' is 'x86-cpu' but the file is laptop.toml"):
        parse_profile(text, "devices/laptop.toml", expect_name="laptop")


def test_cli_reports_a_broken_profile_in_one_line(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text(minimal(tmp_path).replace("threads = 2", 'threads = "two"'))
    assert main(["devices", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "'runtime.threads'" in err
    assert main(["doctor", "--device", str(path)]) == 1
    assert "'runtime.threads'" in capsys.readouterr().err


# --- what the runtime is asked for ------------------------------------------------------------------


def test_device_changes_the_providers_the_runtime_asks_for():
    cpu, cuda = load_profile("x86-cpu").learner_kwargs(), load_profile("x86-cuda").learner_kwargs()
    assert [name for name, _ in cpu["providers"]] == [CPU]
    assert [name for name, _ in cuda["providers"]] == [TRT, CUDA, CPU]
    trt_options = dict(cuda["providers"])[TRT]
    assert trt_options["trt_engine_cache_enable"] is True and trt_options["trt_fp16_enable"] is False
    assert dict(cuda["providers"])[CUDA] == {"device_id": 0}
    assert cpu["threads"] == 1
    orin = dict(load_profile("jetson-orin-nano").learner_kwargs()["providers"])
    assert orin[TRT]["trt_fp16_enable"] is False and orin[TRT]["trt_max_workspace_size"] == 1024 * 2**20


def test_available_providers_keeps_the_profile_order_and_the_cpu_last_resort():
    p = load_profile("x86-cuda")
    assert p.available_providers(["CPUExecutionProvider"]) == [CPU]
    assert p.available_providers([]) == [CPU]
    assert p.available_providers([CPU, CUDA, "AzureExecutionProvider"]) == [CUDA, CPU]
    assert p.available_providers([CPU, CUDA, TRT]) == [TRT, CUDA, CPU]
    kwargs = p.learner_kwargs([CUDA, CPU])
    assert kwargs["providers"] == [(CUDA, {"device_id": 0}), (CPU, {})]
    assert load_profile("raspberry-pi-5").available_providers([TRT, CUDA, CPU]) == [CPU]


def test_zero_threads_means_onnxruntime_default(tmp_path):
    p = parse_profile(minimal(tmp_path).replace("threads = 2", "threads = 0"))
    assert p.learner_kwargs()["threads"] is None


@pytest.fixture(scope="module")
def small_learner(tmp_path_factory):
    """An untrained, small MANN exported with the real exporter."""
    torch = pytest.importorskip("torch")
    from edgemeta.export.onnx_export import export_step
    from edgemeta.models import build_learner
    from edgemeta.runtime.preprocess import PREPROCESS_ID

    torch.manual_seed(0)
    from edgemeta.training.presets import preset

    cfg = preset("mann").model_config(controller=16, memory_slots=8, memory_width=8, read_heads=1)
    meta = {"name": "mann", "task": "omniglot", "preprocess": PREPROCESS_ID, "config": {"model": cfg.to_dict()},
            "eval": {}, "episode_steps": 50}
    return export_step(build_learner(cfg), tmp_path_factory.mktemp("learner") / "learner.onnx", meta)


@pytest.mark.slow
def test_a_learner_loaded_with_a_profile_asks_ort_for_its_providers_and_threads(small_learner, tmp_path, monkeypatch):
    import onnxruntime as ort

    from edgemeta import EdgemetaError
    from edgemeta.runtime.learner import Learner

    asked = []
    real = ort.InferenceSession

    class Spy(real):
        def __init__(self, path, sess_options=None, providers=None, **kw):
            asked.append((providers, sess_options.intra_op_num_threads if sess_options else None))
            super().__init__(path, sess_options, providers=providers, **kw)

    monkeypatch.setattr(ort, "InferenceSession", Spy)
    three = parse_profile(minimal(tmp_path).replace("threads = 2", "threads = 3"))
    with Learner.load(small_learner, **three.learner_kwargs(ort.get_available_providers())) as learner:
        assert "CPUExecutionProvider" in learner.backend
    providers, threads = asked[-1]
    names = [p if isinstance(p, str) else p[0] for p in providers]
    assert names == three.available_providers(ort.get_available_providers()) and threads == 3

    # The profile's full request reaches the runtime: here without TensorRT, it is refused by name.
    if TRT not in ort.get_available_providers():
        with pytest.raises(EdgemetaError, match="TensorrtExecutionProvider is not available"):
            Learner.load(small_learner, **load_profile("x86-cuda").learner_kwargs())


# --- `edgemeta devices` ---------------------------------------------------------------------------------


def test_devices_lists_every_profile_with_providers_and_references(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in list_profiles():
        assert re.search(rf"^{re.escape(name)}\s", out, re.MULTILINE)
    assert "TensorRT (fp32) > CUDA > CPU" in out and "mann not measured" in out
    assert out.count("<- this machine") == 1


def test_devices_shows_one_profile_in_full(capsys):
    assert main(["devices", "jetson-orin-nano"]) == 0
    out = capsys.readouterr().out
    assert "csi://0 1280x720" in out and "/var/lib/edgemeta" in out and "trt_engine_cache_path=/var/lib/edgemeta/trt-engines" in out
    assert "1024 MiB" in out


def test_a_measured_reference_is_shown_with_how_it_was_measured(tmp_path, capsys):
    measured = minimal(tmp_path).replace(
        "measured = false",
        'measured = true\nstep_us_median = 12.5\nbackend = "ort"\nbatch = 1\nthreads = 1\n'
        'command = "edgemeta bench mann --threads 1"\ndate = "2026-01-01"',
    )
    path = tmp_path / "measured.toml"
    path.write_text(measured)
    assert main(["devices", str(path)]) == 0
    assert "mann 12.5 us/step (ort, batch 1, 1 thread, 2026-01-01)" in capsys.readouterr().out


def test_profiles_module_is_torch_free():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgemeta.devices.profiles import load_profile, list_profiles\n"
        "from edgemeta.devices.doctor import run_checks\n"
        "import edgemeta.cli.devices, edgemeta.cli.doctor\n"
        "[load_profile(n) for n in list_profiles()]\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
