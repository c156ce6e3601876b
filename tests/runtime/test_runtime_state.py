"""Saved learner state: a faithful round trip, atomic writes, and refusal of anything that is not ours."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from runtime_toy import toy_learner, toy_metadata

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner, RuntimeStateError
from edgemeta.runtime import state_file


def taught(path, batch: int = 1, seed: int = 0) -> Learner:
    learner = Learner.load(path, batch=batch)
    rng = np.random.default_rng(seed)
    s = learner.input_size
    for t in range(4):
        image = (rng.random((batch, 1, s, s)) < 0.2).astype(np.float32)
        learner.teach(image, np.arange(batch) % 3 if batch > 1 else t % 3)
    return learner


@pytest.fixture
def toy(tmp_path):
    return toy_learner(tmp_path / "toy.onnx")


def test_round_trip_restores_everything(tiny_onnx, tmp_path):
    path = tmp_path / "state.npz"
    with taught(tiny_onnx) as a:
        a.class_names = ["ka", None, "ma"]
        a.save_state(path)
        probe = (np.random.default_rng(9).random((12, 12)) < 0.2).astype(np.float32)
        expected = a.predict(probe).logits
        with Learner.load(tiny_onnx) as b:
            b.teach(probe, 2)  # something to overwrite
            b.load_state(path)
            for name, value in a.state().items():
                np.testing.assert_array_equal(b.state()[name], value)
            assert b.counts.tolist() == a.counts.tolist() and b.num_taught == 4
            assert b.pending_label == a.pending_label == 0
            assert b.class_names == ["ka", None, "ma"]
            np.testing.assert_array_equal(b.predict(probe).logits, expected)


def test_round_trip_of_several_streams(toy, tmp_path):
    with taught(toy, batch=3) as a:
        a.save_state(tmp_path / "s.npz")
        with Learner.load(toy, batch=3) as b:
            b.load_state(tmp_path / "s.npz")
            assert b.counts.tolist() == a.counts.tolist() and b.num_taught.tolist() == [4, 4, 4]
        with Learner.load(toy, batch=2) as c, pytest.raises(RuntimeStateError, match="holds 3 stream"):
            c.load_state(tmp_path / "s.npz")


def test_file_is_plain_npz_without_pickle(toy, tmp_path):
    with taught(toy) as learner:
        learner.save_state(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:  # would raise on any object array
        header = json.loads(str(z["header"]))
        assert header["model_id"] == "toy0000000000000" and header["state_names"] == ["count", "ink"]
        assert z["state.count"].dtype == np.float32 and z["pending"].tolist() == [0]


def test_failed_save_keeps_the_old_file(toy, tmp_path, monkeypatch):
    path = tmp_path / "s.npz"
    with taught(toy) as learner:
        learner.save_state(path)
        old = path.read_bytes()
        learner.teach(np.ones((8, 8), np.float32), 1)

        def half_written(f, **arrays):
            f.write(b"PK\x03\x04 partial")
            raise RuntimeError("power cut")

        monkeypatch.setattr(state_file.np, "savez", half_written)
        with pytest.raises(RuntimeError, match="power cut"):
            learner.save_state(path)
        monkeypatch.undo()

        def refuse(*a):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", refuse)
        with pytest.raises(RuntimeStateError, match="No space left on device; the previous file was kept"):
            learner.save_state(path)
        monkeypatch.undo()
        assert path.read_bytes() == old
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "toy.onnx"]  # no temporary files left
        learner.load_state(path)
        assert learner.num_taught == 4


def test_process_killed_mid_save_leaves_the_old_file(toy, tmp_path):
    """A real crash: the process dies (os._exit) while the new file is half written."""
    path = tmp_path / "s.npz"
    with taught(toy) as learner:
        learner.save_state(path)
    old = path.read_bytes()
    script = f"""
import os, numpy as np
from edgemeta.runtime import Learner, state_file
learner = Learner.load({str(toy)!r})
learner.teach(np.ones((8, 8), np.float32), 2)
def die(f, **arrays):
    f.write(b"PK\\x03\\x04 half a file")
    f.flush()
    os._exit(9)
