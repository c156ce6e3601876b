"""Bad input refused: one table, every case a one-line `error:` and a non-zero exit through the CLI, or,
where no command reads that input (frames, labels), the clear exception through the API.

Every case also checks that nothing smuggled into a file ran (the pickle payloads would create a marker
file) and that the file that was refused is left exactly as it was. docs/reliability.md lists the cases.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
from runtime_toy import toy_learner, toy_metadata

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.runtime import Learner
from edgemeta.runtime.camera.frames import FrameError, frame_to_input

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(arch="mann", image_size=12, num_classes=3, controller=32, memory_slots=16, memory_width=8, read_heads=2)


class Smuggled:
    """A pickle payload: unpickling it calls open(marker, "w"), creating the marker file. Loading any
    file that carries one must refuse it before that call can happen."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Valid files to break: a toy learner, its state, a small checkpoint, a folder of frames."""
    import torch

    from edgemeta.training.checkpoint import save_checkpoint
    from edgemeta.models import ModelConfig, build_learner

    root = tmp_path_factory.mktemp("bad_input")
    toy = toy_learner(root / "toy.onnx")
    with Learner.load(toy) as learner:
        learner.teach(np.ones((8, 8), np.float32), 1)
        learner.save_state(root / "state.npz")
    torch.manual_seed(0)
    cfg = ModelConfig(**SMALL)
    ckpt = {"task": "omniglot", "model_config": cfg.to_dict(), "train_config": {},
            "model": build_learner(cfg).state_dict(), "step": 3, "metrics": {}}
    save_checkpoint(root / "ckpt.pt", ckpt)
    frames = root / "frames"
    frames.mkdir()
    page = np.full((240, 320, 3), 225, np.uint8)
    cv2.circle(page, (160, 120), 35, (20, 20, 20), 7)
    cv2.imwrite(str(frames / "f0.png"), page)
    return dict(root=root, toy=toy, state=root / "state.npz", ckpt=root / "ckpt.pt", ckpt_payload=ckpt, frames=frames,
                page=page)


