"""The live few-shot learner: teach it a few examples, it names what it sees. No backprop, no torch.

The protocol follows the label offset of meta-training: at every step the learner sees an image and
the one-hot label of the previous *committed* image. So:

- `teach(image, label)` runs a step with the pending label, commits the new state, and makes
  `label` the pending label: it enters the learner together with the next committed image;
- `predict(image)` runs a step from the committed state and pending label and returns class
  probabilities without committing anything, so watching a scene for hours changes nothing
  that was taught.

    from edgemeta.runtime import Learner
    with Learner.load("learner.onnx") as learner:
        learner.teach(card_a, 0)
        learner.teach(card_b, 1)
        p = learner.predict(frame_image)      # p.label, p.confidence, p.probs
        learner.save_state("state.npz")

One Learner may be shared by several threads (a camera thread that predicts, a UI thread that teaches):
each call runs whole under the learner's lock, so calls are serialized, never interleaved.
"""
from __future__ import annotations

import functools
import math
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.contract_check import check_learner
from edgemeta.runtime.file_kind import not_a_file
from edgemeta.runtime.softmax import softmax
from edgemeta.runtime.state_file import LearnerState, check_state, load_state_file, save_state_file

LEARNERS_DIR = Path(__file__).resolve().parent / "learners"  # shipped learners: learners/<name>.onnx
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
BACKENDS = ("auto", "ort", "trt", "native")


def _locked(method):
    """Run `method` under the learner's lock: the backend's image, state and label buffers are shared."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return call


class EpisodeLengthWarning(UserWarning):
    """More examples were taught than the learner saw in its training episodes."""


class Prediction:
    """One step's output for B streams.

    logits      (B, C) float32, the learner's raw scores
    probs       (B, C) float32, softmax over all C classes (mask untaught classes yourself if you like)
    label       (B,) int64, argmax
    confidence  (B,) float32, probs at label
    novelty     (B,) float32, probability the image shows an untaught class; None without that head
    probs/label/confidence are computed on first use: teach() returns a Prediction that callers
    often ignore, and the softmax would otherwise cost as much as a quarter of a step.
    """

    __slots__ = ("logits", "novelty", "_probs")

    def __init__(self, logits: np.ndarray, novelty: np.ndarray | None):
        self.logits = logits
        self.novelty = novelty
        self._probs = None

    @property
    def probs(self) -> np.ndarray:
        if self._probs is None:
            self._probs = softmax(self.logits).astype(np.float32)
        return self._probs

    @property
    def label(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    def __repr__(self) -> str:
        nov = "" if self.novelty is None else f", novelty={self.novelty.round(3).tolist()}"
        return f"Prediction(label={self.label.tolist()}, confidence={self.confidence.round(3).tolist()}{nov})"


def shipped_learners() -> list[str]:
    return sorted(p.stem for p in LEARNERS_DIR.glob("*.onnx")) if LEARNERS_DIR.is_dir() else []


def resolve_learner(model: str | os.PathLike, backend: str = "auto") -> Path:
    """A path to learner.onnx/.engine, an export directory holding one, or a shipped learner name."""
    p = Path(model).expanduser()
    want_engine = backend == "trt"
    if p.is_dir():
        for name in (("learner.engine", "learner.onnx") if want_engine else ("learner.onnx", "learner.engine")):
            if (p / name).is_file():
                return p / name
        raise EdgemetaError(f"{p} holds no learner.onnx or learner.engine; export one there with `edgemeta export --out {p}`")
    if p.is_file():
        return p
    text = str(model)
    if os.sep not in text and "/" not in text and not p.suffix:
        suffixes = (".engine", ".onnx") if want_engine else (".onnx", ".engine")
        for suffix in suffixes:
            if (LEARNERS_DIR / f"{text}{suffix}").is_file():
                return LEARNERS_DIR / f"{text}{suffix}"
        shipped = shipped_learners()
        raise EdgemetaError(
            f"no shipped learner named {text!r} (shipped: {', '.join(shipped) if shipped else 'none in this install'}); "
            "pass the path of a learner.onnx written by `edgemeta export`"
        )
    raise EdgemetaError(f"learner file {p} {not_a_file(p) or 'is not a file'}; export one with `edgemeta export` or pass a "
                        "shipped name")


MAX_THREADS = 1024  # a thread count above this is a mistake, not a machine


def _buffer_bytes(spec, batch: int) -> int:
    """What bind() allocates: the image, label, logits and novelty buffers and two copies of the state."""
    per_stream = spec.channels * spec.input_size ** 2 + 2 * spec.num_classes + 1 + 2 * sum(int(np.prod(s)) for s in spec.state_shapes.values())
    return 4 * batch * per_stream


def _check_buffers_fit(spec, batch: int, where: str) -> None:
    """Refuse a batch whose buffers exceed the machine's memory before allocating them."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    need = _buffer_bytes(spec, batch)
    if need > physical:
        raise EdgemetaError(f"{where}: batch={batch} needs {need / 2**30:.1f} GiB of buffers, more than this machine's "
                            f"{physical / 2**30:.1f} GiB; load it with fewer streams")


