"""ONNX Runtime backend: one learner step with state kept in place between steps.

The naive way to drive a stateful graph, `session.run(None, {...})` with fresh dicts, pays on
every step for converting each numpy input to an OrtValue, allocating every output, and building
Python lists and dicts. For a small recurrent step that overhead is a large part of the time.
This backend binds everything once with IOBinding:

- two sets of state buffers, A and B: a step reads the committed set and writes the other one
  (the "scratch" set); committing a step is swapping which set is committed (double buffering),
  so nothing is copied, and a step that is not committed (a prediction) leaves the committed
  state untouched by construction;
- the image and previous-label inputs and the logits/novelty outputs are fixed host buffers
  that the caller fills and reads in place;
- on a GPU provider (CUDA or TensorRT EP) the state buffers live on the device, so state never
  crosses the bus; only the image, label and logits do;
- the batch size is fixed when the session is made (a free-dimension override), which lets ONNX
  Runtime fold the shape arithmetic and plan all memory once.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.backends import TensorSpec
from edgemeta.runtime.backends.first_build_parity import FirstBuildCheck
from edgemeta.runtime.file_kind import not_a_file

# Preference order when providers are not given: fastest first, the CPU always last.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}


def resolve_providers(providers=None) -> list:
    """Providers for a session: the given ones (names, aliases or (name, options) pairs) or the
    available ones in PREFERRED_PROVIDERS order. A provider that is not installed is an error."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if providers is None:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
        return chosen or ["CPUExecutionProvider"]
    if isinstance(providers, (str, tuple)):
        providers = [providers]
    out = []
    for p in providers:
        name, options = (p[0], dict(p[1])) if isinstance(p, (tuple, list)) else (p, None)
        name = PROVIDER_ALIASES.get(str(name).lower(), name)
        if name not in available:
            hint = "install onnxruntime-gpu (pip install edgemeta[gpu]) on a CUDA device" if name in GPU_PROVIDERS else ""
            raise EdgemetaError(
                f"execution provider {name} is not available in this onnxruntime (available: {', '.join(available)})"
                + (f"; {hint}" if hint else "")
            )
        out.append((name, options) if options else name)
    if not out:
        raise EdgemetaError("no execution providers given; pass e.g. providers=['CPUExecutionProvider']")
    return out


