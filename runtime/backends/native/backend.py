"""Native backend: a whole MANN step as one C function (runtime/backends/native/mann_step.c), called through ctypes.

ONNX Runtime pays about half a microsecond per graph node whatever the node computes, and the
MANN step graph has ~60 nodes: about 30 us of a step is dispatch. This backend computes the same
function (export/mann_graph.py + edgemeta.models.mann.lrua_access) in one hand-written call:

- the weights come from the same learner.onnx that ONNX Runtime runs, read with
  runtime/backends/native/onnx_reader.py (no `onnx` package), and are rearranged once at load: the two large
  matrices into panels of 64 output columns, input-major ([panel][row][64]);
- precision "int8" (the default) stores those two matrices as int8 with one float scale per output
  column (symmetric, quantized here at load), multiplied by activations quantized per step to 14-bit
  integers with exact int32 sums; "fp32" keeps them float32
  and computes what ONNX Runtime computes on learner.onnx within float rounding;
- rows of the weights whose input is exactly zero are skipped: most pixels of a drawing are paper
  and the previous label is one-hot;
- state is double-buffered as in the ONNX Runtime backend: a step reads the committed set and writes
  the other, a commit swaps them, so predict() never changes what was taught.

Only MANN learners with a flat encoder (the `mann` family) can run here; anything else is refused
at load with the backend to use instead. The C source is compiled on first use (runtime/backends/native/build.py).
"""
from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.backends import TensorSpec
from edgemeta.runtime.backends.native.onnx_reader import read_onnx

PRECISIONS = ("int8", "fp32")
PANEL = 64  # output columns per weight panel (mann_step.c)
ABI = 2  # MANN_ABI in mann_step.c
WEIGHTS = ("w_lstm", "b_lstm", "w_heads", "b_heads", "w_out", "b_out")
STATE = ("h", "c", "memory", "read", "read_weights", "usage", "keys")

_P = ctypes.c_void_p
_I = ctypes.c_int32


class MannArgs(ctypes.Structure):
    """struct mann_args in mann_step.c, field for field."""

    _fields_ = (
        [(n, _I) for n in ("batch", "F", "C", "Hd", "N", "W", "H", "row", "has_novelty", "int8",
                           "K", "Gp", "Pp", "Op")]
        + [("gamma", ctypes.c_float)]
        + [(n, _P) for n in ("w_lstm", "s_lstm", "b_lstm", "w_heads", "s_heads", "b_heads", "w_out", "b_out",
                             "image", "prev_label")]
        + [(n, _P) for n in STATE]
        + [(f"{n}_out", _P) for n in STATE]
        + [(n, _P) for n in ("logits", "novelty", "scratch")]
    )


