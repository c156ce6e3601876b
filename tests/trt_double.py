"""A TensorRT + CUDA runtime test double strict enough to catch API misuse on a machine without either.

- `cuda.bindings.runtime`: device memory in host RAM, but copies and memsets are queued on a typed
  stream (`cudaStream_t`, not an int) and run only at `cudaStreamSynchronize`, in order with the
  engine runs queued on the same stream. A host array changed or freed before its queued copy ran is
  an error at sync time, as is a copy whose kind does not match where its pointers live.
- `tensorrt`: a Builder (network, ONNX parser, builder config with flags and memory pools,
  optimization profiles checked min <= opt <= max) whose "serialized engine" is a JSON header plus
  the ONNX model, and a Runtime that runs it with ONNX Runtime. `execute_async_v3` takes the stream's
  integer handle, as the real one does, and refuses anything else. The parser refuses the ops TensorRT
  has no importer for (ONNX Runtime's int8 ops among them).
Versions are chosen per test: TensorRT 11 has no BuilderFlag.FP16, as the real one has none.
"""
from __future__ import annotations

import ctypes
import enum
import json
import sys
import types

import numpy as np

MAGIC = b"FAKE-TRT-ENGINE\n"
UNPARSABLE = {"MatMulInteger", "DynamicQuantizeLinear", "ConvInteger"}


class CudaMisuse(AssertionError):
    """The code under test used the CUDA runtime in a way the real one would punish."""


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorNoDevice = 100


class cudaStream_t:
    """A typed stream like cuda-python's: int() gives the handle; it is not an int itself."""

    def __init__(self, handle: int):
        self._handle = handle

    def __int__(self):
        return self._handle


class FakeCudart(types.ModuleType):
    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

    cudaError_t = cudaError_t
    cudaStream_t = cudaStream_t

    def __init__(self, devices: int = 1, gpu: bytes = b"Fake Orin", capability=(8, 7)):
        super().__init__("cuda.bindings.runtime")
        self.devices, self.gpu, self.capability = devices, gpu, capability
        self.buffers, self.freed, self.copies = {}, [], []
        self.streams: dict[int, list] = {}
        self._next = 0x7000

    # --- devices and streams -------------------------------------------------------------
    def cudaGetDeviceCount(self):
        return (cudaError_t.cudaSuccess, self.devices)

    def cudaGetDevice(self):
        return (cudaError_t.cudaSuccess, 0) if self.devices else (cudaError_t.cudaErrorNoDevice, 0)

    def cudaGetDeviceProperties(self, device):
        name = self.gpu + b"\0" * (256 - len(self.gpu))
        return (cudaError_t.cudaSuccess, types.SimpleNamespace(name=name, major=self.capability[0], minor=self.capability[1]))

    def cudaStreamCreate(self):
        if not self.devices:
            return (cudaError_t.cudaErrorNoDevice, None)
        self._next += 1
        self.streams[self._next] = []
        return (cudaError_t.cudaSuccess, cudaStream_t(self._next))

    def _queue(self, stream) -> list:
        if not isinstance(stream, cudaStream_t):
            raise TypeError(f"Argument 'stream' is not instance of type cudaStream_t (got {type(stream).__name__})")
        if int(stream) not in self.streams:
            raise CudaMisuse("a destroyed or unknown stream was used")
        return self.streams[int(stream)]

    def queue_for_handle(self, handle) -> list:
        if type(handle) is not int:
            raise TypeError(f"execute_async_v3(): stream_handle must be an int, got {type(handle).__name__}")
        if handle not in self.streams:
            raise CudaMisuse(f"execute_async_v3 on unknown stream handle {handle}")
        return self.streams[handle]

    def cudaStreamDestroy(self, stream):
        queue = self._queue(stream)
        if queue:
            raise CudaMisuse("stream destroyed with work still queued (no cudaStreamSynchronize)")
        del self.streams[int(stream)]
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(self, stream):
        queue = self._queue(stream)
        while queue:
            queue.pop(0)()
        return (cudaError_t.cudaSuccess,)

    # --- memory ------------------------------------------------------------------------------
    def cudaMalloc(self, nbytes):
        buf = np.full(int(nbytes), 0xAB, np.uint8)  # garbage, as real device memory would be
        self.buffers[buf.ctypes.data] = buf
        return (cudaError_t.cudaSuccess, buf.ctypes.data)

    def cudaFree(self, ptr):
        if ptr in self.freed or ptr not in self.buffers:
            raise CudaMisuse(f"cudaFree of {ptr:#x}, which is not a live allocation")
        self.freed.append(ptr)
        return (cudaError_t.cudaSuccess,)

    def _on_device(self, ptr: int, nbytes: int) -> bool:
        for base, buf in self.buffers.items():
            if base <= ptr and ptr + nbytes <= base + buf.nbytes and base not in self.freed:
                return True
        return False

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        queue = self._queue(stream)
        K = self.cudaMemcpyKind
        want = {K.cudaMemcpyHostToDevice: (True, False), K.cudaMemcpyDeviceToHost: (False, True),
                K.cudaMemcpyDeviceToDevice: (True, True)}[K(kind)]
        if (self._on_device(dst, nbytes), self._on_device(src, nbytes)) != want:
            raise CudaMisuse(f"{K(kind).name} of {nbytes} bytes between pointers that are not (dst, src) = {want} on the device")
        self.copies.append(K(kind))
        snapshot = ctypes.string_at(src, nbytes) if kind == K.cudaMemcpyHostToDevice else None

        def run():
            if snapshot is not None and ctypes.string_at(src, nbytes) != snapshot:
                raise CudaMisuse("a host buffer changed or was freed before its asynchronous copy ran")
            ctypes.memmove(dst, src, nbytes)

        queue.append(run)
        return (cudaError_t.cudaSuccess,)

    def cudaMemsetAsync(self, ptr, value, nbytes, stream):
        queue = self._queue(stream)
        if not self._on_device(ptr, nbytes):
            raise CudaMisuse("cudaMemsetAsync on memory that is not a live device allocation")
        queue.append(lambda: ctypes.memset(ptr, value, nbytes))
        return (cudaError_t.cudaSuccess,)