def session_options(threads: int | None = None, batch: int | None = None):
    """Session options for one small step run many times in a row."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of small ops: nothing to run in parallel
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
        # Idle worker threads that spin steal the CPU from the camera and the rest of the app.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if batch:
        so.add_free_dimension_override_by_name(contract.BATCH_AXIS, int(batch))
    so.log_severity_level = 3  # errors only: provider fallbacks are reported by us, once
    return so


def open_session(path: str | os.PathLike, providers=None, threads: int | None = None, batch: int | None = None):
    """An InferenceSession for `path`, with one-line errors for a missing or unreadable file."""
    import onnxruntime as ort

    path = Path(path)
    what = not_a_file(path)
    if what is not None:
        raise EdgemetaError(f"learner file {path} {what}; export one with `edgemeta export` or pass a shipped name")
    chosen = resolve_providers(providers)
    try:
        return ort.InferenceSession(str(path), session_options(threads, batch), providers=chosen)
    except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise EdgemetaError(f"{path} is not a loadable ONNX learner ({first[:200]}); re-export it with `edgemeta export`") from None


_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool"}


class OrtBackend:
    """Runs the exported step with ONNX Runtime. Create with `OrtBackend(path, ...)`, then the
    Learner checks `inputs`/`outputs`/`metadata_json` against the contract and calls `bind`."""

    kind = "ort"

    def __init__(self, path, providers=None, threads: int | None = None, batch: int = 1):
        self.path = Path(path)
        self.batch = int(batch)
        self.threads = threads
        chosen = resolve_providers(providers)
        # Made before the session opens: the engine files a TensorRT build adds to its cache are this build's.
        self._first_build = FirstBuildCheck(self.path, chosen)
        self.session = open_session(path, chosen, threads, self.batch)
        self.providers = self.session.get_providers()
        self.on_gpu = self.providers[0] in GPU_PROVIDERS
        self.inputs = [TensorSpec(i.name, i.shape, _ORT_TYPES.get(i.type, i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, o.shape, _ORT_TYPES.get(o.type, o.type)) for o in self.session.get_outputs()]
        self.metadata_json = self.session.get_modelmeta().custom_metadata_map.get(contract.METADATA_KEY)
        self._bound = False

    @property
    def device(self) -> str:
        return "cuda" if self.on_gpu else "cpu"

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        return f"onnxruntime {self.providers[0]}{threads}"

    # --- buffers ---------------------------------------------------------------------------
    def bind(self, state_shapes: dict[str, tuple[int, ...]], num_classes: int, input_size: int, has_novelty: bool,
             channels: int = 1) -> None:
        """Allocate the fixed buffers and the two IOBindings (committed = A or B). `channels`: the image's
        channels, 1 (an ink map) or 3 (RGB)."""
        import onnxruntime as ort

        self._check_first_build(state_shapes, num_classes, input_size, channels)
        b = self.batch
        self.state_names = list(state_shapes)
        self.image = np.zeros((b, channels, input_size, input_size), np.float32)
        self.prev_label = np.zeros((b, num_classes), np.float32)
        self.logits = np.zeros((b, num_classes), np.float32)
        self.novelty = np.zeros((b, 1), np.float32) if has_novelty else None
        device_id = self._device_id()
        host = ort.OrtValue.ortvalue_from_numpy
        if self.on_gpu:
            self._sets = [
                {n: ort.OrtValue.ortvalue_from_shape_and_type([b, *s], np.float32, "cuda", device_id) for n, s in state_shapes.items()}
                for _ in range(2)
            ]
            self._host_sets = None
        else:
            # On the CPU the OrtValues wrap numpy arrays: the state is readable without a copy.
            self._host_sets = [{n: np.zeros((b, *s), np.float32) for n, s in state_shapes.items()} for _ in range(2)]
            self._sets = [{n: host(a) for n, a in hs.items()} for hs in self._host_sets]
        self._keep = [host(self.image), host(self.prev_label), host(self.logits)]
        if self.novelty is not None:
            self._keep.append(host(self.novelty))
        self._bindings = []
        for k in range(2):
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(contract.IMAGE, self._keep[0])
            binding.bind_ortvalue_input(contract.PREV_LABEL, self._keep[1])
            binding.bind_ortvalue_output(contract.LOGITS, self._keep[2])
            if self.novelty is not None:
                binding.bind_ortvalue_output(contract.NOVELTY, self._keep[3])
            for n in self.state_names:
                binding.bind_ortvalue_input(n, self._sets[k][n])
                binding.bind_ortvalue_output(contract.state_out(n), self._sets[1 - k][n])
            self._bindings.append(binding)
        self._committed = 0
        self._run_options = ort.RunOptions()
        # The public InferenceSession.run_with_iobinding adds Python-side checks for WebGPU graph
        # capture on every call, a measurable share of a ~20 us step; call the binding directly.
        native = getattr(self.session, "_sess", None)
        if native is not None and hasattr(native, "run_with_iobinding") and all(hasattr(b, "_iobinding") for b in self._bindings):
            self._run = native.run_with_iobinding
            self._binding_objects = self._bindings  # keep the wrappers (and what they reference) alive
            self._bindings = [b._iobinding for b in self._bindings]
        else:
            self._run = self.session.run_with_iobinding
        self._bound = True
        self.reset()

    def _check_first_build(self, state_shapes, num_classes: int, input_size: int, channels: int) -> None:
        """A TensorRT engine the provider built here without a check runs a check episode first; a mismatch
        closes the session, so the engine never runs a step for the caller."""
        model_id = str(json.loads(self.metadata_json)["model_id"])  # the contract check has read it already
        try:
            cpu = functools.partial(open_session, self.path, ["CPUExecutionProvider"], self.threads, self.batch)
            self._first_build.run(self.session, cpu, model_id, state_shapes, num_classes, input_size, self.batch,
                                 channels)
        except BaseException:
            self.close()
            raise

    def _device_id(self) -> int:
        for p, opts in zip(self.session.get_providers(), self._provider_options()):
            if p in GPU_PROVIDERS:
                return int(opts.get("device_id", 0))
        return 0

    def _provider_options(self) -> list[dict]:
        try:
            options = self.session.get_provider_options()
            return [options.get(p, {}) for p in self.session.get_providers()]
        except Exception:
            return [{} for _ in self.session.get_providers()]

    # --- one step --------------------------------------------------------------------------
    def run(self) -> None:
        """One step from the committed state and the current `image`/`prev_label` buffers into the
        scratch state and the `logits` (and `novelty`) buffers. Commits nothing."""
        try:
            self._run(self._bindings[self._committed], self._run_options)
        except Exception as e:  # onnxruntime's own types; e.g. an output whose shape depends on the data
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise EdgemetaError(f"{self.path}: its step failed in ONNX Runtime ({first[:200]}): its outputs do not keep "
                                "the shapes it declares; re-export it with `edgemeta export`") from None

    def commit(self, rows=None) -> None:
        """Make the last step's state the committed state: all streams (rows=None) or some."""
        if rows is None:
            self._committed ^= 1
            return
        if self._host_sets is not None:
            new, old = self._host_sets[1 - self._committed], self._host_sets[self._committed]
            for n in self.state_names:
                old[n][rows] = new[n][rows]
            return
        # GPU: a partial commit is rare (several streams, only some taught): merge on the host.
        old = self.read_state()
        new = {n: self._sets[1 - self._committed][n].numpy() for n in self.state_names}
        for n in self.state_names:
            old[n][rows] = new[n][rows]
        self.write_state(old)

    # --- state -----------------------------------------------------------------------------
    def read_state(self) -> dict[str, np.ndarray]:
        """A copy of the committed state, on the host."""
        if self._host_sets is not None:
            return {n: a.copy() for n, a in self._host_sets[self._committed].items()}
        return {n: v.numpy() for n, v in self._sets[self._committed].items()}

    def write_state(self, state: dict[str, np.ndarray]) -> None:
        for n in self.state_names:
            value = np.ascontiguousarray(state[n], dtype=np.float32)
            if self._host_sets is not None:
                np.copyto(self._host_sets[self._committed][n], value)
            else:
                self._sets[self._committed][n].update_inplace(value)

    def reset(self) -> None:
        """All-zero state: a fresh learner (the contract)."""
        if self._host_sets is not None:
            for a in self._host_sets[self._committed].values():
                a.fill(0.0)
        else:
            for v in self._sets[self._committed].values():
                v.update_inplace(np.zeros(v.shape(), np.float32))

    def close(self) -> None:
        self._bindings = []
        self._sets = []
        self._host_sets = None
        self.session = None
