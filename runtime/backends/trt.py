"""TensorRT engine backend: the same step as the ONNX Runtime backend, state kept on the GPU.

Works with the name-based tensor API of TensorRT 8.5+ and 10 (`num_io_tensors`, `set_input_shape`,
`set_tensor_address`, `execute_async_v3`). Device memory and copies go through cuda-python's
runtime bindings (`pip install cuda-python`), which the TensorRT wheels' own samples use too.
Like the ONNX Runtime backend it keeps two sets of state buffers on the device and swaps them
when a step is committed, so the state never leaves the GPU between steps; only the image, the
previous label and the logits cross the bus.

An engine carries no edgemeta metadata, so the learner's metadata is read from a JSON file beside
it (`learner.engine.json`) or from the ONNX file it was built from (`learner.onnx` beside it).
An engine runs only with the TensorRT version and GPU it was built with; the sidecar records both
(`built_for`) and a mismatch is refused in one line before TensorRT is asked to deserialize it.
`tensorrt` is imported only here and in trt_build.py, and only when an engine is loaded or built.
Supported: TensorRT 8.6 to 10.x with CUDA 12 (cuda-python 12.x): TensorRT 11 is the CUDA 13 build and
drops the builder flags the fp16 engines use, and cuda-python 13 needs a CUDA 13 driver.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.backends import TensorSpec


SUPPORTED_TENSORRT = "TensorRT 8.6 to 10.x (CUDA 12)"
TRT_PINS = "pip install 'tensorrt-cu12>=8.6,<11' 'cuda-python>=12,<13' (on a Jetson: JetPack 6's TensorRT)"


def tensorrt_version_problem(version: str) -> str | None:
    """Why this TensorRT version cannot be used, or None when it is in the supported window."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < (8, 6):
        return f"TensorRT {version} is older than 8.6, the first with the name-based tensor API: {TRT_PINS}"
    if parts >= (11,):
        return (f"TensorRT {version} is not supported (edgemeta runs {SUPPORTED_TENSORRT}; TensorRT 11 needs CUDA 13 "
                f"and has no FP16 builder flag): {TRT_PINS}")
    return None


def import_tensorrt():
    """The tensorrt module in the supported window, or one EdgemetaError saying what to install."""
    try:
        import tensorrt as trt
    except ImportError:
        raise EdgemetaError(
            "TensorRT is not installed: pip install edgemeta[trt] on a device with a CUDA GPU, "
            "or use backend='ort' with learner.onnx"
        ) from None
    problem = tensorrt_version_problem(trt.__version__)
    if problem:
        raise EdgemetaError(problem)
    return trt


def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise EdgemetaError("the TensorRT backend needs cuda-python 12 for device memory: pip install 'cuda-python>=12,<13'") from None
    return cudart


