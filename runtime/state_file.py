"""What a device has learned, in one `.npz` file: written atomically, read without pickle, checked on load.

The file holds every state tensor of every stream, the pending label (the label of the last taught
example, which enters the learner with the next committed step), per-class taught counts, committed
steps, class names, and the id of the model that produced it. State only means something to the
model that made it, so loading it into another model (or a tampered file) is refused with a message,
never silently accepted as garbage. A state file may come from anyone: its members and their declared
sizes are read from the archive's headers first, so an unknown member, a declared shape that does not fit
the file, or more bytes than the learner's state is refused before anything is inflated.
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
_COUNTERS = ("pending", "counts", "steps")
HEADER_LIMIT = 1 << 22  # bytes of the JSON header member: names and class names, never near this


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
    for name, t in state.tensors.items():
        if not np.isfinite(t).all():
            raise RuntimeStateError(f"refusing to write state file {path}: state '{name}' holds NaN or infinite values "
                                    "(a load would refuse it); the previous file was kept")
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


def load_state_file(path: str | os.PathLike, *, model_id: str, state_shapes: dict, num_classes: int,
                    batch: int) -> LearnerState:
    """Read a state file (no pickle, ever) meant for the learner these arguments describe. The archive's
    headers are checked against that learner before any array is inflated; `check_state` checks the values.
    Raises RuntimeStateError for anything that is not such a file."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a state file" if path.is_dir() else (
            "is not a regular file" if path.exists() else "does not exist")
        raise RuntimeStateError(f"state file {path} {what}")
    if not zipfile.is_zipfile(path):
        # np.load would try to unpickle a non-archive file (and refuse): say what it really is.
        raise RuntimeStateError(f"{path} is not an edgemeta state file (not an .npz archive); save one with learner.save_state")
    expected = {"pending": (batch,), "counts": (batch, num_classes), "steps": (batch,),
                **{_TENSOR_PREFIX + n: (batch, *shape) for n, shape in state_shapes.items()}}
    try:
        with zipfile.ZipFile(path) as zf:
            declared = _declared_shapes(path, zf)
        with np.load(path, allow_pickle=False) as z:
            header = _header(path, z) if "header" in z.files else None
            if header is not None:
                _check_model(header, model_id, str(path))
            _check_declared(path, declared, expected, batch)
            data = {k: z[k] for k in z.files}
    except RuntimeStateError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise RuntimeStateError(f"{path} contains pickled objects; refusing to load it (edgemeta state files never do)") from None
        raise RuntimeStateError(f"{path} is not an edgemeta state file ({e}); save one with learner.save_state") from None
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as e:
        raise RuntimeStateError(f"{path} is not an edgemeta state file or is damaged ({type(e).__name__}); save one with learner.save_state") from None
    if header is None:
        raise RuntimeStateError(f"{path} is not an edgemeta state file (no readable header); save one with learner.save_state")
    names = header.get("state_names")
    missing = [k for k in _COUNTERS if k not in data]
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


def _declared_shapes(path: Path, zf: zipfile.ZipFile) -> dict[str, tuple]:
    """Each member's shape from its .npy header (a few bytes inflated): every member known, its declared
    size the member's real size, the header member small."""
    declared: dict[str, tuple] = {}
    for info in zf.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else None
        if key is None or not (key == "header" or key in _COUNTERS or key.startswith(_TENSOR_PREFIX)):
            raise RuntimeStateError(f"{path} is not an edgemeta state file (unknown member {info.filename[:80]!r}); "
                                    "save one with learner.save_state")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
            nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if info.file_size != f.tell() + nbytes:
                raise RuntimeStateError(f"{path} is damaged: member {key!r} declares shape {list(shape)} ({nbytes} bytes) "
                                        f"but holds {info.file_size - f.tell()} bytes")
        if key == "header" and nbytes > HEADER_LIMIT:
            raise RuntimeStateError(f"{path}: its header member is {nbytes} bytes; edgemeta writes a few hundred")
        declared[key] = tuple(shape)
    return declared


def _header(path: Path, z) -> dict:
    try:
        header = json.loads(str(z["header"]))
    except json.JSONDecodeError:
        raise RuntimeStateError(f"{path} is not an edgemeta state file (no readable header); save one with learner.save_state") from None
    if not isinstance(header, dict) or header.get("kind") != KIND:
        raise RuntimeStateError(f"{path} is not an edgemeta state file (kind {header.get('kind') if isinstance(header, dict) else None!r})")
    if header.get("format") != FORMAT:
        raise RuntimeStateError(f"{path} has state format {header.get('format')!r}; this runtime reads format {FORMAT}")
    return header


def _check_model(header: dict, model_id: str, where: str) -> None:
    if str(header.get("model_id")) != model_id:
        name = header.get("model_name")
        raise RuntimeStateError(
            f"{where} was saved by model {header.get('model_id')}" + (f" ({name})" if name else "")
            + f"; this learner is model {model_id}: load it into the model that saved it, or reset"
        )


def _check_declared(path: Path, declared: dict, expected: dict, batch: int) -> None:
    """The declared shapes against the learner's, so no array larger than the learner's state is inflated."""
    pending = declared.get("pending")
    if pending is not None and len(pending) == 1 and pending[0] != batch:
        raise RuntimeStateError(f"{path} holds {pending[0]} stream(s); this learner runs {batch} "
                                f"(load the learner with batch={pending[0]})")
    names = [k[len(_TENSOR_PREFIX):] for k in declared if k.startswith(_TENSOR_PREFIX)]
    if any(_TENSOR_PREFIX + n not in expected for n in names):
        raise RuntimeStateError(f"{path} holds state {names}; this learner has "
                                f"{[k[len(_TENSOR_PREFIX):] for k in expected if k.startswith(_TENSOR_PREFIX)]}")
    for key, shape in declared.items():
        if key == "header":
            continue
        what = f"state '{key[len(_TENSOR_PREFIX):]}'" if key.startswith(_TENSOR_PREFIX) else f"'{key}'"
        if shape != expected[key]:
            raise RuntimeStateError(f"{path}: {what} has shape {list(shape)}; expected {list(expected[key])}")


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
        values = getattr(state, key)
        if not np.issubdtype(values.dtype, np.integer):
            raise RuntimeStateError(f"{where}: '{key}' has dtype {values.dtype}; expected integers")
        # the learner keeps them as int64: a larger unsigned value would wrap to a negative one
        if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
            raise RuntimeStateError(f"{where}: '{key}' holds {int(values.max())}, beyond int64; the file is damaged")
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
