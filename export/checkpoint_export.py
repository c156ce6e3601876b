"""`edgemeta export`: a checkpoint -> a checked export directory (ONNX step, optional fp16 variant or
TensorRT engine, model card, export.json). Nothing is published unless every check passed."""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Callable

from edgemeta import EdgemetaError, __version__
from edgemeta.runtime import contract

from . import parity as P
from .staging import staged_directory
from .trt_ready import DEFAULT_TENSORRT, check_model, format_report

PARITY_BATCH = 8  # episodes run side by side in the parity check: several, so batch rows cannot mix unnoticed


def export_checkpoint(checkpoint, out_dir, trt: bool = False, fp16: bool = False, max_batch: int = 8,
                      log: Callable[[str], None] = print, data=None, int8: bool = False,
                      tensorrt: str = DEFAULT_TENSORRT) -> dict:
    """Export CHECKPOINT (a run directory or .pt) into `out_dir`; returns the report written to export.json.

    data: Omniglot directory for the parity episodes (default $EDGEMETA_DATA; synthetic drawings without).
    tensorrt: the oldest TensorRT the target runs (a device profile's runtime.tensorrt): readiness checks its parser.
    """
    from edgemeta.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if trt:
        from .tensorrt_engine import require_tensorrt

        require_tensorrt()  # before any work: a missing TensorRT must not cost a whole export first
    task = ckpt.get("task", "omniglot")
    if task not in contract.TASKS:
        raise EdgemetaError(f"{ckpt['path']}: unknown task {task!r}; edgemeta exports {' learners and '.join(contract.TASKS)} learners")
    learner = _learner(ckpt)
    with staged_directory(out_dir) as tmp, _torch_threads(1):
        return export_checked(learner, checkpoint_metadata(ckpt), {"checkpoint": ckpt["path"]}, Path(out_dir), tmp,
                              trt, fp16, max_batch, log, data, int8, tensorrt)


def checkpoint_metadata(ckpt: dict) -> dict:
    """The metadata keys that come from the checkpoint (export_step adds the ones read off the learner)."""
    train = ckpt.get("train_config") or {}
    ways, instances = train.get("ways"), train.get("instances")
    episode_steps = train.get("episode_length") or (max(ways) * instances if ways and instances else None)
    return {
        "name": train.get("model") or "custom",
        "task": ckpt.get("task", "omniglot"),
        "preprocess": ckpt.get("preprocess") or _preprocess_id(),
        "config": {"model": ckpt["model_config"], "train": train},
        "eval": _eval_table(ckpt),
        "episode_steps": episode_steps,
        # the data set it was trained on (an image folder's class-list hash: eval refuses a changed folder)
        **({"dataset": ckpt["dataset"]} if ckpt.get("dataset") else {}),
        # an RGB learner's front end (runtime/camera/region_front.py) and every data set and weight file it
        # was made from, with provenance and licence
        **{k: ckpt[k] for k in ("front_end", "provenance") if ckpt.get(k)},
        # an Omniglot learner's (a folder-trained one has a `dataset` and is the user's to describe)
        **({"provenance": OMNIGLOT_PROVENANCE} if ckpt.get("task", "omniglot") == "omniglot"
           and not ckpt.get("dataset") and not ckpt.get("provenance") else {}),
    }


# Where an Omniglot learner's data comes from (the data folder's README says how it was obtained).
OMNIGLOT_PROVENANCE = [{
    "what": "Omniglot, images_background (training) and images_evaluation (validation and test), Lake et al. 2015",
    "source": "https://github.com/brendenlake/omniglot; PNGs as committed in AntreasAntoniou/HowToTrainYourMAMLPytorch "
              "at 86964701 (see the data folder's README)",
    "licence": "MIT (Copyright (c) 2015 Brenden Lake); the copy's repository: MIT",
}]


