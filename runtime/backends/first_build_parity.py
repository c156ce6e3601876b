"""Parity of the engine ONNX Runtime's TensorRT provider builds on the device, checked the first time.

`edgemeta export --trt` checks the engines it builds itself. The TensorRT execution provider instead
builds its own engine on the device when a session opens (or at its first run), under the profile's
options (`trt_fp16_enable`), and keeps it in `trt_engine_cache_path`. That engine is checked here once:
a short seeded episode, state carried, runs through the TensorRT session and through a CPU session of
the same file, and the logits and predictions must agree. A passing check leaves a marker in the cache
folder naming the model, the file, the ONNX Runtime version, the provider and the precision; a later
session that finds a matching marker, and the engine files it names still there, skips the check. A
failing check removes the engine files this build left and refuses, so the bad engine never runs.

Without an engine cache the provider rebuilds the engine for every session, so every session is
checked. Sessions that did not get the TensorRT provider are never checked.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.atomic import atomic_write_text
from edgemeta.runtime.file_digest import file_sha256
from edgemeta.runtime.softmax import softmax

TRT = "TensorrtExecutionProvider"
STEPS = 20
SEED = 0
INK = 0.15  # fraction of inked pixels in the check's images, about an Omniglot drawing's
# float32: as export/parity.py's FP32, absolute after scaling by max(1, max |CPU logits|).
FP32_LOGITS = 1e-4
# fp16/int8 engines keep ~3 significant digits: what must stay is what the learner says (export/parity.py's FP16).
REDUCED_PROBABILITIES = 0.05
MARKER_PREFIX = "edgemeta-parity-"


def _enabled(value) -> bool:
    """Provider options arrive as bools, ints or the strings ONNX Runtime itself uses."""
    return str(value).strip().lower() in ("1", "true")


def _trt_options(providers) -> dict | None:
    """The TensorRT provider's options in a resolved provider list, or None when it is not requested."""
    for p in providers:
        name, options = (p[0], p[1] or {}) if isinstance(p, (tuple, list)) else (p, {})
        if name == TRT:
            return dict(options)
    return None


class FirstBuildCheck:
    """Made before the session opens (so the files the build adds to the cache are known), run once the
    learner's shapes are known: `FirstBuildCheck(path, providers)`, then `.run(...)`."""

    def __init__(self, path: Path, providers):
        self.path = Path(path)
        options = _trt_options(providers)
        self.requested = options is not None
        options = options or {}
        self.reduced = _enabled(options.get("trt_fp16_enable", False)) or _enabled(options.get("trt_int8_enable", False))
        cache = options.get("trt_engine_cache_path")
        self.cache = Path(cache) if cache and _enabled(options.get("trt_engine_cache_enable", False)) else None
        self._before = self._cache_files()

    def _cache_files(self) -> set[str]:
        if self.cache is None or not self.cache.is_dir():
            return set()
        return {p.name for p in self.cache.iterdir() if p.is_file() and not p.name.startswith((".", MARKER_PREFIX))}

    def _identity(self, model_id: str, provider: str) -> dict:
        import onnxruntime as ort

        return {"model_id": model_id, "file_sha256": file_sha256(self.path), "onnxruntime": ort.__version__,
                "provider": provider, "precision": "fp16/int8" if self.reduced else "fp32"}

    def _marker(self, identity: dict) -> Path:
        safe_id = re.sub(r"[^0-9A-Za-z_-]", "_", identity["model_id"])[:64]
        return self.cache / f"{MARKER_PREFIX}{safe_id}-{identity['file_sha256'][:12]}.json"

    def _marker_holds(self, identity: dict) -> bool:
        try:
            marker = json.loads(self._marker(identity).read_text())
        except (OSError, ValueError):
            return False
        engines = marker.get("engine_files") if isinstance(marker, dict) else None
        return (isinstance(engines, list) and {k: marker.get(k) for k in identity} == identity
                and all(isinstance(n, str) and "/" not in n and (self.cache / n).is_file() for n in engines))

    def run(self, session, cpu_session, model_id: str, state_shapes: dict, num_classes: int, input_size: int,
            batch: int, channels: int = 1) -> str:
        """Check `session` against `cpu_session()` (made only when needed) if it runs on a TensorRT engine built
        without a check. Returns what happened ("skipped", "passed", "not TensorRT"); a mismatch raises."""
        if TRT not in session.get_providers():
            return "not TensorRT"
        identity = self._identity(model_id, TRT)
        if self.cache is not None and self._marker_holds(identity):
            return "skipped"
        feeds = episode(state_shapes, num_classes, input_size, batch, channels)
        reference = run_episode(cpu_session(), feeds, state_shapes, self.path, "ONNX Runtime on the CPU")
        try:
            candidate = run_episode(session, feeds, state_shapes, self.path, "the TensorRT engine")
            mismatch = compare(reference, candidate, self.reduced)
        except EdgemetaError:
            self._remove_new_engines()
            raise
        if mismatch:
            self._remove_new_engines()
            fix = ('rebuild with fp32 (runtime.precision = "fp32" in the profile: trt_fp16_enable off) or use the CPU '
                   "provider (providers=['cpu'])") if self.reduced else (
                "use the CPU provider (providers=['cpu']) or rebuild with fp32 through the checked path, "
                "`edgemeta export learner.onnx --trt`")
            raise EdgemetaError(f"{self.path}: the TensorRT engine ONNX Runtime built here does not match ONNX Runtime on "
                                f"the CPU over a {STEPS}-step check episode ({mismatch}); the engine was removed: {fix}")
        if self.cache is not None:
            engines = sorted(self._cache_files() - self._before)
            # An unwritable cache only costs a check at the next load; the engine itself passed.
            with contextlib.suppress(OSError):
                atomic_write_text(self._marker(identity), json.dumps({**identity, "engine_files": engines,
                                                                      "steps": STEPS, "seed": SEED}, indent=1) + "\n")
        return "passed"

    def _remove_new_engines(self) -> None:
        for name in self._cache_files() - self._before:
            with contextlib.suppress(OSError):
                (self.cache / name).unlink()


