"""The TensorRT path on any machine, against the test double in tests/trt_double.py (a Builder, typed
streams, asynchronous copies with buffer lifetimes): the torch-free engine build (`edgemeta export
learner.onnx --trt`), the backend's double-buffered state and partial commits, the version window,
the built-for record and the batch profile. The real thing is tested by test_runtime_trt.py where
TensorRT and a GPU exist."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import trt_double
from runtime_toy import toy_learner

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner
from edgemeta.runtime.backends.trt_build import build_engine_file


@pytest.fixture
def fakes(monkeypatch):
    return trt_double.install(monkeypatch)


@pytest.fixture
def export_dir(tiny_onnx, tmp_path):
    shutil.copy(tiny_onnx, tmp_path / "learner.onnx")
    return tmp_path


@pytest.fixture
def engine(fakes, export_dir):
    build_engine_file(export_dir / "learner.onnx", max_batch=4, batch=1, workspace_mb=256, log=lambda s: None)
    return export_dir / "learner.engine"


def test_engine_build_without_torch_tunes_for_the_device_batch(fakes, export_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # the build must not need torch
    lines = []
    report = build_engine_file(export_dir / "learner.onnx", max_batch=4, batch=1, workspace_mb=256, log=lines.append)
    assert report["parity"]["passed"] and report["parity"]["prediction_mismatches"] == 0
    network, config = fakes[1].built[-1]
    assert config.pools["workspace"] == 256 << 20  # the device profile's workspace
    assert "TF32" not in config.flags
    lo, opt, hi = config.profiles[0].shapes["image"]
    assert (lo[0], opt[0], hi[0]) == (1, 1, 4)  # tuned for the batch the device runs
    sidecar = json.loads((export_dir / "learner.engine.json").read_text())
    assert sidecar["built_for"] == {"tensorrt": "10.3.0", "gpu": "Fake Orin", "compute_capability": "8.7"}
    assert (export_dir / "learner.engine.log").read_text().startswith("=== fp32 engine")
    assert any("prediction mismatches" in line for line in lines)


def test_engine_runner_matches_onnxruntime(fakes, engine, tmp_path):
    cudart, _ = fakes
    rng = np.random.default_rng(0)
    images = (rng.random((8, 3, 1, 12, 12)) < 0.15).astype(np.float32)
    labels = rng.integers(-1, 3, (8, 3))
    with Learner.load(engine, batch=3) as trt, Learner.load(engine.with_suffix(".onnx"), batch=3) as ort:
        assert trt.backend == "TensorRT 10.3.0 engine"
        for t in range(8):
            np.testing.assert_allclose(trt.predict(images[t]).logits, ort.predict(images[t]).logits, atol=1e-6)
            np.testing.assert_allclose(trt.teach(images[t], labels[t]).logits, ort.teach(images[t], labels[t]).logits, atol=1e-6)
        for name, value in ort.state().items():
            np.testing.assert_allclose(trt.state()[name], value, atol=1e-6)
        trt.save_state(tmp_path / "s.npz")
        trt.reset()
        assert all(np.all(v == 0) for v in trt.state().values())
        trt.load_state(tmp_path / "s.npz")
        np.testing.assert_allclose(trt.predict(images[0]).logits, ort.predict(images[0]).logits, atol=1e-6)
    kinds = trt_double.FakeCudart.cudaMemcpyKind
    assert kinds.cudaMemcpyDeviceToDevice in cudart.copies  # partial commits stayed on the device
    assert sorted(cudart.freed) == sorted(cudart.buffers)  # close() freed every allocation
    assert not cudart.streams  # and destroyed its stream


def test_the_double_catches_a_stream_object_and_an_early_read(fakes, engine):
    cudart, _ = fakes
    with Learner.load(engine, batch=1) as learner:
        ctx, cuda = learner._backend.context, learner._backend._cuda
        with pytest.raises(TypeError, match="stream_handle must be an int"):
            ctx.execute_async_v3(cuda.stream)  # the typed stream itself, not its handle
        host = np.ones(4, np.float32)
        ptr = cuda.malloc(16)
        cuda.to_device(ptr, host)
        host[0] = 5  # changed before the asynchronous copy ran
        with pytest.raises(trt_double.CudaMisuse, match="before its asynchronous copy ran"):
            cuda.sync()


def test_engine_metadata_sidecar_and_errors(fakes, engine, tmp_path):
    with pytest.raises(EdgemetaError, match=r"built for batch 1..4; asked for batch 5"):
        Learner.load(engine, batch=5)
    doc = json.loads((tmp_path / "learner.engine.json").read_text())
    (tmp_path / "learner.onnx").unlink()
    with Learner.load(engine) as learner:  # the sidecar carries the metadata
        assert learner.num_classes == 3
    (tmp_path / "learner.engine.json").unlink()
    with pytest.raises(EdgemetaError, match="has no metadata: keep the learner.onnx"):
        Learner.load(engine)
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"X" + engine.read_bytes())
    (tmp_path / "bad.engine.json").write_text(json.dumps({"edgemeta": doc["edgemeta"]}))
    with pytest.raises(EdgemetaError, match="engines only run with the TensorRT version and GPU they were built on"):
        Learner.load(bad)


def test_engine_from_another_gpu_or_tensorrt_is_refused_in_one_line(engine, monkeypatch):
    trt_double.install(monkeypatch, version="10.3.0", gpu=b"NVIDIA GeForce RTX 4090", capability=(8, 9))
    with pytest.raises(EdgemetaError, match=r"built for TensorRT 10.3.0 on Fake Orin \(sm 8.7\); this is TensorRT 10.3.0 on "
                                            r"NVIDIA GeForce RTX 4090 \(sm 8.9\): rebuild it here with `edgemeta export .*learner.onnx --trt`"):
        Learner.load(engine)
    trt_double.install(monkeypatch, version="10.7.0")
    with pytest.raises(EdgemetaError, match="built for TensorRT 10.3.0 on Fake Orin .* this is TensorRT 10.7.0"):
        Learner.load(engine)


@pytest.mark.parametrize("version", ["11.0.0", "8.5.3"])
def test_tensorrt_outside_the_supported_window_is_refused(monkeypatch, export_dir, version):
    trt_double.install(monkeypatch, version=version)
    with pytest.raises(EdgemetaError, match=r"tensorrt-cu12>=8.6,<11") as err:
        build_engine_file(export_dir / "learner.onnx", log=lambda s: None)
    assert "\n" not in str(err.value)


def test_int8_file_is_never_handed_to_tensorrt(fakes, tmp_path):
    from edgemeta.runtime.learner import LEARNERS_DIR

    shutil.copy(LEARNERS_DIR / "mann-int8.onnx", tmp_path / "learner.int8.onnx")
    with pytest.raises(EdgemetaError, match="int8 file for ONNX Runtime on CPUs .*MatMulInteger.* build the engine from learner.onnx"):
        build_engine_file(tmp_path / "learner.int8.onnx", log=lambda s: None)
    assert not fakes[1].built and not (tmp_path / "learner.engine").exists()


def test_no_gpu_is_one_line(monkeypatch, export_dir):
    trt_double.install(monkeypatch, devices=0)
    with pytest.raises(EdgemetaError, match="no CUDA GPU is visible"):
        build_engine_file(export_dir / "learner.onnx", log=lambda s: None)


def test_without_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path = toy_learner(tmp_path / "learner.onnx")
    shutil.copy(path, tmp_path / "learner.engine")
    with pytest.raises(EdgemetaError, match=r"TensorRT is not installed: pip install edgemeta\[trt\]"):
        Learner.load(tmp_path / "learner.engine")


def test_export_command_builds_an_engine_from_learner_onnx(fakes, export_dir):
    from click.testing import CliRunner

    from edgemeta.cli import cli

    result = CliRunner().invoke(cli, ["export", str(export_dir / "learner.onnx"), "--trt", "--device", "jetson-orin-nano"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (export_dir / "learner.engine").is_file()
    _, config = fakes[1].built[-1]
    assert config.pools["workspace"] == 1024 << 20  # jetson-orin-nano's trt_workspace_mb
    result = CliRunner().invoke(cli, ["export", str(export_dir / "learner.onnx")])
    assert result.exit_code != 0 and "add --trt" in result.output


@pytest.mark.parametrize("fp16", [False, True])
def test_checkpoint_export_builds_through_the_same_builder(fakes, export_dir, fp16):
    """export/tensorrt_engine.build_engine is the runtime's builder plus the fp16 front's precision flags."""
    from edgemeta.export.tensorrt_engine import build_engine

    assert build_engine(export_dir / "learner.onnx", max_batch=8, fp16=fp16, log=[])
    _, config = fakes[1].built[-1]
    assert config.pools["workspace"] == 1024 << 20
    assert "TF32" not in config.flags
    assert ("FP16" in config.flags) == fp16
    lo, opt, hi = config.profiles[0].shapes["image"]
    assert (lo[0], opt[0], hi[0]) == (1, 1, 8)