def export_checked(learner, metadata: dict, origin: dict, out_dir: Path, tmp: Path, trt, fp16, max_batch, log, data,
                   int8=False, tensorrt: str = DEFAULT_TENSORRT) -> dict:
    """The one export path (checkpoints and export_learner): `learner`'s step as ONNX into the staging folder
    `tmp` with `metadata`, then onnx.checker, TensorRT readiness, parity over whole episodes, the optional
    variants, the model card and export.json (which starts with `origin`, where the learner came from)."""
    import onnx

    from .onnx_export import export_step

    onnx_path = tmp / contract.ONNX_FILE
    export_step(learner, onnx_path, metadata)
    model = onnx.load(str(onnx_path))
    _check_onnx(model, contract.ONNX_FILE)
    meta = json.loads({p.key: p.value for p in model.metadata_props}[contract.METADATA_KEY])
    readiness = check_model(model, tensorrt=tensorrt)
    log(format_report(readiness))
    if not readiness["ok"]:
        raise EdgemetaError(f"{contract.ONNX_FILE} is not TensorRT-ready: {'; '.join(readiness['problems'])}; nothing was written")

    shapes = learner.state_shapes()
    steps = max(P.MIN_STEPS, meta["episode_steps"] or 0)
    inputs = P.episode_inputs(learner.cfg.num_classes, learner.cfg.image_size, PARITY_BATCH, steps, data=data,
                              channels=learner.cfg.channels)
    log(f"parity episodes: {PARITY_BATCH} x {steps} steps of {inputs.source}, label fed back one step late")
    reference = P.run_episodes(P.torch_step(learner), shapes, inputs, record=True)
    # The step, exactly, fed PyTorch's state at every step; then whole episodes on its own carried state
    # (see parity.run_episodes for why the second is gated on predictions only).
    ort_step = P.onnxruntime_step(onnx_path)
    results = {
        "onnxruntime": _check_parity("onnxruntime (CPU)", reference,
                                     P.run_episodes(ort_step, shapes, inputs, forced_by=reference), P.FP32, log),
        "onnxruntime_carried": _check_parity("onnxruntime (CPU), state carried", reference,
                                             P.run_episodes(ort_step, shapes, inputs), P.FP32_CARRIED, log),
    }
    lines = [P.format_parity("onnxruntime (CPU)", results["onnxruntime"]),
             P.format_parity("onnxruntime (CPU), state carried", results["onnxruntime_carried"])]
    if fp16 and not trt:
        results["onnx_fp16"], line = _fp16_variant(model, learner, tmp, reference, inputs, log)
        lines.append(line)
    if int8:
        results["onnx_int8"], line = _int8_variant(onnx_path, learner, tmp, reference, inputs, log)
        lines.append(line)
    if trt:
        results["tensorrt"], line = _engine(model, learner, tmp, inputs, max_batch, fp16, log)
        lines.append(line)

    report = {
        **origin,
        "metadata": meta,
        "parity_source": inputs.source,
        "parity": results,
        "parity_lines": lines,
        "readiness": readiness,
        "readiness_line": format_report(readiness),
        "max_batch": max_batch,
        "versions": _versions(trt),
    }
    _write_card_and_report(tmp, meta, model, report)
    log(f"wrote {out_dir}: " + ", ".join(report["files"]) + f", {contract.EXPORT_REPORT_FILE}")
    return report


def _check_parity(backend, reference, candidate, tol, log) -> dict:
    result = P.compare(reference, candidate, tol)
    log(P.format_parity(backend, result))
    if not result["passed"]:
        raise EdgemetaError(f"{backend} parity check failed: {'; '.join(result['failures'])}; nothing was written")
    return result


def _fp16_variant(model, learner, tmp: Path, reference, inputs, log) -> tuple[dict, str]:
    """learner.fp16.onnx: full float16 if it keeps parity, else float16 only in the stateless front."""
    import onnx
    import onnxruntime as ort

    from .fp16 import state_path_nodes, to_float16

    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    backend = f"fp16 onnxruntime ({providers[0].replace('ExecutionProvider', '')})"
    path = tmp / contract.ONNX_FP16_FILE
    result = None
    for precision, keep in (("fp16", set()), ("fp16-front", state_path_nodes(model, learner.state_names))):
        half = to_float16(model, keep)
        _set_metadata(half, precision=precision)
        _check_onnx(half, contract.ONNX_FP16_FILE)
        onnx.save(half, str(path))
        candidate = P.run_episodes(P.onnxruntime_step(path, providers), learner.state_shapes(), inputs)
        result = P.compare(reference, candidate, P.FP16)
        log(P.format_parity(f"{backend}, {precision}", result))
        if result["passed"]:
            return {"precision": precision, "provider": providers[0], **result}, P.format_parity(f"{backend}, {precision}", result)
        log(f"{precision} loses parity; " + ("trying float16 in the stateless front only" if precision == "fp16" else "giving up"))
    raise EdgemetaError(f"fp16 parity check failed: {'; '.join(result['failures'])}; nothing was written")


def _int8_variant(onnx_path: Path, learner, tmp: Path, reference, inputs, log) -> tuple[dict, str]:
    """learner.int8.onnx: int8 weights (export/int8.py), gated on probabilities like fp16."""
    import onnx

    from .int8 import quantize_int8

    path = tmp / contract.ONNX_INT8_FILE
    quantize_int8(onnx_path, path)
    model = onnx.load(str(path))
    _set_metadata(model, precision="int8")
    _check_onnx(model, contract.ONNX_INT8_FILE)
    onnx.save(model, str(path))
    candidate = P.run_episodes(P.onnxruntime_step(path), learner.state_shapes(), inputs)
    result = _check_parity("int8 onnxruntime (CPU)", reference, candidate, P.INT8, log)
    return {"precision": "int8", "provider": "CPUExecutionProvider", **result}, P.format_parity("int8 onnxruntime (CPU)", result)