def episode(state_shapes: dict, num_classes: int, input_size: int, batch: int, channels: int = 1) -> list[dict]:
    """The check's inputs: sparse random drawings and labels over all classes, the label offset by one step
    as in training (zeros at the first step). No data set needed."""
    rng = np.random.default_rng(SEED)
    images = (rng.random((STEPS, batch, channels, input_size, input_size)) < INK).astype(np.float32)
    labels = rng.integers(0, num_classes, (STEPS, batch))
    prev = np.zeros((STEPS, batch, num_classes), np.float32)
    for t in range(1, STEPS):
        prev[t, np.arange(batch), labels[t - 1]] = 1.0
    return [{contract.IMAGE: images[t], contract.PREV_LABEL: prev[t]} for t in range(STEPS)]


def run_episode(session, feeds: list[dict], state_shapes: dict, path: Path, what: str) -> np.ndarray:
    """(T, B, C) logits of the episode with the state carried from step to step, starting from zeros."""
    batch = len(feeds[0][contract.IMAGE])
    state = {n: np.zeros((batch, *s), np.float32) for n, s in state_shapes.items()}
    names = [contract.LOGITS] + [contract.state_out(n) for n in state_shapes]
    logits = []
    for step in feeds:
        try:
            out = session.run(names, {**step, **state})
        except Exception as e:  # onnxruntime's own exception types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise EdgemetaError(f"{path}: {what} failed during the first-build parity check ({first[:200]}); use the CPU "
                                "provider (providers=['cpu'])") from None
        logits.append(np.asarray(out[0], np.float32))
        state = {n: np.asarray(v, np.float32) for n, v in zip(state_shapes, out[1:])}
    return np.stack(logits)


def compare(reference: np.ndarray, candidate: np.ndarray, reduced: bool) -> str:
    """"" when `candidate` matches `reference`, else what differs. fp32: logits within 1e-4 x max(1, max |ref|)
    and identical predictions; fp16/int8: probabilities within 0.05."""
    if candidate.shape != reference.shape or not np.all(np.isfinite(candidate)):
        return f"logits of shape {candidate.shape} with non-finite values" if candidate.shape == reference.shape else (
            f"logits of shape {candidate.shape}, expected {reference.shape}")
    if reduced:
        diff = float(np.abs(softmax(candidate) - softmax(reference)).max())
        return "" if diff <= REDUCED_PROBABILITIES else f"max |probability diff| {diff:.3g} > {REDUCED_PROBABILITIES:g}"
    bound = FP32_LOGITS * max(1.0, float(np.abs(reference).max()))
    diff = float(np.abs(candidate - reference).max())
    differ = int((candidate.argmax(-1) != reference.argmax(-1)).sum())
    problems = []
    if diff > bound:
        problems.append(f"max |logits diff| {diff:.3g} > {bound:.3g}")
    if differ:
        problems.append(f"{differ} of {reference.shape[0] * reference.shape[1]} predictions differ")
    return "; ".join(problems)