state_file.np.savez = die
learner.save_state({str(path)!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert path.read_bytes() == old
    with Learner.load(toy) as learner:
        learner.load_state(path)
        assert learner.num_taught == 4


def test_state_of_another_model_is_refused(toy, tmp_path):
    other = toy_learner(tmp_path / "other.onnx", metadata=toy_metadata(model_id="0123456789abcdef", name="other"))
    with taught(other) as learner:
        learner.save_state(tmp_path / "other.npz")
    with Learner.load(toy) as learner, pytest.raises(RuntimeStateError) as e:
        learner.load_state(tmp_path / "other.npz")
    assert "saved by model 0123456789abcdef (other)" in str(e.value) and "this learner is model toy0000000000000" in str(e.value)
    assert isinstance(e.value, EdgemetaError)


def rewrite(path, **changes):
    """Rewrite a saved state file with some arrays changed (a tampered file)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"state.count": np.zeros((1, 4), np.float32)}, r"state 'count' has shape \[1, 4\]; expected \[1, 3\]"),
    ({"state.ink": np.zeros((1, 1), np.float64)}, "dtype float64"),
    ({"state.ink": np.full((1, 1), np.nan, np.float32)}, "NaN"),
    ({"pending": np.array([7])}, "pending label out of range"),
    ({"pending": np.array([0.5])}, "expected integers"),
    ({"counts": np.zeros((1, 5), np.int64)}, r"'counts' has shape \[1, 5\]"),
    ({"counts": np.full((1, 3), -1, np.int64)}, "negative counts"),
    ({"header": np.array(json.dumps({"kind": "edgemeta-runtime-state", "format": 99}))}, "state format 99"),
    ({"header": np.array("not json")}, "no readable header"),
])
def test_tampered_files_are_refused(toy, tmp_path, changes, message):
    path = tmp_path / "s.npz"
    with taught(toy) as learner:
        learner.save_state(path)
        rewrite(path, **changes)
        before = learner.state()
        with pytest.raises(RuntimeStateError, match=message):
            learner.load_state(path)
        assert all(np.array_equal(before[k], v) for k, v in learner.state().items())  # nothing half-loaded


def test_missing_tensor_and_foreign_names_are_refused(toy, tmp_path):
    path = tmp_path / "s.npz"
    with taught(toy) as learner:
        learner.save_state(path)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "state.ink"}
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(RuntimeStateError, match="missing state.ink"):
            learner.load_state(path)
        header = json.loads(str(arrays["header"]))
        header["state_names"] = ["count", "memory"]
        rewrite(path, header=np.array(json.dumps(header)), **{"state.memory": np.zeros((1, 1), np.float32)})
        with pytest.raises(RuntimeStateError, match=r"holds state \['count', 'memory'\]"):
            learner.load_state(path)


def test_pickles_and_garbage_are_refused(toy, tmp_path):
    smuggled = tmp_path / "pickle.npz"
    with open(smuggled, "wb") as f:
        np.savez(f, header=np.array([{"kind": "edgemeta-runtime-state"}], dtype=object))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(256))
    truncated = tmp_path / "truncated.npz"
    with taught(toy) as learner:
        learner.save_state(truncated)
        truncated.write_bytes(truncated.read_bytes()[:100])
        foreign = tmp_path / "foreign.npz"
        with zipfile.ZipFile(foreign, "w") as z:
            z.writestr("readme.txt", "hello")
        for path, message in [(smuggled, "pickled objects"), (garbage, "not an edgemeta state file"),
                              (truncated, "not an edgemeta state file"), (foreign, "not an edgemeta state file"),
                              (tmp_path / "absent.npz", "does not exist")]:
            with pytest.raises(RuntimeStateError, match=message):
                learner.load_state(path)
        assert learner.num_taught == 4


def test_unwritable_destination_is_a_clear_error(toy, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be")
    with taught(toy) as learner, pytest.raises(RuntimeStateError, match="cannot write state file"):
        learner.save_state(blocker / "s.npz")
