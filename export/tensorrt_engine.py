"""Build a TensorRT engine from the exported step and drive it step by step for the parity check.

TensorRT is imported inside the functions: everything else in edgemeta works without it. Device
memory goes through cuda-python (the runtime's CudaRuntime), not torch, so the same code runs on a
Jetson where no CUDA build of torch exists. TensorRT 8.6 to 10.x (CUDA 12); TensorRT 11 is refused
in one line (runtime/backends/trt.py). The torch-free build from an exported learner.onnx, run on the
device itself, is runtime/backends/trt_build.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.backends.trt import SUPPORTED_TENSORRT, CudaRuntime, import_tensorrt, tensorrt_version_problem
from edgemeta.runtime.backends.trt_build import collecting_logger, serialize_engine

WORKSPACE_MB = 1024
HINT = "pip install 'edgemeta[trt]' and run the export on the target device"


def require_tensorrt():
    """The tensorrt module, or one EdgemetaError naming what --trt lacks here: TensorRT in the
    supported window, cuda-python 12, a visible CUDA GPU."""
    try:
        import tensorrt as trt
    except ImportError:
        trt = None
    problem = tensorrt_version_problem(trt.__version__) if trt is not None else None
    if problem:
        raise EdgemetaError(problem)
    missing = [] if trt is not None else [f"{SUPPORTED_TENSORRT} (not installed)"]
    try:
        CudaRuntime().close()
    except EdgemetaError:
        missing.append("cuda-python 12 and a CUDA GPU (none visible)")
    if missing:
        raise EdgemetaError(f"--trt needs {' and '.join(missing)}: {HINT}")
    return trt


def build_engine(onnx_path, max_batch: int, fp16: bool, log: list[str], fp16_tensors: set[str] | None = None) -> bytes:
    """A serialized engine for batch 1..max_batch, tuned for batch 1 (what a device runs). With fp16 and
    `fp16_tensors`, only layers that produce those tensors (the stateless front) may run in float16; the rest is
    pinned to float32."""

    def precision(trt, network, config):
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
            if fp16_tensors is not None:
                config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
                _pin_float32(trt, network, fp16_tensors)

    return serialize_engine(import_tensorrt(), Path(onnx_path), max_batch, 1, WORKSPACE_MB, log, configure=precision)


def _pin_float32(trt, network, fp16_tensors: set[str]) -> None:
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if any(o.name in fp16_tensors for o in outputs) or not all(o.dtype == trt.float32 for o in outputs):
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)


class EngineStep:
    """`step(feeds) -> outputs` over a deserialized engine, for the parity loop."""

    def __init__(self, engine_bytes: bytes, log: list[str]):
        trt = import_tensorrt()
        self._trt = trt
        self.runtime = trt.Runtime(collecting_logger(trt, log))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise EdgemetaError("TensorRT could not load the engine it just built; see the build log")
        self.context = self.engine.create_execution_context()
        self._cuda = CudaRuntime()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        for n in names:
            if self.engine.get_tensor_dtype(n) != trt.float32:
                raise EdgemetaError(f"engine tensor {n!r} is {self.engine.get_tensor_dtype(n)}; the contract wants float32")

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        hosts, ptrs = {}, []
        for name in self.inputs:
            a = np.ascontiguousarray(feeds[name], dtype=np.float32)
            hosts[name] = a  # alive until the sync below: the copies are asynchronous
            ptr = cuda.malloc(a.nbytes)
            ptrs.append(ptr)
            cuda.to_device(ptr, a)
            self.context.set_input_shape(name, a.shape)
            self.context.set_tensor_address(name, ptr)
        outs = {}
        for name in self.outputs:
            outs[name] = np.empty(tuple(self.context.get_tensor_shape(name)), np.float32)
            ptr = cuda.malloc(outs[name].nbytes)
            ptrs.append(ptr)
            self.context.set_tensor_address(name, ptr)
        try:
            if not self.context.execute_async_v3(cuda.stream_handle):
                raise EdgemetaError("TensorRT engine execution failed")
            for name, ptr in zip(self.outputs, ptrs[len(self.inputs):]):
                cuda.to_host(outs[name], ptr)
            cuda.sync()
        finally:
            for ptr in ptrs:
                cuda.free(ptr)
        return outs

    def close(self) -> None:
        if self._cuda is not None:
            self._cuda.sync()
            self._cuda.close()
            self._cuda = None
