"""The TensorRT backend's own logic (double-buffered state, partial commits, state in and out, batch
profile, metadata lookup) on any machine: TensorRT and the CUDA runtime are replaced by small
stand-ins that keep "device" memory in host RAM and run the engine's graph with ONNX Runtime.
The real thing is tested by test_runtime_trt.py where TensorRT and a GPU exist."""
from __future__ import annotations

import ctypes
import shutil
import sys
import types

import numpy as np
import pytest
from runtime_toy import toy_learner

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner


class FakeCudart(types.ModuleType):
    """cudaMalloc hands out host buffers by address, so every copy is a memmove."""

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

    def __init__(self):
        super().__init__("cuda.bindings.runtime")
        self.buffers, self.freed, self.copies = {}, [], []

    def cudaStreamCreate(self):
        return (0, 7)

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaMalloc(self, nbytes):
        buf = np.full(nbytes, 0xAB, np.uint8)  # garbage, as real device memory would be
        self.buffers[buf.ctypes.data] = buf
        return (0, buf.ctypes.data)

    def cudaFree(self, ptr):
        self.freed.append(ptr)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self.copies.append(kind)
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cudaMemsetAsync(self, ptr, value, nbytes, stream):
        ctypes.memset(ptr, value, nbytes)
        return (0,)


def view(ptr, shape):
    n = int(np.prod(shape))
    return np.frombuffer((ctypes.c_float * n).from_address(ptr), np.float32).reshape(shape)


class FakeEngine:
    """An "engine" whose serialized form is the ONNX model; runs it with ONNX Runtime."""

    def __init__(self, onnx_bytes, max_batch):
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.io = [(i.name, True, i.shape) for i in self.session.get_inputs()]
        self.io += [(o.name, False, o.shape) for o in self.session.get_outputs()]
        self.max_batch = max_batch
        self.num_io_tensors = len(self.io)

    def get_tensor_name(self, i):
        return self.io[i][0]

    def _entry(self, name):
        return next(e for e in self.io if e[0] == name)

    def get_tensor_mode(self, name):
        return "in" if self._entry(name)[1] else "out"

    def get_tensor_shape(self, name):
        return [-1 if isinstance(d, str) else d for d in self._entry(name)[2]]

    def get_tensor_dtype(self, name):
        return "float"

    def get_tensor_profile_shape(self, name, profile):
        rest = self.get_tensor_shape(name)[1:]
        return [(1, *rest), (self.max_batch, *rest), (self.max_batch, *rest)]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        feeds = {n: view(self.addresses[n], s).copy() for n, s in self.shapes.items()}
        outs = self.engine.session.run(None, feeds)
        for (name, _, _), value in zip([e for e in self.engine.io if not e[1]], outs):
            view(self.addresses[name], value.shape)[...] = value
        return True


def fake_tensorrt(max_batch):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.0.fake"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=None: None})
    trt.nptype = lambda dtype: np.float32
    trt.Runtime = lambda logger: types.SimpleNamespace(
        deserialize_cuda_engine=lambda data: FakeEngine(data, max_batch) if data[:1] != b"X" else None)
    return trt


@pytest.fixture
def fakes(monkeypatch):
    cudart = FakeCudart()
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cudart),
                         ("tensorrt", fake_tensorrt(max_batch=4))):
        monkeypatch.setitem(sys.modules, name, module)
    return cudart


@pytest.fixture
def engine(tiny_onnx, tmp_path):
    shutil.copy(tiny_onnx, tmp_path / "learner.onnx")
    shutil.copy(tiny_onnx, tmp_path / "learner.engine")  # the stand-in engine is the ONNX model itself
    return tmp_path / "learner.engine"


def test_engine_runner_matches_onnxruntime(fakes, engine, tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((8, 3, 1, 12, 12)) < 0.15).astype(np.float32)
    labels = rng.integers(-1, 3, (8, 3))
    with Learner.load(engine, batch=3) as trt, Learner.load(engine.with_suffix(".onnx"), batch=3) as ort:
        assert trt.backend == "TensorRT 10.0.fake engine"
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
    kinds = FakeCudart.cudaMemcpyKind
    assert kinds.cudaMemcpyDeviceToDevice in fakes.copies  # partial commits stayed on the device
    assert sorted(fakes.freed) == sorted(fakes.buffers)  # close() freed every allocation


def test_engine_metadata_sidecar_and_errors(fakes, engine, tmp_path):
    with pytest.raises(EdgemetaError, match=r"built for batch 1..4; asked for batch 5"):
        Learner.load(engine, batch=5)
    engine.with_suffix(".onnx").unlink()
    with pytest.raises(EdgemetaError, match="has no metadata: keep the learner.onnx"):
        Learner.load(engine)
    import onnxruntime as ort

    meta = ort.InferenceSession(str(engine), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    (tmp_path / "learner.engine.json").write_text(meta["edgemeta"])
    with Learner.load(engine) as learner:
        assert learner.num_classes == 3
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"X" + engine.read_bytes())
    (tmp_path / "bad.engine.json").write_text(meta["edgemeta"])
    with pytest.raises(EdgemetaError, match="engines only run with the TensorRT version and GPU they were built on"):
        Learner.load(bad)


def test_without_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    path = toy_learner(tmp_path / "learner.onnx")
    shutil.copy(path, tmp_path / "learner.engine")
    with pytest.raises(EdgemetaError, match=r"TensorRT is not installed: pip install edgemeta\[trt\]"):
        Learner.load(tmp_path / "learner.engine")