class CudaRuntime:
    """The few CUDA runtime calls the backend needs, with errors turned into one-line messages.

    Copies are asynchronous on one stream: a host array handed to `to_device` or `to_host` must stay
    alive and unchanged until `sync()`."""

    def __init__(self):
        self.rt = _import_cudart()
        count = self._ok(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if not count:
            raise EdgemetaError("no CUDA GPU is visible (nvidia-smi; on a Jetson, is the user in the video group?)")
        self.stream = self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    @property
    def stream_handle(self) -> int:
        """The stream as the integer handle TensorRT's execute_async_v3 takes."""
        return int(self.stream)

    def device(self) -> dict:
        """{'gpu': name, 'compute_capability': 'major.minor'} of the current device."""
        dev = self._ok(self.rt.cudaGetDevice(), "cudaGetDevice")
        prop = self._ok(self.rt.cudaGetDeviceProperties(dev), "cudaGetDeviceProperties")
        name = prop.name.split(b"\0")[0].decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        return {"gpu": name.strip(), "compute_capability": f"{prop.major}.{prop.minor}"}

    def _ok(self, result, what: str):
        err = result[0]
        if int(err) != 0:
            raise EdgemetaError(f"CUDA call {what} failed ({err}); is a CUDA GPU visible (nvidia-smi)?")
        return result[1] if len(result) > 1 else None

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def to_device(self, dst: int, src: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, self.stream), "cudaMemcpyAsync")

    def to_host(self, dst: np.ndarray, src: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, self.stream), "cudaMemcpyAsync")

    def device_copy(self, dst: int, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def zero(self, ptr: int, nbytes: int) -> None:
        self._ok(self.rt.cudaMemsetAsync(ptr, 0, nbytes, self.stream), "cudaMemsetAsync")

    def sync(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def close(self) -> None:
        self.rt.cudaStreamDestroy(self.stream)


def built_for(trt, cuda: CudaRuntime) -> dict:
    """What an engine built here is tied to: recorded in its sidecar, checked when it is loaded."""
    return {"tensorrt": trt.__version__, **cuda.device()}


def check_built_for(path: Path, recorded: dict | None, here: dict) -> None:
    if not recorded:
        return  # an engine without a sidecar record: TensorRT's own deserialization check remains
    differ = [k for k in ("tensorrt", "gpu", "compute_capability") if recorded.get(k) != here.get(k)]
    if differ:
        def show(d):
            return f"TensorRT {d.get('tensorrt')} on {d.get('gpu')} (sm {d.get('compute_capability')})"

        raise EdgemetaError(f"{path} was built for {show(recorded)}; this is {show(here)}: rebuild it here with "
                            f"`edgemeta export {path.with_suffix('.onnx')} --trt`")


def engine_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def engine_built_for(path: Path) -> dict | None:
    """The sidecar's `built_for` record, if it has one."""
    try:
        doc = json.loads(engine_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    record = doc.get("built_for") if isinstance(doc, dict) else None
    return record if isinstance(record, dict) else None


def engine_metadata(path: Path):
    """The edgemeta metadata JSON for an engine: from learner.engine.json or the learner.onnx beside it."""
    sidecar = engine_sidecar(path)
    if sidecar.is_file():
        text = sidecar.read_text()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return text  # the contract check reports the broken JSON
        return json.dumps(doc.get(contract.METADATA_KEY, doc)) if isinstance(doc, dict) else text
    onnx_path = path.with_suffix(".onnx")
    if onnx_path.is_file():
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return sess.get_modelmeta().custom_metadata_map.get(contract.METADATA_KEY)
    raise EdgemetaError(
        f"TensorRT engine {path} has no metadata: keep the learner.onnx it was built from beside it "
        f"(as {onnx_path.name}) or a {sidecar.name}"
    )


class TrtBackend:
    """Runs a serialized TensorRT engine of the learner step."""

    kind = "trt"

    def __init__(self, path, batch: int = 1):
        trt = import_tensorrt()
        self.trt = trt
        self.path = Path(path)
        self.batch = int(batch)
        if not self.path.is_file():
            raise EdgemetaError(f"TensorRT engine {self.path} does not exist; build one with `edgemeta export learner.onnx --trt`")
        self.metadata_json = engine_metadata(self.path)
        self._allocations: list[int] = []
        self.context = None
        self._cuda = CudaRuntime()
        try:
            check_built_for(self.path, engine_built_for(self.path), built_for(trt, self._cuda))
        except EdgemetaError:
            self.close()
            raise
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            self.close()
            raise EdgemetaError(
                f"{self.path} could not be loaded by TensorRT {trt.__version__}: engines only run with the TensorRT "
                f"version and GPU they were built on; rebuild it on this device with `edgemeta export {self.path.with_suffix('.onnx')} --trt`"
            )
        self.inputs, self.outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            spec = TensorSpec(name, list(self.engine.get_tensor_shape(name)), np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(spec)
        self._check_profile()

    device = "cuda"

    def describe(self) -> str:
        return f"TensorRT {self.trt.__version__} engine"

    def _check_profile(self) -> None:
        """A dynamic batch axis must admit our batch in optimization profile 0."""
        for spec in self.inputs:
            if spec.shape and spec.shape[0] == -1:
                lo, _, hi = self.engine.get_tensor_profile_shape(spec.name, 0)
                if not lo[0] <= self.batch <= hi[0]:
                    self.close()
                    raise EdgemetaError(
                        f"{self.path} was built for batch {lo[0]}..{hi[0]}; asked for batch {self.batch} "
                        f"(rebuild with `edgemeta export {self.path.with_suffix('.onnx')} --trt --max-batch {self.batch}`)"
                    )

    # --- buffers ---------------------------------------------------------------------------
    def bind(self, state_shapes, num_classes: int, input_size: int, has_novelty: bool, channels: int = 1) -> None:
        b = self.batch
        self.context = self.engine.create_execution_context()
        self.state_names = list(state_shapes)
        self._state_shapes = {n: (b, *s) for n, s in state_shapes.items()}
        self.image = np.zeros((b, channels, input_size, input_size), np.float32)
        self.prev_label = np.zeros((b, num_classes), np.float32)
        self.logits = np.zeros((b, num_classes), np.float32)
        self.novelty = np.zeros((b, 1), np.float32) if has_novelty else None
        host = {contract.IMAGE: self.image, contract.PREV_LABEL: self.prev_label, contract.LOGITS: self.logits}
        if self.novelty is not None:
            host[contract.NOVELTY] = self.novelty
        self._dev = {name: self._alloc(a.nbytes) for name, a in host.items()}
        nbytes = {n: 4 * int(np.prod(s)) for n, s in self._state_shapes.items()}
        self._sets = [{n: self._alloc(nbytes[n]) for n in self.state_names} for _ in range(2)]
        self._nbytes = nbytes
        for name in (contract.IMAGE, contract.PREV_LABEL):
            self.context.set_input_shape(name, host[name].shape)
        for n in self.state_names:
            self.context.set_input_shape(n, self._state_shapes[n])
        for name, ptr in self._dev.items():
            self.context.set_tensor_address(name, ptr)
        self._committed = 0
        self.reset()

    def _alloc(self, nbytes: int) -> int:
        ptr = self._cuda.malloc(nbytes)
        self._allocations.append(ptr)
        return ptr

    # --- one step --------------------------------------------------------------------------
    def run(self) -> None:
        cuda, ctx = self._cuda, self.context
        cuda.to_device(self._dev[contract.IMAGE], self.image)
        cuda.to_device(self._dev[contract.PREV_LABEL], self.prev_label)
        src, dst = self._sets[self._committed], self._sets[1 - self._committed]
        for n in self.state_names:
            ctx.set_tensor_address(n, src[n])
            ctx.set_tensor_address(contract.state_out(n), dst[n])
        if not ctx.execute_async_v3(cuda.stream_handle):
            raise EdgemetaError(f"TensorRT could not run {self.path}; see the TensorRT log above")
        cuda.to_host(self.logits, self._dev[contract.LOGITS])
        if self.novelty is not None:
            cuda.to_host(self.novelty, self._dev[contract.NOVELTY])
        cuda.sync()

    def commit(self, rows=None) -> None:
        if rows is None:
            self._committed ^= 1
            return
        # Some streams only: copy their rows of the new state over the committed state, on the device.
        src, dst = self._sets[1 - self._committed], self._sets[self._committed]
        for n in self.state_names:
            row = self._nbytes[n] // self.batch
            for r in np.asarray(rows).ravel():
                self._cuda.device_copy(dst[n] + int(r) * row, src[n] + int(r) * row, row)
        self._cuda.sync()

    # --- state -----------------------------------------------------------------------------
    def read_state(self) -> dict[str, np.ndarray]:
        out = {n: np.empty(self._state_shapes[n], np.float32) for n in self.state_names}
        for n, a in out.items():
            self._cuda.to_host(a, self._sets[self._committed][n])
        self._cuda.sync()
        return out

    def write_state(self, state) -> None:
        arrays = [np.ascontiguousarray(state[n], dtype=np.float32) for n in self.state_names]
        for n, a in zip(self.state_names, arrays):
            self._cuda.to_device(self._sets[self._committed][n], a)
        self._cuda.sync()  # `arrays` must outlive the asynchronous copies

    def reset(self) -> None:
        for n in self.state_names:
            self._cuda.zero(self._sets[self._committed][n], self._nbytes[n])
        self._cuda.sync()

    def close(self) -> None:
        if getattr(self, "_cuda", None) is not None:
            self._cuda.sync()
            for ptr in self._allocations:
                self._cuda.free(ptr)
            self._cuda.close()
            self._cuda = None
        self._allocations = []
        self.context = None
        self.engine = None