def view(ptr, shape):
    n = int(np.prod(shape))
    return np.frombuffer((ctypes.c_float * n).from_address(ptr), np.float32).reshape(shape)


# --- tensorrt ----------------------------------------------------------------------------------
class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT32 = 3


class FakeTensor:
    def __init__(self, name, shape):
        self.name, self.shape, self.dtype = name, tuple(shape), DataType.FLOAT


class FakeNetwork:
    def __init__(self, flags):
        self.flags, self.inputs, self.onnx = flags, [], None

    @property
    def num_inputs(self):
        return len(self.inputs)

    def get_input(self, i):
        return self.inputs[i]

    num_layers = 0


class FakeParser:
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    def parse_from_file(self, path):
        import onnx
        import onnxruntime as ort

        data = open(path, "rb").read()
        ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
        for op in sorted(ops & UNPARSABLE):
            self.errors.append(f"In node -1 (importFallbackPluginImporter): UNSUPPORTED_NODE: No importer registered for op: {op}")
        if self.errors:
            return False
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        self.network.inputs = [FakeTensor(i.name, [-1 if isinstance(d, str) else d for d in i.shape]) for i in session.get_inputs()]
        self.network.onnx = data
        return True

    @property
    def num_errors(self):
        return len(self.errors)

    def get_error(self, i):
        return self.errors[i]


class FakeProfile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, lo, opt, hi):
        if not (len(lo) == len(opt) == len(hi)) or any(not a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise ValueError(f"profile for {name}: need min <= opt <= max, got {lo}, {opt}, {hi}")
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeConfig:
    def __init__(self, trt):
        self.trt, self.flags, self.pools, self.profiles = trt, set(), {}, []

    def set_memory_pool_limit(self, pool, nbytes):
        self.pools[pool] = int(nbytes)

    def set_flag(self, flag):
        self.flags.add(flag)

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)
        return len(self.profiles) - 1


