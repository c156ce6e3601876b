"""An engine that ONNX Runtime's TensorRT provider builds on the device is checked against the CPU the first time
(runtime/backends/first_build_parity.py). No GPU here: a test double stands in for the TensorRT session."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from runtime_toy import toy_learner

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner
from edgemeta.runtime.backends import first_build_parity

TRT = "TensorrtExecutionProvider"


class TrtSessionDouble:
    """What edgemeta sees of a session the TensorRT provider got: it builds an engine into the cache folder when it
    opens, like ONNX Runtime does, and runs the graph; here the graph runs on the CPU and `bend` alters its logits."""

    def __init__(self, real, cache, bend, builds: list):
        self.real, self.bend, self.runs = real, bend, 0
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            (cache / f"TensorrtExecutionProvider_TRTKernel_graph_toy_{len(builds)}_sm87.engine").write_bytes(b"engine")
        builds.append(self)

    def get_providers(self):
        return [TRT, "CPUExecutionProvider"]

    def run(self, names, feeds, run_options=None):
        self.runs += 1
        out = self.real.run(names, feeds, run_options)
        out[0] = self.bend(out[0])
        return out

    def __getattr__(self, name):  # io_binding, get_inputs, ...: the real session's
        return getattr(self.real, name)


@pytest.fixture
def trt(monkeypatch):
    """Makes the TensorRT provider available and its sessions test doubles; returns a handle to set the bend
    and read the builds."""
    import onnxruntime as ort

    real_session = ort.InferenceSession
    real_ortvalue = ort.OrtValue.ortvalue_from_shape_and_type

    class Handle:
        bend = staticmethod(lambda logits: logits)
        builds: list = []

        def session(self, model, options=None, providers=()):
            real = real_session(model, options, providers=["CPUExecutionProvider"])
            asked = [dict(p[1]) if isinstance(p, tuple) else {} for p in providers
                     if (p[0] if isinstance(p, tuple) else p) == TRT]
            if not asked:
                return real
            cache = asked[0].get("trt_engine_cache_path")
            return TrtSessionDouble(real, Path(cache) if cache else None, self.bend, self.builds)

    handle = Handle()
    handle.builds = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", handle.session)
    # The state buffers the backend puts on the GPU for a TensorRT session live on the host here.
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_shape_and_type",
                        staticmethod(lambda shape, dtype, device="cpu", device_id=0: real_ortvalue(shape, dtype, "cpu", 0)))
    return handle


def providers(cache, **extra):
    return [(TRT, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), **extra}), "CPUExecutionProvider"]


def markers(cache):
    return sorted(p.name for p in cache.glob(f"{first_build_parity.MARKER_PREFIX}*"))


def test_first_load_checks_and_marks_then_later_loads_skip(tmp_path, trt):
    model = toy_learner(tmp_path / "toy.onnx")
    cache = tmp_path / "engines"
    trt.bend = lambda logits: logits + 1e-6  # float32 rounding of another kernel order: within the bound
    with Learner.load(model, providers=providers(cache)) as learner:
        learner.teach(np.ones((8, 8), np.float32), 1)
    assert trt.builds[0].runs == first_build_parity.STEPS
    (name,) = markers(cache)
    marker = json.loads((cache / name).read_text())
    import onnxruntime as ort

    assert marker["model_id"] == "toy0000000000000" and name.startswith("edgemeta-parity-toy0000000000000-")
    assert marker["onnxruntime"] == ort.__version__ and marker["provider"] == TRT and marker["precision"] == "fp32"
    assert marker["engine_files"] == ["TensorrtExecutionProvider_TRTKernel_graph_toy_0_sm87.engine"]
    with Learner.load(model, providers=providers(cache)):
        pass
    assert trt.builds[1].runs == 0  # the marker holds: no second check


def test_a_mismatch_is_refused_in_one_line_and_the_engine_removed(tmp_path, trt):
    model = toy_learner(tmp_path / "toy.onnx")
    cache = tmp_path / "engines"
    trt.bend = lambda logits: logits[:, ::-1].copy()  # an engine that mixes up the classes
    with pytest.raises(EdgemetaError) as e:
        Learner.load(model, providers=providers(cache))
    message = str(e.value)
    assert "\n" not in message and "does not match ONNX Runtime on the CPU" in message
    assert "predictions differ" in message and "use the CPU provider" in message and "fp32" in message
    assert markers(cache) == [] and list(cache.glob("*.engine")) == []  # the bad engine is gone, nothing marked
    trt.bend = lambda logits: logits
    with Learner.load(model, providers=providers(cache)):  # the rebuilt engine is checked afresh
        pass
    assert trt.builds[1].runs == first_build_parity.STEPS and len(markers(cache)) == 1


def test_fp16_engines_are_held_to_probabilities_and_told_to_rebuild_in_fp32(tmp_path, trt):
    model = toy_learner(tmp_path / "toy.onnx")
    cache = tmp_path / "engines"
    trt.bend = lambda logits: logits + np.float32(0.01) * np.arange(logits.shape[1], dtype=np.float32)
    with Learner.load(model, providers=providers(cache, trt_fp16_enable=True)):
        pass
    assert json.loads((cache / markers(cache)[0]).read_text())["precision"] == "fp16/int8"
    trt.bend = lambda logits: logits * 0
    with pytest.raises(EdgemetaError, match=r'probability diff.*rebuild with fp32 \(runtime.precision = "fp32"'):
        Learner.load(model, providers=providers(tmp_path / "other", trt_fp16_enable=True))


def test_a_marker_no_longer_holds_when_its_engine_or_onnxruntime_changes(tmp_path, trt, monkeypatch):
    model = toy_learner(tmp_path / "toy.onnx")
    cache = tmp_path / "engines"
    with Learner.load(model, providers=providers(cache)):
        pass
    for engine in cache.glob("*.engine"):
        engine.unlink()  # the cache was cleared: the provider builds again
    with Learner.load(model, providers=providers(cache)):
        pass
    assert trt.builds[1].runs == first_build_parity.STEPS
    import onnxruntime as ort

    monkeypatch.setattr(ort, "__version__", "0.0.0-other")
    with Learner.load(model, providers=providers(cache)):
        pass
    assert trt.builds[2].runs == first_build_parity.STEPS


def test_without_an_engine_cache_every_session_is_checked(tmp_path, trt):
    model = toy_learner(tmp_path / "toy.onnx")
    for _ in range(2):
        with Learner.load(model, providers=[TRT, "CPUExecutionProvider"]):
            pass
    assert [b.runs for b in trt.builds] == [first_build_parity.STEPS] * 2


def test_cpu_sessions_never_run_the_check(tmp_path, trt, monkeypatch):
    model = toy_learner(tmp_path / "toy.onnx")
    ran = []
    monkeypatch.setattr(first_build_parity, "run_episode", lambda *a: ran.append(a))
    with Learner.load(model, providers=["CPUExecutionProvider"]):
        pass
    with Learner.load(model, providers=[("CPUExecutionProvider", {})]):
        pass
    assert ran == [] and trt.builds == []
    # TensorRT asked for, but its libraries did not load: the session runs on the CPU, nothing to check.
    monkeypatch.setattr(TrtSessionDouble, "get_providers", lambda self: ["CPUExecutionProvider"])
    with Learner.load(model, providers=providers(tmp_path / "engines")):
        pass
    assert ran == [] and len(trt.builds) == 1 and markers(tmp_path / "engines") == []
