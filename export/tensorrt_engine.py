"""Build a TensorRT engine from the exported step and drive it step by step for the parity check.

TensorRT is imported inside the functions: everything else in edgemeta works without it. Engine
buffers are torch CUDA tensors (the export side has torch anyway), which avoids a pycuda dependency.
Uses the name-based I/O API of TensorRT 8.6+ (set_input_shape, set_tensor_address, execute_async_v3).
"""
from __future__ import annotations

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract

MIN_VERSION = (8, 6)
HINT = "pip install 'edgemeta[trt]' and run the export on the target device"
WORKSPACE_BYTES = 1 << 30


def require_tensorrt():
    """The tensorrt module, or one EdgemetaError naming everything --trt lacks here."""
    missing = []
    trt = None
    try:
        import tensorrt as trt
    except ImportError:
        missing.append("TensorRT 8.6+ (not installed)")
    else:
        version = tuple(int(p) for p in trt.__version__.split(".")[:2] if p.isdigit())
        if version < MIN_VERSION:
            missing.append(f"TensorRT 8.6+ (found {trt.__version__})")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        missing.append("a CUDA GPU (none visible)")
    if missing:
        raise EdgemetaError(f"--trt needs {' and '.join(missing)}: {HINT}")
    return trt


def _logger(trt, lines: list[str]):
    class Collect(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity != trt.ILogger.Severity.VERBOSE:  # verbose tactic listings run to megabytes
                lines.append(f"[{str(severity).split('.')[-1]}] {msg}")

    return Collect()


def build_engine(onnx_path, max_batch: int, fp16: bool, log: list[str], fp16_tensors: set[str] | None = None) -> bytes:
    """A serialized engine for batch 1..max_batch. With fp16 and `fp16_tensors`, only layers that
    produce those tensors (the stateless front) may run in float16; the rest is pinned to float32."""
    trt = require_tensorrt()
    logger = _logger(trt, log)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgemetaError(f"TensorRT cannot parse {contract.ONNX_FILE}: {' '.join(errors.split())[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.clear_flag(trt.BuilderFlag.TF32)  # TF32 matmuls round to 10 bits: float32 parity would fail
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (max_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        if fp16_tensors is not None:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            _pin_float32(trt, network, fp16_tensors)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [line for line in log if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise EdgemetaError(f"TensorRT engine build failed: {(errors or ['see the build log'])[-1][:300]}")
    return bytes(serialized)


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
        trt = require_tensorrt()
        self._trt = trt
        self.runtime = trt.Runtime(_logger(trt, log))
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise EdgemetaError("TensorRT could not load the engine it just built; see the build log")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        for n in names:
            if self.engine.get_tensor_dtype(n) != trt.float32:
                raise EdgemetaError(f"engine tensor {n!r} is {self.engine.get_tensor_dtype(n)}; the contract wants float32")

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        keep = []
        for name in self.inputs:
            t = torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32)).cuda()
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
            keep.append(t)
        outs = {}
        for name in self.outputs:
            t = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, t.data_ptr())
            outs[name] = t
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EdgemetaError("TensorRT engine execution failed")
        stream.synchronize()
        return {name: t.cpu().numpy() for name, t in outs.items()}