def make_tensorrt(version: str = "10.3.0", cudart: FakeCudart | None = None):
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.built = []  # (network, config) of every build, for tests to inspect
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.DataType = DataType
    trt.float32 = DataType.FLOAT
    trt.nptype = lambda dtype: {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT32: np.int32}[dtype]
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    flags = ["TF32", "STRONGLY_TYPED"] if major >= 11 else ["FP16", "TF32", "OBEY_PRECISION_CONSTRAINTS"]
    trt.BuilderFlag = types.SimpleNamespace(**{f: f for f in flags})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)

    class ILogger:
        Severity = types.SimpleNamespace(VERBOSE=4, INFO=3, WARNING=2, ERROR=1, INTERNAL_ERROR=0)

        def __init__(self):
            pass

    class Logger(ILogger):
        WARNING = 2

        def __init__(self, level=None):
            pass

    trt.ILogger, trt.Logger = ILogger, Logger
    trt.OnnxParser = FakeParser

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            return FakeNetwork(flags)

        def create_builder_config(self):
            return FakeConfig(trt)

        def create_optimization_profile(self):
            return FakeProfile()

        def build_serialized_network(self, network, config):
            if not config.profiles:
                raise ValueError("a network with dynamic shapes needs an optimization profile")
            profile = config.profiles[0]
            for t in network.inputs:
                if -1 in t.shape and t.name not in profile.shapes:
                    raise ValueError(f"no profile shape for dynamic input {t.name}")
            trt.built.append((network, config))
            header = {"version": version, "profile": {n: [list(s) for s in v] for n, v in profile.shapes.items()},
                      "flags": sorted(config.flags), "workspace": config.pools.get("workspace")}
            return MAGIC + json.dumps(header).encode() + b"\n" + network.onnx

    trt.Builder = Builder

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            data = bytes(data)
            if not data.startswith(MAGIC):
                return None
            header, _, onnx_bytes = data[len(MAGIC):].partition(b"\n")
            header = json.loads(header)
            if header["version"] != version:
                return None  # an engine from another TensorRT version does not deserialize
            return FakeEngine(onnx_bytes, header, cudart)

    trt.Runtime = Runtime
    return trt


class FakeEngine:
    def __init__(self, onnx_bytes, header, cudart):
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.io = [(i.name, True, i.shape) for i in self.session.get_inputs()]
        self.io += [(o.name, False, o.shape) for o in self.session.get_outputs()]
        self.profile = header["profile"]
        self.header = header
        self.cudart = cudart
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
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name, profile):
        return [tuple(s) for s in self.profile[name]]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.profile[name]
        if len(shape) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name in self.shapes:
            return self.shapes[name]
        batch = next(iter(self.shapes.values()))[0]
        return (batch, *self.engine.get_tensor_shape(name)[1:])

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle):
        queue = self.engine.cudart.queue_for_handle(stream_handle)
        addresses, shapes = dict(self.addresses), dict(self.shapes)  # bound now, as TensorRT binds them at enqueue

        def run():
            feeds = {n: view(addresses[n], s).copy() for n, s in shapes.items()}
            outs = self.engine.session.run(None, feeds)
            for (name, _, _), value in zip([e for e in self.engine.io if not e[1]], outs):
                view(addresses[name], value.shape)[...] = value

        queue.append(run)
        return True


def install(monkeypatch, version: str = "10.3.0", **gpu) -> tuple[FakeCudart, types.ModuleType]:
    """Put the double in sys.modules as `tensorrt` and `cuda.bindings.runtime`."""
    cudart = FakeCudart(**gpu)
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = cudart
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    trt = make_tensorrt(version, cudart)
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cudart), ("tensorrt", trt)):
        monkeypatch.setitem(sys.modules, name, module)
    return cudart, trt
