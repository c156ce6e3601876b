"""Build a TensorRT engine from an exported learner.onnx on the device, without torch or the `onnx` package.

`edgemeta export learner.onnx --trt` runs this: TensorRT's ONNX parser and builder, cuda-python for
device memory, then parity of the new engine against ONNX Runtime on the CPU over whole episodes
(state carried, some streams not taught) before anything is published. Next to the ONNX file (or in
--out) it writes learner.engine, learner.engine.json (the learner's metadata and `built_for`: the
TensorRT version and GPU, which Learner.load checks) and learner.engine.log (TensorRT's messages).

The optimisation profile admits batch 1..max_batch and is tuned for `batch`, the batch the device
runs (1 for the demo); the builder's workspace comes from the device profile's trt_workspace_mb.
Precision is float32: full float16 breaks MANN's slot choice (docs/export.md), and the float16
front is learner.fp16.onnx's job on ONNX Runtime. TF32 is off for the same reason: its 10-bit
matmuls lose float32 parity.
"""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.atomic import atomic_write_bytes, atomic_write_text
from edgemeta.runtime.backends.trt import CudaRuntime, built_for, engine_sidecar, import_tensorrt

DEFAULT_WORKSPACE_MB = 1024
PARITY_STEPS = 40
PARITY_ATOL = 1e-4  # float32 engine against float32 ONNX Runtime, state carried
INT8_OPS = ("MatMulInteger", "DynamicQuantizeLinear")