def _open_backend(path: Path, backend: str, providers, threads, batch: int, precision: str | None = None):
    if backend not in BACKENDS:
        raise EdgemetaError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if precision is not None and backend != "native":
        raise EdgemetaError(
            f"precision={precision!r} applies to backend='native'; ONNX Runtime and TensorRT run the precision of the "
            "file (load learner.int8.onnx / mann-int8 for int8 weights)"
        )
    if backend == "native":
        if path.suffix in ENGINE_SUFFIXES:
            raise EdgemetaError(f"{path} is a TensorRT engine; backend 'native' reads learner.onnx (or use backend='trt')")
        from edgemeta.runtime.backends.native.backend import NativeBackend

        return NativeBackend(path, threads=threads, batch=batch, precision=precision, providers=providers)
    if backend == "auto":
        backend = "trt" if path.suffix in ENGINE_SUFFIXES else "ort"
    if backend == "trt":
        if path.suffix == ".onnx":
            raise EdgemetaError(
                f"backend 'trt' runs TensorRT engines; {path} is an ONNX file: build learner.engine with "
                "`edgemeta export --trt`, or use backend='ort' with providers=['tensorrt'] (ONNX Runtime's TensorRT EP)"
            )
        from edgemeta.runtime.backends.trt import TrtBackend

        return TrtBackend(path, batch=batch)
    if path.suffix in ENGINE_SUFFIXES:
        raise EdgemetaError(f"{path} is a TensorRT engine; load it with backend='trt' (or pass the learner.onnx for onnxruntime)")
    from edgemeta.runtime.backends.ort import OrtBackend

    return OrtBackend(path, providers=providers, threads=threads, batch=batch)