def _engine(model, learner, tmp: Path, inputs, max_batch, fp16, log) -> tuple[dict, str]:
    """learner.engine and its build log; with --fp16 the state path falls back to float32 if needed."""
    from .fp16 import state_path_nodes
    from .tensorrt_engine import EngineStep, build_engine

    batch = min(PARITY_BATCH, max_batch)
    sliced = P.EpisodeInputs(inputs.images[:batch], inputs.labels[:batch], inputs.prev_label[:batch], inputs.source)
    reference = P.run_episodes(P.torch_step(learner), learner.state_shapes(), sliced)
    keep = state_path_nodes(model, learner.state_names)
    front = {o for node in model.graph.node if node.name not in keep for o in node.output}
    attempts = [("fp16", None), ("fp16-front", front)] if fp16 else [("fp32", None)]
    build_log: list[str] = []
    result = None
    for precision, fp16_tensors in attempts:
        build_log.append(f"=== building {precision} engine, batch 1..{max_batch} ===")
        log(f"building TensorRT engine ({precision}, batch 1..{max_batch}) ...")
        engine = build_engine(tmp / contract.ONNX_FILE, max_batch, fp16, build_log, fp16_tensors)
        candidate = P.run_episodes(EngineStep(engine, build_log), learner.state_shapes(), sliced)
        result = P.compare(reference, candidate, P.FP16 if fp16 else P.FP32)
        log(P.format_parity(f"TensorRT ({precision})", result))
        (tmp / contract.ENGINE_LOG_FILE).write_text("\n".join(build_log) + "\n")
        if result["passed"]:
            (tmp / contract.ENGINE_FILE).write_bytes(engine)
            return {"precision": precision, **result}, P.format_parity(f"TensorRT ({precision})", result)
    raise EdgemetaError(f"TensorRT parity check failed: {'; '.join(result['failures'])}; nothing was written")


def _write_card_and_report(tmp: Path, meta: dict, model, report: dict) -> None:
    from .model_card import render

    report["files"] = {f.name: _file_info(f) for f in sorted(tmp.iterdir())}
    (tmp / contract.MODEL_CARD_FILE).write_text(render(meta, model, report))
    report["files"][contract.MODEL_CARD_FILE] = _file_info(tmp / contract.MODEL_CARD_FILE)
    # written last: a directory with export.json is a finished export
    (tmp / contract.EXPORT_REPORT_FILE).write_text(json.dumps(report, indent=2, default=_json_default) + "\n")


def _learner(ckpt: dict):
    from edgemeta.training.checkpoint import learner_from_checkpoint

    try:
        return learner_from_checkpoint(ckpt)
    except EdgemetaError as e:
        message = str(e)
        raise EdgemetaError(message if ckpt["path"] in message else f"{ckpt['path']}: {message}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise EdgemetaError(f"{ckpt['path']}: its model config is damaged ({type(e).__name__}: {e}); re-train it") from None


def _check_onnx(model, name: str) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)  # full_check: strict shape inference too
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise EdgemetaError(f"{name} fails onnx.checker: {' '.join(str(e).split())[:300]}; nothing was written") from None


def _set_metadata(model, **extra) -> None:
    for prop in model.metadata_props:
        if prop.key == contract.METADATA_KEY:
            prop.value = json.dumps({**json.loads(prop.value), **extra})


def _eval_table(ckpt: dict) -> dict:
    """eval.json beside the checkpoint when it evaluated this very step, else the last validation."""
    path = Path(ckpt["path"]).parent / "eval.json"
    if path.is_file():
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = None
        if isinstance(table, dict) and table.get("step", ckpt["step"]) == ckpt["step"]:
            return table
    val = (ckpt.get("metrics") or {}).get("val")
    return {"split": "validation", "accuracy": val, "step": ckpt["step"]} if val else {}


def _preprocess_id() -> str:
    from edgemeta.runtime.preprocess import PREPROCESS_ID

    return PREPROCESS_ID


def _file_info(path: Path) -> dict:
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _versions(trt: bool) -> dict:
    import onnx
    import onnxruntime
    import torch

    versions = {"edgemeta": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__}
    if trt:
        import tensorrt

        versions["tensorrt"] = tensorrt.__version__
    return versions


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in export.json")


@contextlib.contextmanager
def _torch_threads(n: int):
    """One thread: a step is a few small matmuls, and extra threads mostly wait on each other."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