def collecting_logger(trt, lines: list[str]):
    class Collect(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if severity != trt.ILogger.Severity.VERBOSE:  # verbose tactic listings run to megabytes
                lines.append(f"[{str(severity).split('.')[-1]}] {msg}")

    return Collect()


def serialize_engine(trt, onnx_path: Path, max_batch: int, batch: int, workspace_mb: int, log: list[str],
                     configure: Callable | None = None) -> bytes:
    """An engine for batch 1..max_batch, tuned for `batch`; float32 unless `configure(trt, network, config)`
    changes the precision (the checkpoint export's fp16 front)."""
    logger = collecting_logger(trt, log)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgemetaError(f"TensorRT cannot parse {onnx_path.name}: {' '.join(errors.split())[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    if configure is not None:
        configure(trt, network, config)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [line for line in log if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise EdgemetaError(f"TensorRT engine build failed: {(errors or ['see the build log'])[-1][:300]}")
    return bytes(serialized)


def _refuse_int8(onnx_path: Path, meta: dict) -> None:
    data = onnx_path.read_bytes()
    found = [op for op in INT8_OPS if op.encode() in data]
    if meta.get("precision") == "int8" or found:
        raise EdgemetaError(f"{onnx_path.name} is the int8 file for ONNX Runtime on CPUs ({', '.join(found) or 'int8'} "
                            f"ops, which TensorRT cannot parse): build the engine from {contract.ONNX_FILE}")


def build_engine_file(onnx_path, out_dir=None, max_batch: int = 1, batch: int = 1, workspace_mb: int | None = None,
                      log: Callable[[str], None] = print) -> dict:
    """Build, check and publish DIR/learner.engine (+ .json, .log) from `onnx_path`; returns the report."""
    from edgemeta.runtime.backends.native.onnx_reader import read_onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EdgemetaError(f"{onnx_path} is not a file; pass an exported {contract.ONNX_FILE}")
    if not 1 <= batch <= max_batch:
        raise EdgemetaError(f"--batch {batch} must lie in 1..--max-batch ({max_batch})")
    contents = read_onnx(onnx_path)
    raw = contents.metadata.get(contract.METADATA_KEY)
    try:
        meta = json.loads(raw) if raw else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise EdgemetaError(f"{onnx_path} has no edgemeta metadata; export it with `edgemeta export` first")
    _refuse_int8(onnx_path, meta)
    trt = import_tensorrt()
    cuda = CudaRuntime()
    try:
        target = built_for(trt, cuda)
    finally:
        cuda.close()
    out_dir = Path(out_dir) if out_dir is not None else onnx_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    workspace_mb = workspace_mb or DEFAULT_WORKSPACE_MB
    build_log: list[str] = [f"=== fp32 engine, batch 1..{max_batch} tuned for {batch}, workspace {workspace_mb} MB, "
                            f"TensorRT {target['tensorrt']} on {target['gpu']} ==="]
    log(f"building TensorRT engine (fp32, batch 1..{max_batch}, tuned for {batch}) on {target['gpu']} ...")
    engine = serialize_engine(trt, onnx_path, max_batch, batch, workspace_mb, build_log)
    sidecar = json.dumps({contract.METADATA_KEY: meta, "built_for": target,
                          "profile": {"min_batch": 1, "opt_batch": batch, "max_batch": max_batch,
                                      "workspace_mb": workspace_mb}}, indent=2) + "\n"
    with tempfile.TemporaryDirectory(prefix=".engine-", dir=out_dir) as tmp:
        staged = Path(tmp) / contract.ENGINE_FILE
        staged.write_bytes(engine)
        engine_sidecar(staged).write_text(sidecar)
        result = engine_parity(onnx_path, staged, min(max_batch, 2))
    log_text = "\n".join(build_log) + "\n"
    atomic_write_text(out_dir / contract.ENGINE_LOG_FILE, log_text)
    line = (f"TensorRT (fp32) vs onnxruntime (CPU): {result['steps']} steps x {result['batch']} streams, "
            f"logits max |diff| {result['logits_max_abs']:.2e}, {result['prediction_mismatches']} prediction mismatches")
    log(line)
    if not result["passed"]:
        raise EdgemetaError(f"TensorRT parity check failed ({line}); no engine was written (log: {out_dir / contract.ENGINE_LOG_FILE})")
    engine_path = out_dir / contract.ENGINE_FILE
    atomic_write_text(engine_sidecar(engine_path), sidecar)
    atomic_write_bytes(engine_path, engine)
    log(f"wrote {engine_path} ({len(engine):,} bytes), {engine_sidecar(engine_path).name}, {contract.ENGINE_LOG_FILE}")
    return {"engine": str(engine_path), "built_for": target, "parity": result, "max_batch": max_batch, "batch": batch,
            "workspace_mb": workspace_mb}


def engine_parity(onnx_path: Path, engine_path: Path, batch: int, steps: int = PARITY_STEPS, seed: int = 0) -> dict:
    """The engine against ONNX Runtime (CPU) through the runtime's own Learner: predict and teach over
    one episode per stream, state carried on each side, one stream left untaught at each step."""
    from edgemeta.runtime import Learner

    rng = np.random.default_rng(seed)
    worst, mismatches = 0.0, 0
    with warnings.catch_warnings(), Learner.load(engine_path, backend="trt", batch=batch) as trt, \
            Learner.load(onnx_path, backend="ort", batch=batch, providers=["cpu"], threads=1) as ort:
        warnings.simplefilter("ignore")  # episodes past the trained length: both sides still must agree
        size, classes = ort.input_size, ort.num_classes
        for t in range(steps):
            images = (rng.random((batch, 1, size, size)) < 0.15).astype(np.float32)
            labels = rng.integers(0, classes, batch)
            if batch > 1:
                labels[t % batch] = -1  # that stream is not taught: a partial commit
            for a, b in ((trt.predict(images), ort.predict(images)), (trt.teach(images, labels), ort.teach(images, labels))):
                worst = max(worst, float(np.abs(a.logits - b.logits).max()))
                mismatches += int((a.logits.argmax(1) != b.logits.argmax(1)).sum())
        for name, value in ort.state().items():
            worst = max(worst, float(np.abs(trt.state()[name] - value).max()))
    return {"passed": worst <= PARITY_ATOL and mismatches == 0, "logits_max_abs": worst,
            "prediction_mismatches": mismatches, "steps": steps, "batch": batch}