def aligned_zeros(shape, dtype=np.float32, align: int = 64) -> np.ndarray:
    """A zeroed C-contiguous array whose data starts on an `align`-byte boundary, followed by at
    least `align` spare bytes (the kernel may read, never use, up to 32 bytes past a row's end)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + 2 * align, np.uint8)
    offset = -raw.ctypes.data % align
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def _pad_cols(w: np.ndarray, cols: int) -> np.ndarray:
    out = np.zeros((w.shape[0], cols), np.float32)
    out[:, : w.shape[1]] = w
    return out


def panels(w: np.ndarray, int8: bool) -> tuple[np.ndarray, np.ndarray]:
    """Input-major [rows, cols] -> (panels, per-column scales), cols padded to a multiple of 64.

    fp32: [cols/64][rows][64], scales all 1.
    int8: symmetric per output column, scale = max |w| / 127; rows in pairs, the two rows of a
    column side by side: [cols/64][rows/2][64][2] (the layout vpmaddwd multiplies; mann_step.c)."""
    rows, cols = w.shape
    padded = -(-cols // PANEL) * PANEL
    w = _pad_cols(w.astype(np.float32), padded)
    scale = np.ones(padded, np.float32)
    if not int8:
        out = aligned_zeros((padded // PANEL, rows, PANEL), np.float32)
        out[...] = w.reshape(rows, padded // PANEL, PANEL).transpose(1, 0, 2)
        return out, scale
    if rows >= 1032:  # int32 sums of 14-bit activations times int8 weights stay exact below that
        raise EdgemetaError(f"backend 'native' int8 handles up to 1031 inputs per product, this learner has {rows}: "
                            "use precision='fp32'")
    peak = np.abs(w).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    pairs = -(-rows // 2)
    q = np.concatenate([q, np.zeros((2 * pairs - rows, padded), np.int8)])
    out = aligned_zeros((padded // PANEL, pairs, PANEL, 2), np.int8)
    out[...] = q.reshape(pairs, 2, padded // PANEL, PANEL).transpose(2, 0, 3, 1)
    return out, scale


def int8_sibling(path: Path) -> Path | None:
    """The float32 file an int8 export was made from, by the shipped names: mann-int8.onnx -> mann.onnx,
    learner.int8.onnx -> learner.onnx."""
    name = path.name
    for tail, repl in (("-int8.onnx", ".onnx"), (".int8.onnx", ".onnx")):
        if name.endswith(tail):
            return path.with_name(name[: -len(tail)] + repl)
    return None


def _model_config(meta: dict, where: str) -> dict:
    cfg = (meta.get("config") or {}).get("model") if isinstance(meta.get("config"), dict) else None
    if not isinstance(cfg, dict):
        raise EdgemetaError(f"{where}: metadata has no model config; backend 'native' needs it: re-export the learner")
    arch, encoder = cfg.get("arch"), cfg.get("encoder")
    if arch != "mann":
        raise EdgemetaError(f"backend 'native' runs MANN learners with a flat encoder (e.g. mann); this is a {arch!r} "
                            "learner: use backend='ort'")
    if encoder != "flat":
        raise EdgemetaError(f"backend 'native' runs MANN learners with a flat encoder (e.g. mann); this learner has a "
                            f"{encoder} encoder: use backend='ort'")
    missing = [k for k in ("image_size", "num_classes", "controller", "memory_slots", "memory_width", "read_heads",
                           "gamma", "novelty") if k not in cfg]
    if missing:
        raise EdgemetaError(f"{where}: model config lacks {', '.join(missing)}; re-export the learner with this edgemeta")
    # Checked before anything is compiled: these values become -D macros and buffer sizes.
    bad = [k for k in ("image_size", "num_classes", "controller", "memory_slots", "memory_width", "read_heads")
           if isinstance(cfg[k], bool) or not isinstance(cfg[k], int) or not 1 <= cfg[k] <= 4096]
    if isinstance(cfg["gamma"], bool) or not isinstance(cfg["gamma"], (int, float)) or not 0 <= cfg["gamma"] <= 1:
        bad.append("gamma")
    if not isinstance(cfg["novelty"], bool):
        bad.append("novelty")
    if bad:
        raise EdgemetaError(f"{where}: model config has invalid {', '.join(f'{k}={cfg[k]!r}' for k in bad)}; "
                            "re-export the learner")
    if cfg["controller"] % 8:
        raise EdgemetaError(f"backend 'native' needs a controller size that is a multiple of 8 (this learner has "
                            f"{cfg['controller']}): use backend='ort'")
    return cfg


class NativeBackend:
    """The Learner's backend interface (see OrtBackend) over the fused C step."""

    kind = "native"

    def __init__(self, path, threads: int | None = None, batch: int = 1, precision: str | None = None, providers=None):
        precision = "int8" if precision is None else precision
        if precision not in PRECISIONS:
            raise EdgemetaError(f"unknown precision {precision!r} for backend 'native'; valid: {', '.join(PRECISIONS)}")
        if threads not in (None, 1):
            raise EdgemetaError(f"backend 'native' runs a step on one thread; got threads={threads} (use threads=1 or None)")
        if providers is not None:
            raise EdgemetaError("providers are ONNX Runtime execution providers; backend 'native' takes none")
        self.path = Path(path)
        self.batch = int(batch)
        self.threads = 1
        self.precision = precision
        contents = read_onnx(self.path)
        meta = self._metadata(contents, self.path)
        self.weights_path = self.path
        if "w_lstm" not in contents.initializers and "w_lstm_quantized" in contents.initializers:
            contents, meta = self._float_sibling(meta)
        self.metadata_json = contents.metadata.get(contract.METADATA_KEY)
        self.cfg = _model_config(meta, str(self.path))
        self.inputs = [TensorSpec(v.name, v.shape, v.dtype) for v in contents.inputs]
        self.outputs = [TensorSpec(v.name, v.shape, v.dtype) for v in contents.outputs]
        self._weights = self._prepare(contents.initializers)
        self._check_state_inputs()
        from edgemeta.runtime.backends.native.build import load_library

        d = self.dims
        defines = {f"MANN_{k}": d[k] for k in ("F", "C", "Hd", "N", "W", "H", "row", "Op")}
        self._lib, self._flags = load_library(defines)
        if self._lib.mann_abi() != ABI or self._lib.mann_args_size() != ctypes.sizeof(MannArgs):
            raise EdgemetaError("backend 'native': the compiled library does not match this edgemeta; "
                                "delete the edgemeta native cache and load again")
        self._step = self._lib.mann_step
        self._step.argtypes = [ctypes.c_void_p]
        self._step.restype = ctypes.c_int
        self._lib.mann_scratch_bytes.argtypes = [ctypes.c_void_p]
        self._lib.mann_scratch_bytes.restype = ctypes.c_long
        self._lib.mann_kernel.restype = ctypes.c_char_p
        self.kernel = self._lib.mann_kernel().decode()  # the int8 product as compiled: avx2, neon or plain C
        self._args = []

    @staticmethod
    def _metadata(contents, where) -> dict:
        raw = contents.metadata.get(contract.METADATA_KEY)
        try:
            meta = json.loads(raw) if raw is not None else None
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise EdgemetaError(f"{where} has no readable '{contract.METADATA_KEY}' metadata; it was not written by `edgemeta export`")
        return meta

    def _float_sibling(self, meta: dict):
        sibling = int8_sibling(self.path)
        if sibling is None or not sibling.is_file():
            raise EdgemetaError(
                f"{self.path} has int8 weights for ONNX Runtime; backend 'native' reads the float32 learner.onnx "
                "(it quantizes at load itself, precision='int8'): pass that file"
            )
        contents = read_onnx(sibling)
        other = self._metadata(contents, sibling)
        if other.get("model_id") != meta.get("model_id"):
            raise EdgemetaError(
                f"{self.path} has int8 weights and {sibling.name} next to it is another model "
                f"(model_id {other.get('model_id')} != {meta.get('model_id')}); pass the float32 learner.onnx of this model"
            )
        self.weights_path = sibling
        return contents, other

    def _prepare(self, init: dict) -> dict:
        cfg = self.cfg
        missing = [n for n in WEIGHTS if n not in init]
        if missing:
            raise EdgemetaError(f"{self.weights_path} lacks the MANN step graph's weights ({', '.join(missing)}); backend 'native' "
                                "reads learners exported by `edgemeta export` (export/mann_graph.py): re-export it")
        f, c, hd = cfg["image_size"] ** 2, cfg["num_classes"], cfg["controller"]
        n, w, heads = cfg["memory_slots"], cfg["memory_width"], cfg["read_heads"]
        row = w + c  # label-aligned rows: [key; label]
        r = heads * row
        o = c + (1 if cfg["novelty"] else 0)
        self.dims = dict(F=f, C=c, Hd=hd, N=n, W=w, H=heads, row=row, R=r, K=f + c + hd + r, O=o)
        expected = {"w_lstm": (f + c + hd + r, 4 * hd), "b_lstm": (4 * hd,), "w_heads": (hd + f, heads * (w + 2)),
                    "b_heads": (heads * (w + 2),), "w_out": (hd + r, o), "b_out": (o,)}
        for name, shape in expected.items():
            got = tuple(init[name].shape)
            if got != shape or init[name].dtype != np.float32:
                raise EdgemetaError(f"{self.weights_path}: weight {name!r} is {init[name].dtype} {list(got)}; expected float32 "
                                    f"{list(shape)} for this learner's config: re-export it")
        int8 = self.precision == "int8"
        out = {}
        out["w_lstm"], out["s_lstm"] = panels(init["w_lstm"], int8)
        out["b_lstm"] = _pad_cols(init["b_lstm"][None], out["s_lstm"].size)[0]
        out["w_heads"], out["s_heads"] = panels(init["w_heads"], int8)
        out["b_heads"] = _pad_cols(init["b_heads"][None], out["s_heads"].size)[0]
        op = -(-o // 8) * 8
        out["w_out"] = _pad_cols(init["w_out"], op)
        out["b_out"] = _pad_cols(init["b_out"][None], op)[0]
        self.dims.update(Gp=out["s_lstm"].size, Pp=out["s_heads"].size, Op=op)
        return out

    def _state_expected(self) -> dict:
        d = self.dims
        return {"h": (d["Hd"],), "c": (d["Hd"],), "memory": (d["N"], d["row"]), "read": (d["R"],),
                "read_weights": (d["H"], d["N"]), "usage": (d["N"],), "keys": (d["H"], d["W"])}

    def _check_state_inputs(self) -> None:
        """The graph's state inputs against the model config, before the library is built for that config."""
        expected = self._state_expected()
        for spec in self.inputs:
            if spec.name in expected and tuple(spec.shape[1:]) != expected[spec.name]:
                raise EdgemetaError(f"{self.path}: state input {spec.name!r} has shape {list(spec.shape[1:])}; its model "
                                    f"config says {list(expected[spec.name])}: re-export the learner")

    @property
    def device(self) -> str:
        return "cpu"

    def describe(self) -> str:
        weights = f"int8 weights x 14-bit activations, exact int32 sums, {self.kernel} kernel" if self.precision == "int8" \
            else "float32"
        source = "" if self.weights_path == self.path else f", weights from {self.weights_path.name}"
        cpu = next((f for f in self._flags if "native" in f), "generic CPU")
        return f"native C step ({weights}{source}), 1 thread, {cpu}"

    # --- buffers ---------------------------------------------------------------------------
    def bind(self, state_shapes: dict, num_classes: int, input_size: int, has_novelty: bool, channels: int = 1) -> None:
        d, cfg, b = self.dims, self.cfg, self.batch
        if channels != 1:
            raise EdgemetaError(f"{self.path}: takes {channels}-channel (RGB) images; the native C step runs MANN "
                                "learners on 1-channel ink maps only; use backend='ort'")
        expected = self._state_expected()
        if {k: tuple(v) for k, v in state_shapes.items()} != expected or num_classes != d["C"] \
                or input_size ** 2 != d["F"] or has_novelty != bool(cfg["novelty"]):
            raise EdgemetaError(f"{self.path}: the graph's state {dict(state_shapes)} does not match its model config "
                                f"({expected}); re-export the learner")
        self.state_names = list(state_shapes)
        self.image = aligned_zeros((b, 1, input_size, input_size))
        self.prev_label = aligned_zeros((b, num_classes))
        self.logits = aligned_zeros((b, num_classes))
        self.novelty = aligned_zeros((b, 1)) if has_novelty else None
        self._host_sets = [{n: aligned_zeros((b, *s)) for n, s in state_shapes.items()} for _ in range(2)]
        wt = self._weights
        self._args = []
        for k in range(2):
            a = MannArgs(batch=b, F=d["F"], C=d["C"], Hd=d["Hd"], N=d["N"], W=d["W"], H=d["H"], row=d["row"],
                         has_novelty=int(has_novelty),
                         int8=int(self.precision == "int8"), K=d["K"], Gp=d["Gp"], Pp=d["Pp"], Op=d["Op"],
                         gamma=float(cfg["gamma"]))
            for name, arr in wt.items():
                setattr(a, name, arr.ctypes.data)
            a.image, a.prev_label, a.logits = self.image.ctypes.data, self.prev_label.ctypes.data, self.logits.ctypes.data
            a.novelty = self.novelty.ctypes.data if self.novelty is not None else None
            for n in STATE:
                if n in state_shapes:
                    setattr(a, n, self._host_sets[k][n].ctypes.data)
                    setattr(a, f"{n}_out", self._host_sets[1 - k][n].ctypes.data)
            self._args.append(a)
        self._scratch = aligned_zeros((int(self._lib.mann_scratch_bytes(ctypes.addressof(self._args[0]))),), np.uint8)
        for a in self._args:
            a.scratch = self._scratch.ctypes.data
        self._arg_ptrs = [ctypes.addressof(a) for a in self._args]
        self._committed = 0
        if self._step(self._arg_ptrs[0]) != 0:  # dims the kernel refuses; a zero step otherwise
            raise EdgemetaError(f"backend 'native' cannot run {self.path}'s dimensions ({d}); use backend='ort'")
        self.reset()

    # --- one step --------------------------------------------------------------------------
    def run(self) -> None:
        """One step from the committed state into the scratch state and the logits (novelty)."""
        self._step(self._arg_ptrs[self._committed])

    def commit(self, rows=None) -> None:
        if rows is None:
            self._committed ^= 1
            return
        new, old = self._host_sets[1 - self._committed], self._host_sets[self._committed]
        for n in self.state_names:
            old[n][rows] = new[n][rows]

    # --- state -----------------------------------------------------------------------------
    def read_state(self) -> dict[str, np.ndarray]:
        return {n: a.copy() for n, a in self._host_sets[self._committed].items()}

    def write_state(self, state: dict[str, np.ndarray]) -> None:
        for n in self.state_names:
            np.copyto(self._host_sets[self._committed][n], np.asarray(state[n], dtype=np.float32))

    def reset(self) -> None:
        for a in self._host_sets[self._committed].values():
            a.fill(0.0)

    def close(self) -> None:
        self._args = []
        self._arg_ptrs = []
        self._host_sets = None
        self._step = None
