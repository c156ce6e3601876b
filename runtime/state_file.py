"""What a device has learned, in one `.npz` file: written atomically, read without pickle, checked on load.

The file holds every state tensor of every stream, the pending label (the label of the last taught
example, which enters the learner with the next committed step), per-class taught counts, committed
steps, class names, and the id of the model that produced it. State only means something to the
model that made it, so loading it into another model (or a tampered file) is refused with a message,
never silently accepted as garbage.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_path

KIND = "edgemeta-runtime-state"
FORMAT = 1
_TENSOR_PREFIX = "state."


class RuntimeStateError(EdgemetaError, ValueError):
    """A state file that cannot be written, read, or used with this learner."""


@dataclass
class LearnerState:
    model_id: str
    tensors: dict[str, np.ndarray]  # name -> (B, ...) float32, graph order
    pending: np.ndarray  # (B,) int64, the label that enters with the next committed step; -1 = none
    counts: np.ndarray  # (B, C) int64, taught examples per class
    steps: np.ndarray  # (B,) int64, committed steps
    class_names: list = field(default_factory=list)  # C entries, str or None
    model_name: str = ""

    @property
    def batch(self) -> int:
        return int(self.pending.shape[0])


def save_state_file(path: str | os.PathLike, state: LearnerState) -> None:
    """Write `state` to `path` atomically: a crash at any moment leaves the old file or the new one."""
    header = {
        "kind": KIND,
        "format": FORMAT,
        "model_id": state.model_id,
        "model_name": state.model_name,
        "state_names": list(state.tensors),
        "class_names": list(state.class_names),
    }
    arrays = {
        "header": np.array(json.dumps(header)),  # a unicode scalar: loads with allow_pickle=False
        "pending": np.asarray(state.pending, np.int64),
        "counts": np.asarray(state.counts, np.int64),
        "steps": np.asarray(state.steps, np.int64),
        **{_TENSOR_PREFIX + n: np.asarray(t, np.float32) for n, t in state.tensors.items()},
    }
    try:
        with atomic_path(path) as tmp:
            # A file object, not a name: np.savez would append ".npz" to the temporary name.
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    except OSError as e:
        raise RuntimeStateError(f"cannot write state file {path}: {e.strerror or e}; the previous file was kept") from None


def load_state_file(path: str | os.PathLike) -> LearnerState:
    """Read a state file (no pickle, ever). Raises RuntimeStateError for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise RuntimeStateError(f"state file {path} does not exist")
    if not zipfile.is_zipfile(path):
        # np.load would try to unpickle a non-archive file (and refuse): say what it really is.
        raise RuntimeStateError(f"{path} is not an edgemeta state file (not an .npz archive); save one with learner.save_state")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise RuntimeStateError(f"{path} contains pickled objects; refusing to load it (edgemeta state files never do)") from None
        raise RuntimeStateError(f"{path} is not an edgemeta state file ({e}); save one with learner.save_state") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise RuntimeStateError(f"{path} is not an edgemeta state file or is damaged ({type(e).__name__}); save one with learner.save_state") from None
    try:
        header = json.loads(str(data["header"]))
    except (KeyError, json.JSONDecodeError):
        raise RuntimeStateError(f"{path} is not an edgemeta state file (no readable header); save one with learner.save_state") from None
    if not isinstance(header, dict) or header.get("kind") != KIND:
        raise RuntimeStateError(f"{path} is not an edgemeta state file (kind {header.get('kind') if isinstance(header, dict) else None!r})")
    if header.get("format") != FORMAT:
        raise RuntimeStateError(f"{path} has state format {header.get('format')!r}; this runtime reads format {FORMAT}")
    names = header.get("state_names")
    missing = [k for k in ("pending", "counts", "steps") if k not in data]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        missing.append("state_names (a list of names)")
    else:
        missing += [_TENSOR_PREFIX + n for n in names if _TENSOR_PREFIX + n not in data]
    if missing:
        raise RuntimeStateError(f"{path} is damaged: missing {', '.join(missing)}")
    return LearnerState(
        model_id=str(header.get("model_id")),
        model_name=str(header.get("model_name", "")),
        tensors={n: data[_TENSOR_PREFIX + n] for n in names},
        pending=data["pending"],
        counts=data["counts"],
        steps=data["steps"],
        class_names=header.get("class_names", []),
    )


def check_state(state: LearnerState, *, model_id: str, state_shapes: dict, num_classes: int, batch: int, where: str) -> None:
    """Refuse state that belongs to another model, another batch size, or has been tampered with."""
    if state.model_id != model_id:
        raise RuntimeStateError(
            f"{where} was saved by model {state.model_id}"
            + (f" ({state.model_name})" if state.model_name else "")
            + f"; this learner is model {model_id}: load it into the model that saved it, or reset"
        )
    if list(state.tensors) != list(state_shapes):
        raise RuntimeStateError(f"{where} holds state {list(state.tensors)}; this learner has {list(state_shapes)}")
    for key in ("pending", "counts", "steps"):
        if not np.issubdtype(getattr(state, key).dtype, np.integer):
            raise RuntimeStateError(f"{where}: '{key}' has dtype {getattr(state, key).dtype}; expected integers")
    if state.pending.ndim != 1:
        raise RuntimeStateError(f"{where}: 'pending' has shape {list(state.pending.shape)}; expected [B]")
    if state.batch != batch:
        raise RuntimeStateError(
            f"{where} holds {state.batch} stream(s); this learner runs {batch} (load the learner with batch={state.batch})"
        )
    for name, shape in state_shapes.items():
        t = state.tensors[name]
        want = (batch, *shape)
        if t.shape != want:
            raise RuntimeStateError(f"{where}: state '{name}' has shape {list(t.shape)}; expected {list(want)}")
        if t.dtype != np.float32:
            raise RuntimeStateError(f"{where}: state '{name}' has dtype {t.dtype}; expected float32")
        if not np.isfinite(t).all():
            raise RuntimeStateError(f"{where}: state '{name}' holds NaN or infinite values; the file is damaged")
    if state.counts.shape != (batch, num_classes):
        raise RuntimeStateError(f"{where}: 'counts' has shape {list(state.counts.shape)}; expected {[batch, num_classes]}")
    if state.steps.shape != (batch,):
        raise RuntimeStateError(f"{where}: 'steps' has shape {list(state.steps.shape)}; expected {[batch]}")
    if (state.counts < 0).any() or (state.steps < 0).any():
        raise RuntimeStateError(f"{where}: negative counts or steps; the file is damaged")
    if ((state.pending < -1) | (state.pending >= num_classes)).any():
        raise RuntimeStateError(f"{where}: pending label out of range [-1, {num_classes}); the file is damaged")
    names = state.class_names
    if not isinstance(names, list) or len(names) != num_classes or not all(n is None or isinstance(n, str) for n in names):
        raise RuntimeStateError(f"{where}: class names must be {num_classes} strings or nulls")