class World:
    """One case's scratch folder, the shared files, and what must not change."""

    def __init__(self, tmp: Path, shared: dict):
        self.tmp, self.s = tmp, shared
        self.toy, self.frames = str(shared["toy"]), str(shared["frames"])
        self.marker = tmp / "SMUGGLED_CODE_RAN"
        self.kept: dict[Path, bytes] = {}

    def file(self, name: str, data: bytes | str) -> str:
        """A bad file in the scratch folder; it must be unchanged after the case."""
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self.kept[path] = path.read_bytes()
        return str(path)

    def keep(self, path) -> str:
        self.kept[Path(path)] = Path(path).read_bytes()
        return str(path)

    # --- makers of bad files ---
    def checkpoint(self, name: str, **changes) -> str:
        from edgemeta.training.checkpoint import save_checkpoint

        payload = {k: v for k, v in {**self.s["ckpt_payload"], **changes}.items() if v is not DROP}
        save_checkpoint(self.tmp / name, payload)
        return self.keep(self.tmp / name)

    def torch_file(self, name: str, obj) -> str:
        import torch

        (self.tmp / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, self.tmp / name)
        return self.keep(self.tmp / name)

    def onnx(self, name: str, **breakage) -> str:
        return self.keep(toy_learner(self.tmp / name, **breakage))

    def state(self, name: str, header: dict | None = None, **arrays) -> str:
        """The shared state file with some arrays (or header fields) replaced."""
        with np.load(self.s["state"], allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if header:
            data["header"] = np.array(json.dumps({**json.loads(str(data["header"])), **header}))
        data.update({k.replace("__", "."): v for k, v in arrays.items()})
        with open(self.tmp / name, "wb") as f:
            np.savez(f, **data)
        return self.keep(self.tmp / name)

    def state_of(self, model: str, name: str, batch: int = 1) -> str:
        with Learner.load(model, batch=batch) as learner:
            learner.save_state(self.tmp / name)
        return self.keep(self.tmp / name)

    def profile(self, name: str, old: str, new: str) -> str:
        text = (REPO / "devices" / "boards" / "x86-cpu.toml").read_text().replace('"x86-cpu"', '"mine"')
        assert old in text, old
        return self.file(name, text.replace(old, new, 1))

    def zip(self, name: str, entries: dict) -> str:
        (self.tmp / "data").mkdir(exist_ok=True)
        with zipfile.ZipFile(self.tmp / "data" / name, "w") as z:
            for entry, data in entries.items():
                z.writestr(entry, data)
        return str(self.tmp / "data")

    def demo(self, *args: str) -> list[str]:
        return ["demo", "--model", self.toy, "--source", self.frames, "--headless", *args]

    def learner(self, batch: int = 1) -> Learner:
        return Learner.load(self.toy, batch=batch)


DROP = object()  # a checkpoint key to leave out


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    make: Callable[[World], object]  # -> CLI argv (list), or a zero-argument API call
    message: str  # must appear in the one-line error
    error: type = EdgemetaError  # API cases: the exception class


def ink(shape, value=0.1):
    return np.full(shape, value, np.float32)


def _teach(w: World, label, batch: int = 1):
    def call():
        with w.learner(batch) as learner:
            try:
                learner.teach(ink((batch, 1, 8, 8)), label)
            finally:
                assert np.all(np.asarray(learner.num_taught) == 0)  # refused before anything was committed
    return call


def _with_learner(w: World, method: str, image):
    def call():
        with w.learner() as learner:
            getattr(learner, method)(image) if method == "predict" else learner.teach(image, 0)
    return call


def _demo_core(w: World, frame, teach=None):
    def call():
        from edgemeta.runtime.demo.core import DemoCore

        with w.learner() as learner:
            DemoCore(learner).process(frame, 0, teach=teach)
    return call


def _events(w: World, text: bytes | str) -> list[str]:
    return w.demo("--script", w.file("EVENTS.csv", text))


CASES = [
    # --- checkpoints: `edgemeta export`, `eval`, `bench --backend torch`, `train --resume` ---
    Case("checkpoint", "random bytes", lambda w: ["export", w.file("junk.pt", bytes(range(256)) * 4), "--out", str(w.tmp / "o")],
         "is not a readable edgemeta checkpoint (not a file written by torch.save)"),
    Case("checkpoint", "empty file", lambda w: ["export", w.file("empty.pt", b""), "--out", str(w.tmp / "o")],
         "is not a readable edgemeta checkpoint"),
    Case("checkpoint", "truncated", lambda w: ["eval", w.file("cut.pt", w.s["ckpt"].read_bytes()[:3000])],
         "is not a readable edgemeta checkpoint"),
    Case("checkpoint", "an ONNX file passed as a checkpoint", lambda w: ["export", w.toy, "--out", str(w.tmp / "o")],
         "is already exported; add --trt to build a TensorRT engine from it"),
    Case("checkpoint", "foreign: a plain PyTorch state dict",
         lambda w: ["export", w.torch_file("weights.pt", {"w": np.zeros(3).tolist()}), "--out", str(w.tmp / "o")],
         "is not an edgemeta checkpoint (no 'edgemeta-checkpoint' marker)"),
    Case("checkpoint", "a newer checkpoint format", lambda w: ["export", w.checkpoint("v2.pt", format=2), "--out", str(w.tmp / "o")],
         "has checkpoint format 2; this edgemeta reads format 1"),
    Case("checkpoint", "weights missing", lambda w: ["eval", w.checkpoint("noweights.pt", model=DROP)],
         "is missing 'model'; the checkpoint is damaged"),
    Case("checkpoint", "config does not match the weights (export)",
         lambda w: ["export", w.checkpoint("mismatch.pt", model_config={**SMALL, "controller": 64}), "--out", str(w.tmp / "o")],
         "weights do not match its model config"),
    Case("checkpoint", "config does not match the weights (eval)",
         lambda w: ["eval", w.checkpoint("mismatch.pt", model_config={**SMALL, "read_heads": 4})],
         "weights do not match its model config"),
    Case("checkpoint", "weights are not a state dict",
         lambda w: ["bench", w.checkpoint("notweights.pt", model=[1, 2, 3]), "--backend", "torch"],
         "weights do not match its model config"),
    Case("checkpoint", "config with an unknown key",
         lambda w: ["bench", w.checkpoint("unknown.pt", model_config={**SMALL, "wings": 2}), "--backend", "torch"],
         "model config has unknown key wings; valid: arch,"),
    Case("checkpoint", "config value of the wrong type",
         lambda w: ["eval", w.checkpoint("typed.pt", model_config={**SMALL, "controller": "big"})],
         "its model config is damaged (ValueError"),
    Case("checkpoint", "config that is not a mapping",
         lambda w: ["bench", w.checkpoint("listcfg.pt", model_config=[1, 2]), "--backend", "torch"],
         "its model config is damaged (a list, not a mapping)"),
    Case("checkpoint", "pickled code in a checkpoint (export)",
         lambda w: ["export", w.torch_file("evil.pt", {**w.s["ckpt_payload"], "kind": "edgemeta-checkpoint", "format": 1,
                                                       "extra": Smuggled(w.marker)}), "--out", str(w.tmp / "o")],
         "holds Python objects besides tensors and plain data (io.open); refused unloaded"),
    Case("checkpoint", "pickled code in last.pt of a run resumed by `train --resume`",
         lambda w: ["train", "--out", str(Path(w.torch_file("run/last.pt", Smuggled(w.marker))).parent), "--resume",
                    "--episodes", "1"],
         "holds Python objects besides tensors and plain data"),
    Case("checkpoint", "a run directory without a checkpoint",
         lambda w: ["export", str(Path(w.file("emptyrun/notes.txt", "x")).parent), "--out", str(w.tmp / "o")],
         "holds no checkpoint (best.pt or last.pt)"),

    # --- learner files (ONNX) against the contract: `edgemeta bench`, `demo --model` ---
    Case("onnx", "random bytes", lambda w: ["bench", w.file("junk.onnx", bytes(range(256)) * 4)],
         "is not a loadable ONNX learner"),
    Case("onnx", "truncated", lambda w: ["bench", w.file("cut.onnx", Path(w.toy).read_bytes()[:200])],
         "is not a loadable ONNX learner"),
    Case("onnx", "a checkpoint passed as a learner", lambda w: ["demo", "--model", str(w.s["ckpt"]), "--source", w.frames,
                                                                "--headless"],
         "is not a loadable ONNX learner"),
    Case("onnx", "a state input missing", lambda w: ["bench", w.onnx("noink.onnx", drop_input="ink")],
         "missing input 'ink' (the contract's inputs are image, prev_label, count, ink)"),
    Case("onnx", "a state output missing", lambda w: ["bench", w.onnx("noinkout.onnx", names={"ink_out": "ink_next"})],
         "missing output 'ink_out'"),
    Case("onnx", "a state shape other than the metadata says",
         lambda w: ["bench", w.onnx("shape.onnx", metadata=toy_metadata(state=[{"name": "count", "shape": [3]},
                                                                               {"name": "ink", "shape": [2]}]))],
         "input 'ink': got shape [B, 1]; expected [B, 2]"),
    Case("onnx", "an image of the wrong size",
         lambda w: ["demo", "--model", w.onnx("img.onnx", shapes={"image": ["batch", 1, 9, 8]}), "--source", w.frames, "--headless"],
         "input 'image': got shape [B, 1, 9, 8]; expected [B, 1, 8, 8]"),
    Case("onnx", "float64 inputs", lambda w: ["bench", w.onnx("f64.onnx", dtype="float64")],
         "input 'image': got dtype float64; expected float32"),
    Case("onnx", "no edgemeta metadata", lambda w: ["bench", w.onnx("nometa.onnx", metadata=None)],
         "has no 'edgemeta' metadata; it was not written by `edgemeta export`"),
    Case("onnx", "metadata that is not JSON", lambda w: ["bench", w.onnx("badmeta.onnx", metadata="{oops")],
         "'edgemeta' metadata is not valid JSON"),
    Case("onnx", "a newer contract format", lambda w: ["bench", w.onnx("v2.onnx", metadata=toy_metadata(format=2))],
         "has contract format 2; this runtime reads format 1"),
    Case("onnx", "a quadratic-task learner given to the image runtime",
         lambda w: ["bench", w.onnx("quad.onnx", metadata=toy_metadata(task="quadratic"))],
         "is a 'quadratic' learner"),
    Case("onnx", "a fixed batch other than asked for", lambda w: ["bench", w.onnx("b4.onnx", batch=4)],
         "this graph has a fixed batch of 4; load it with batch=4"),

    # --- saved state files: `edgemeta demo --state` (the refused file must survive the run) ---
    Case("state", "from another model",
         lambda w: w.demo("--state", w.state_of(w.onnx("other.onnx", metadata=toy_metadata(model_id="0123456789abcdef")), "o.npz")),
         "was saved by model 0123456789abcdef (toy); this learner is model toy0000000000000"),
    Case("state", "from another batch size", lambda w: w.demo("--state", w.state_of(w.toy, "b2.npz", batch=2)),
         "holds 2 stream(s); this learner runs 1"),
    Case("state", "tampered shape", lambda w: w.demo("--state", w.state("shape.npz", state__count=np.zeros((1, 4), np.float32))),
         "state 'count' has shape [1, 4]; expected [1, 3]"),
    Case("state", "tampered dtype", lambda w: w.demo("--state", w.state("dtype.npz", state__ink=np.zeros((1, 1)))),
         "state 'ink' has dtype float64; expected float32"),
    Case("state", "NaN in the state", lambda w: w.demo("--state", w.state("nan.npz", state__ink=np.full((1, 1), np.nan, np.float32))),
         "state 'ink' holds NaN or infinite values"),
    Case("state", "pending label out of range", lambda w: w.demo("--state", w.state("pending.npz", pending=np.array([9]))),
         "pending label out of range [-1, 3)"),
    Case("state", "a newer state format", lambda w: w.demo("--state", w.state("v2.npz", header={"format": 2})),
         "has state format 2; this runtime reads format 1"),
    Case("state", "pickled code in an object array",
         lambda w: w.demo("--state", w.state("evil.npz", payload=np.array([Smuggled(w.marker)], dtype=object))),
         "unknown member 'payload.npy'"),  # refused from the archive's headers: nothing unpickled
    Case("state", "truncated", lambda w: w.demo("--state", w.file("cut.npz", w.s["state"].read_bytes()[:300])),
         "is not an edgemeta state file"),
    Case("state", "not an archive", lambda w: w.demo("--state", w.file("text.npz", "hello")),
         "is not an edgemeta state file (not an .npz archive)"),
    Case("state", "foreign .npz (no header)", lambda w: w.demo("--state", _foreign_npz(w)), "unknown member 'weights.npy'"),
    Case("state", "a state name that is not a string",
         lambda w: w.demo("--state", w.state("names.npz", header={"state_names": [1]})), "is damaged"),

    # --- frames: no command takes frames from a user directly, so through the API ---
    Case("frame", "NaN in a float frame", lambda w: lambda: frame_to_input(np.full((240, 320, 3), np.nan, np.float32), 8),
         "frame holds NaN or infinite values", FrameError),
    Case("frame", "+inf in a float frame", lambda w: lambda: frame_to_input(np.full((240, 320), np.inf, np.float32), 8),
         "frame holds NaN or infinite values", FrameError),
    Case("frame", "two channels", lambda w: lambda: frame_to_input(np.zeros((240, 320, 2), np.uint8), 8),
         "got shape (240, 320, 2); expected (H, W, 3) BGR", FrameError),
    Case("frame", "not an array", lambda w: lambda: frame_to_input([[0, 1], [2, 3]], 8), "frame must be a numpy array", FrameError),
    Case("frame", "NaN frame in the demo loop", lambda w: _demo_core(w, np.full((240, 320, 3), np.nan, np.float32)),
         "frame holds NaN or infinite values", FrameError),
    Case("frame", "learner image with +inf", lambda w: _with_learner(w, "predict", np.full((8, 8), np.inf, np.float32)),
         "image holds NaN"),
    Case("frame", "learner image with NaN, taught", lambda w: _with_learner(w, "teach", np.full((8, 8), np.nan, np.float32)),
         "image holds NaN"),
    Case("frame", "learner image of the wrong shape", lambda w: _with_learner(w, "predict", ink((9, 8))),
         "image: got shape (9, 8); expected (8, 8)"),
    Case("frame", "a raw camera frame given to the learner", lambda w: _with_learner(w, "predict", w.s["page"]),
         "image: dtype uint8; expected a float ink map"),

    # --- labels ---
    Case("label", "teach label = C", lambda w: _teach(w, 3), "label 3 is out of range: this learner has 3 classes"),
    Case("label", "teach a negative label", lambda w: _teach(w, -1), "label -1 is out of range"),
    Case("label", "one stream's label >= C", lambda w: _teach(w, np.array([0, 7]), batch=2), "out of range"),
    Case("label", "demo class >= C", lambda w: _demo_core(w, w.s["page"], teach=5),
         "class 5 is out of range for this model's 3 classes (valid: 0-2)"),
    Case("label", "events file label >= C", lambda w: _events(w, "frame,label\n0,3\n"),
         "EVENTS.csv:2: label 3 is out of range for this model's 3 classes"),

    # --- events files: `edgemeta demo --headless --script` ---
    Case("events", "no header", lambda w: _events(w, "0,1\n"), "EVENTS.csv:1: expected the header 'frame,label'"),
    Case("events", "not integers", lambda w: _events(w, "frame,label\n0,one\n"), "EVENTS.csv:2: expected 'FRAME,LABEL'"),
    Case("events", "three columns", lambda w: _events(w, "frame,label\n0,1,2\n"), "EVENTS.csv:2: expected 'FRAME,LABEL'"),
    Case("events", "a frame taught twice", lambda w: _events(w, "frame,label\n4,1\n4,2\n"), "EVENTS.csv:3: frame 4 is taught twice"),
    Case("events", "negative frame", lambda w: _events(w, "frame,label\n-2,1\n"), "frame -2 is negative"),
    Case("events", "empty file", lambda w: _events(w, ""), "empty events file"),
    Case("events", "not UTF-8", lambda w: _events(w, b"frame,label\n\xff\xfe,1\n"), "cannot read events file"),
    Case("events", "missing file", lambda w: w.demo("--script", str(w.tmp / "absent.csv")), "absent.csv does not exist"),

    # --- device profiles: `edgemeta devices`, `demo --device`, `doctor --device` ---
    Case("profile", "not TOML", lambda w: ["devices", w.profile("p.toml", "[camera]", "[camera")], "not valid TOML"),
    Case("profile", "an unknown key", lambda w: w.demo("--device", w.profile("p.toml", "threads = 1", "threads = 1\ncores = 4")),
         "unknown key 'runtime.cores'"),
    Case("profile", "a value of the wrong type", lambda w: ["doctor", "--device", w.profile("p.toml", "threads = 1", 'threads = "two"')],
         "'runtime.threads' must be an integer"),
    Case("profile", "a required key missing", lambda w: ["devices", w.profile("p.toml", 'uri = "/dev/video0"\n', "")],
         "missing required key 'camera.uri'"),
    Case("profile", "a newer schema", lambda w: ["devices", w.profile("p.toml", "schema = 1", "schema = 3")],
         "this edgemeta reads schema 1"),
    Case("profile", "providers without the CPU last resort",
         lambda w: ["devices", w.profile("p.toml", '"CPUExecutionProvider"', '"FPGAExecutionProvider"')],
         "'runtime.providers' must end with CPUExecutionProvider"),
    Case("profile", "an unknown profile name", lambda w: w.demo("--device", "toaster-3000"), "unknown device profile 'toaster-3000'"),

    # --- video source URIs: `edgemeta demo --source` ---
    Case("uri", "ftp://", lambda w: w.demo()[:4] + ["ftp://host/clip.mp4", "--headless"], "unknown video source scheme 'ftp://'"),
    Case("uri", "webcam://", lambda w: w.demo()[:4] + ["webcam://0", "--headless"], "unknown video source scheme 'webcam://'"),
    Case("uri", "v4l2:// without a device", lambda w: w.demo()[:4] + ["v4l2://front", "--headless"],
         "expected v4l2:///dev/videoN or v4l2://N"),
    Case("uri", "csi:// without a sensor number", lambda w: w.demo()[:4] + ["csi://front", "--headless"], "expected csi://N"),
    Case("uri", "an unknown synthetic generator", lambda w: w.demo()[:4] + ["synthetic://mnist", "--headless"],
         "unknown synthetic generator 'mnist'"),
    Case("uri", "a missing file", lambda w: w.demo()[:4] + [str(w.tmp / "nope.mp4"), "--headless"], "nope.mp4 does not exist"),
    Case("uri", "a file that is not a video", lambda w: w.demo()[:4] + [w.file("clip.mp4", b"not a video" * 50), "--headless"],
         "not a video OpenCV can decode"),

    # --- dataset directories: `edgemeta data check`, `train --data` ---
    Case("dataset", "directory missing", lambda w: ["data", "check", str(w.tmp / "omniglot")], "omniglot does not exist"),
    Case("dataset", "no Omniglot in it", lambda w: ["data", "check", str(Path(w.file("omniglot/readme.txt", "x")).parent)],
         "images_background.zip (or folder images_background/) not found"),
    Case("dataset", "zips that are not zips", lambda w: ["data", "check", _two(w, b"<html>404</html>")], "is not a valid zip"),
    Case("dataset", "a zip with another layout",
         lambda w: ["data", "check", _zips(w, {"Alphabet/character01/0001_01.png": b""})],
         "unexpected entry 'Alphabet/character01/0001_01.png'; expected images_background/<Alphabet>/<character>/*.png"),
    Case("dataset", "folders unzipped one level too deep", lambda w: ["data", "check", _nested(w)],
         "images_background: found 0 characters, expected 964"),
    Case("dataset", "`train --data` with the wrong layout",
         lambda w: ["train", "--data", _nested(w), "--out", str(w.tmp / "run"), "--episodes", "1"],
         "found 0 characters, expected 964"),
]


def _foreign_npz(w: World) -> str:
    with open(w.tmp / "foreign.npz", "wb") as f:
        np.savez(f, weights=np.zeros(3))
    return w.keep(w.tmp / "foreign.npz")


def _two(w: World, data: bytes) -> str:
    for name in ("images_background", "images_evaluation"):
        w.file(f"data/{name}.zip", data)
    return str(w.tmp / "data")


def _zips(w: World, background: dict) -> str:
    w.zip("images_evaluation.zip", {"images_evaluation/Alphabet/character01/0001_01.png": b""})
    return w.zip("images_background.zip", background)


def _nested(w: World) -> str:
    for name in ("images_background", "images_evaluation"):  # DIR/images_background/images_background/Alphabet/...
        w.file(f"omniglot/{name}/{name}/Alphabet/character01/0001_01.png", b"")
    return str(w.tmp / "omniglot")


def _case(entry) -> Case:
    return entry.values[0] if hasattr(entry, "values") else entry  # a pytest.param (known bug) or a Case


@pytest.mark.parametrize("case", CASES, ids=[f"{_case(c).group}: {_case(c).name}" for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, shared, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    w = World(tmp_path, shared)
    target = case.make(w)
    if isinstance(target, list):
        capsys.readouterr()
        code = main(target)
        err = capsys.readouterr().err.strip()
        assert code != 0, err
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
        assert case.message in err, err
    else:
        with pytest.raises(case.error) as e:
            target()
        assert isinstance(e.value, EdgemetaError) and "\n" not in str(e.value)
        assert case.message in str(e.value), str(e.value)
    assert not w.marker.exists(), "code smuggled into a file ran"
    for path, data in w.kept.items():
        assert path.read_bytes() == data, f"{path} was changed"


def test_the_smuggled_payload_would_run_if_unpickled(tmp_path):
    """The pickle cases prove something only if their payload really runs when unpickled without safeguards."""
    import pickle

    pickle.loads(pickle.dumps(Smuggled(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


def test_the_table_is_what_the_docs_count():
    doc = (REPO / "docs" / "reliability.md").read_text()
    assert f"**{len(CASES)} cases**" in doc
    for entry in CASES:
        case = _case(entry)
        assert f"| {case.group} | {case.name} |" in doc, case.name