class Learner:
    """A loaded learner with its live state. Make one with `Learner.load(...)`."""

    def __init__(self, backend, spec, batch: int, path: Path):
        self._backend = backend
        self._lock = threading.RLock()
        self.path = path
        self.batch = batch
        self.metadata: dict = spec.metadata
        self.num_classes: int = spec.num_classes
        self.input_size: int = spec.input_size
        self.channels: int = spec.channels  # 1: an ink map; 3: RGB in [0, 1] (an "objects" learner)
        self.has_novelty: bool = spec.has_novelty
        self.state_shapes: dict = dict(spec.state_shapes)
        self.model_id: str = str(spec.metadata["model_id"])
        self.episode_steps = spec.metadata.get("episode_steps")
        steps = self.episode_steps
        self._limit = steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else 0
        self._class_names: list = [None] * self.num_classes
        self._streams = np.arange(batch)
        self._clear_memory()

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path, backend: str = "auto", providers=None, threads: int | None = None, batch: int = 1,
             precision: str | None = None) -> "Learner":
        """Load an exported learner (learner.onnx, a TensorRT .engine, an export directory or a shipped
        name such as "default") and check it against the contract.

        backend: "ort" (ONNX Runtime), "trt" (a TensorRT engine), "auto" (by file type: ort or trt), or
                 "native": the whole step as one compiled C function, for MANN learners with a flat
                 encoder (mann) on a CPU; needs a C compiler the first time (runtime/backends/native/backend.py).
        providers: ONNX Runtime execution providers, e.g. ["CUDAExecutionProvider", "CPUExecutionProvider"]
                   or aliases "tensorrt", "cuda", "cpu"; None picks the best available.
        threads: CPU threads for ONNX Runtime (None: its default). batch: independent streams B.
        precision: backend "native" only: "int8" (default; int8 weights times activations quantized to
                   14 bits, exact integer sums) or "fp32".
        """
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise EdgemetaError(f"batch must be a positive integer, got {batch!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
            raise EdgemetaError(f"threads must be a positive integer, got {threads!r}")
        if threads is not None and threads > MAX_THREADS:
            raise EdgemetaError(f"threads={threads} is more than any machine runs; use 1..{MAX_THREADS} "
                                f"(this one has {os.cpu_count()} CPUs)")
        resolved = resolve_learner(path, backend)
        be = _open_backend(resolved, backend, providers, threads, int(batch), precision)
        try:
            spec = check_learner(be.inputs, be.outputs, be.metadata_json, int(batch), str(resolved))
            _check_buffers_fit(spec, int(batch), str(resolved))
            be.bind(spec.state_shapes, spec.num_classes, spec.input_size, spec.has_novelty, channels=spec.channels)
        except MemoryError:
            be.close()
            raise EdgemetaError(f"{resolved}: batch={batch} needs more memory than this machine can give; "
                                "load it with fewer streams") from None
        except BaseException:
            be.close()
            raise
        return cls(be, spec, int(batch), resolved)

    # --- the live protocol -----------------------------------------------------------------
    @_locked
    def predict(self, image) -> Prediction:
        """Class probabilities for `image` given everything taught so far. Commits nothing."""
        self._check_open()
        self._set_image(image)
        self._backend.run()
        self._scratch_valid = True
        self._last = self._prediction()
        return self._last

    @_locked
    def teach(self, image, label) -> Prediction:
        """Commit a step for `image`, then make `label` the pending label.

        label: a class index in [0, C) for batch 1; for B streams a (B,) array where -1 leaves that
        stream untaught (its state does not change). Returns the prediction made for `image`
        before teaching it (what the learner thought it was).
        """
        self._check_open()
        labels = self._check_labels(label)
        if not (self._scratch_valid and self._same_image(image)):
            # The step the last predict() ran is exactly the one to commit when the image is the
            # same (the usual "look, then press a key" flow), so only a new image is run.
            self._set_image(image)
            self._backend.run()
            self._last = self._prediction()
        if self.batch == 1:
            # One stream: plain Python on scalars; the general path below costs more than the step.
            lab = int(labels[0])
            self._backend.commit()
            self._pending[0] = lab
            self._counts[0, lab] += 1
            self._steps[0] += 1
            prev = self._backend.prev_label
            prev.fill(0.0)
            prev[0, lab] = 1.0
            self._scratch_valid = False
            if self._limit and not self._warned and self._steps[0] > self._limit:
                self._warn_if_past_episode()
            return self._last
        if labels.min() >= 0:  # every stream taught: swap, and update with whole-array operations
            self._backend.commit()
            self._pending[:] = labels
            self._counts[self._streams, labels] += 1
            self._steps += 1
        else:
            rows = np.flatnonzero(labels >= 0)
            if len(rows):
                self._backend.commit(rows)
                self._pending[rows] = labels[rows]
                self._counts[rows, labels[rows]] += 1
                self._steps[rows] += 1
        self._scratch_valid = False
        self._update_prev_label()
        if self._limit and not self._warned:
            self._warn_if_past_episode()
        return self._last

    @_locked
    def reset(self) -> None:
        """Forget everything taught (all streams). Class names are kept."""
        self._check_open()
        self._backend.reset()
        self._clear_memory()

    # --- what has been taught --------------------------------------------------------------
    @property
    def num_taught(self):
        """Examples taught: an int for batch 1, a (B,) array for several streams."""
        return int(self._steps[0]) if self.batch == 1 else self._steps.copy()

    @property
    def past_training_episodes(self) -> bool:
        """True once more examples were taught (in some stream) than the learner's meta-training episodes held:
        from there its accuracy falls towards chance (see EpisodeLengthWarning)."""
        return bool(self._limit) and int(self._steps.max()) > self._limit

    @property
    def counts(self) -> np.ndarray:
        """Taught examples per class: (C,) for batch 1, (B, C) for several streams."""
        return self._counts[0].copy() if self.batch == 1 else self._counts.copy()

    @property
    def pending_label(self):
        """The label that enters with the next committed step (-1: none). int for batch 1, else (B,)."""
        return int(self._pending[0]) if self.batch == 1 else self._pending.copy()

    @property
    def class_names(self) -> list:
        return list(self._class_names)

    @class_names.setter
    def class_names(self, names) -> None:
        names = list(names)
        if len(names) != self.num_classes or not all(n is None or isinstance(n, str) for n in names):
            raise EdgemetaError(f"class_names must be {self.num_classes} strings (or None), got {names!r}")
        self._class_names = names

    @_locked
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the committed state tensors, (B, ...) each."""
        self._check_open()
        return self._backend.read_state()

    @property
    def state_nbytes(self) -> int:
        """Bytes of state for all B streams (float32)."""
        return int(sum(4 * self.batch * int(np.prod(s)) for s in self.state_shapes.values()))

    @property
    def backend(self) -> str:
        """Which engine runs the step, e.g. "onnxruntime CPUExecutionProvider, 1 thread"."""
        return self._backend.describe()

    # --- persistence -----------------------------------------------------------------------
    @_locked
    def save_state(self, path) -> None:
        """Save what was learned to `path` (.npz, atomic: the old file survives a crash)."""
        self._check_open()
        save_state_file(path, LearnerState(
            model_id=self.model_id, model_name=str(self.metadata.get("name", "")), tensors=self._backend.read_state(),
            pending=self._pending.copy(), counts=self._counts.copy(), steps=self._steps.copy(),
            class_names=list(self._class_names),
        ))

    @_locked
    def load_state(self, path) -> None:
        """Restore state saved by `save_state` of the same model; anything else is refused."""
        self._check_open()
        st = load_state_file(path, model_id=self.model_id, state_shapes=self.state_shapes, num_classes=self.num_classes,
                             batch=self.batch)
        check_state(st, model_id=self.model_id, state_shapes=self.state_shapes, num_classes=self.num_classes,
                    batch=self.batch, where=str(path))
        self._backend.write_state(st.tensors)
        self._pending = st.pending.astype(np.int64)
        self._counts = st.counts.astype(np.int64)
        self._steps = st.steps.astype(np.int64)
        self._class_names = list(st.class_names)
        self._scratch_valid = False
        self._warned = False
        self._update_prev_label()
        self._warn_if_past_episode()

    # --- lifetime --------------------------------------------------------------------------
    @_locked
    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> "Learner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self.metadata.get("name", "?")
        return f"Learner({name!r}, classes={self.num_classes}, size={self.input_size}, batch={self.batch}, taught={self.num_taught})"

    # --- internals -------------------------------------------------------------------------
    def _clear_memory(self) -> None:
        b, c = self.batch, self.num_classes
        self._pending = np.full(b, -1, np.int64)
        self._counts = np.zeros((b, c), np.int64)
        self._steps = np.zeros(b, np.int64)
        self._scratch_valid = False
        self._warned = False
        self._last = None
        self._update_prev_label()

    def _check_open(self) -> None:
        if self._backend is None:
            raise EdgemetaError("this learner was closed; load it again")

    def _update_prev_label(self) -> None:
        """The one-hot previous-label input, from the pending labels (all zeros where none)."""
        prev = self._backend.prev_label
        prev.fill(0.0)
        if self._pending.min() >= 0:
            prev[self._streams, self._pending] = 1.0
        else:
            rows = np.flatnonzero(self._pending >= 0)
            prev[rows, self._pending[rows]] = 1.0
        self._scratch_valid = False

    def _as_batch(self, image) -> np.ndarray:
        """Any accepted image layout -> a (B, K, S, S) view or array, checked (K: 1 ink channel, or 3 for RGB)."""
        s, b, k = self.input_size, self.batch, self.channels
        x = np.asarray(image)
        if x.dtype.kind != "f":
            what = ("RGB in [0, 1]; convert camera frames with edgemeta.runtime.camera.region_front" if k == 3 else
                    "ink map in [0, 1] (ink = 1.0); convert camera frames with edgemeta.runtime.camera.frames.frame_to_input")
            raise EdgemetaError(f"image: dtype {x.dtype}; expected a float {what}")
        if x.shape == (b, k, s, s):
            return x
        if k == 1 and (x.shape in ((b, s, s),) or (b == 1 and x.shape in ((s, s), (1, s, s)))):
            return x.reshape(b, 1, s, s)
        if k == 3 and b == 1 and x.shape == (3, s, s):
            return x.reshape(1, 3, s, s)
        if k == 1:
            expected = f"({s}, {s}), (1, {s}, {s}) or (1, 1, {s}, {s})" if b == 1 else f"({b}, 1, {s}, {s}) or ({b}, {s}, {s})"
        else:
            expected = f"(3, {s}, {s}) or (1, 3, {s}, {s})" if b == 1 else f"({b}, 3, {s}, {s})"
        raise EdgemetaError(f"image: got shape {x.shape}; expected {expected} for this learner (batch {b}, size {s})")

    def _set_image(self, image) -> None:
        self._scratch_valid = False  # the image buffer is about to change
        buf = self._backend.image
        np.copyto(buf, self._as_batch(image), casting="same_kind")
        if not math.isfinite(buf.sum()):  # one reduction: any NaN or inf makes the sum non-finite
            raise EdgemetaError("image holds NaN, infinite or absurdly large values; check the camera frame and preprocessing")

    def _same_image(self, image) -> bool:
        try:
            return bool(np.array_equal(self._as_batch(image), self._backend.image))
        except EdgemetaError:
            return False

    def _check_labels(self, label) -> np.ndarray:
        b, c = self.batch, self.num_classes
        if b == 1 and type(label) is int and 0 <= label < c:  # the common case, without numpy
            return (label,)
        lab = np.asarray(label)
        if lab.dtype == bool or not np.issubdtype(lab.dtype, np.integer):
            raise EdgemetaError(f"label must be an integer class index in [0, {c}), got {label!r}")
        if b == 1 and lab.shape in ((), (1,)):
            lab = lab.reshape(1)
            if not 0 <= lab[0] < c:
                raise EdgemetaError(f"label {int(lab[0])} is out of range: this learner has {c} classes (0..{c - 1})")
            return lab.astype(np.int64)
        if lab.shape != (b,):
            raise EdgemetaError(f"labels: got shape {lab.shape}; expected ({b},) for {b} streams (-1 = do not teach that stream)")
        if lab.dtype != np.int64:
            lab = lab.astype(np.int64)
        if lab.min() < -1 or lab.max() >= c:
            raise EdgemetaError(f"labels {lab.tolist()} out of range: each must be in [0, {c}) or -1 (stream not taught)")
        return lab

    def _prediction(self) -> Prediction:
        nov = self._backend.novelty
        return Prediction(self._backend.logits.copy(), None if nov is None else nov[:, 0].copy())

    def _warn_if_past_episode(self) -> None:
        limit = self._limit
        if self._warned or not limit:
            return
        if int(self._steps.max()) > limit:
            self._warned = True
            warnings.warn(
                f"{int(self._steps.max())} examples taught; this learner was meta-trained on episodes of {limit} steps: "
                "taught past that, its accuracy falls to chance within a few hundred examples; reset() (key r in the "
                "demo) starts a new episode",
                EpisodeLengthWarning, stacklevel=3,
            )
