"""Issue 20, item 10: the other tracebacks the adversarial round got from user files (checkpoints, learners,
device profiles, URIs, load arguments), each now one line. Every test here failed before its fix;
docs/reliability.md lists them with the rest."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner


def _one_line_error(main, argv, capsys) -> str:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err[-2000:]
    return err


# --- a checkpoint whose config asks for gigabytes --------------------------------------------------------------

@pytest.fixture(scope="module")
def huge_checkpoint(tmp_path_factory):
    import torch

    from conftest import TINY_MODEL
    from toy_checkpoint import make_checkpoint

    from edgemeta.models import ModelConfig

    path = tmp_path_factory.mktemp("huge") / "huge.pt"
    make_checkpoint(path, ModelConfig(**TINY_MODEL))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["memory_slots"] = 10**9
    torch.save(ckpt, path)
    return path


def _limited(argv: list[str], gib: int = 3) -> subprocess.CompletedProcess:
    """`edgemeta ARGV` in a process that may use `gib` GiB of address space: what it would allocate shows."""
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({gib} << 30, {gib} << 30)); "
            "from edgemeta.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_checkpoint_asking_for_a_billion_memory_slots_is_refused_in_one_line(command, huge_checkpoint, tmp_path):
    argv = [command, str(huge_checkpoint)] + (["--out", str(tmp_path / "out")] if command == "export" else ["--episodes", "2"])
    proc = _limited(argv)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and err.startswith("error: ") and "\n" not in err, err[-2000:]
    assert "memory_slots 1000000000" in err and "GiB" in err
    assert not (tmp_path / "out").exists()


# --- an ONNX learner whose state output's shape depends on the data --------------------------------------------

def _data_shaped_learner(path: Path) -> Path:
    """The toy learner (tests/runtime_toy.py), but `ink_out` is [B, 1] for a blank image and [B, 2] for one
    with ink, while the graph declares [B, 1]."""
    import onnx
    from onnx import TensorProto, helper
    from runtime_toy import toy_metadata

    from edgemeta.runtime import contract

    c, s = 3, 8
    vi = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Add", ["count", "prev_label"], ["count_out"]),
        helper.make_node("ReduceSum", ["image", "axes"], ["ink_sum"], keepdims=0),
        helper.make_node("Unsqueeze", ["ink_sum", "one"], ["ink_col"]),
        helper.make_node("ReduceMax", ["image"], ["peak"], keepdims=0),
        helper.make_node("Ceil", ["peak"], ["peak_up"]),
        helper.make_node("Cast", ["peak_up"], ["peak_int"], to=TensorProto.INT64),
        helper.make_node("Add", ["peak_int", "one_scalar"], ["width"]),
        helper.make_node("Unsqueeze", ["width", "zero"], ["width_1"]),
        helper.make_node("Concat", ["one", "width_1"], ["shape"], axis=0),
        helper.make_node("Expand", ["ink_col", "shape"], ["ink_out"]),
        helper.make_node("Mul", ["count_out", "ten"], ["logits"]),
    ]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
             helper.make_tensor("one", TensorProto.INT64, [1], [1]),
             helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
             helper.make_tensor("one_scalar", TensorProto.INT64, [], [1]),
             helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0])]
    inputs = [vi("image", TensorProto.FLOAT, ["batch", 1, s, s]), vi("prev_label", TensorProto.FLOAT, ["batch", c]),
              vi("count", TensorProto.FLOAT, ["batch", c]), vi("ink", TensorProto.FLOAT, ["batch", 1])]
    outputs = [vi("logits", TensorProto.FLOAT, ["batch", c]), vi("count_out", TensorProto.FLOAT, ["batch", c]),
               vi("ink_out", TensorProto.FLOAT, ["batch", 1])]
    model = helper.make_model(helper.make_graph(nodes, "toy", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", contract.OPSET)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = contract.METADATA_KEY, json.dumps(toy_metadata(c, s))
    onnx.save(model, str(path))
    return path


def test_a_state_output_shaped_by_the_data_is_one_line_at_the_step(tmp_path):
    path = _data_shaped_learner(tmp_path / "shaped.onnx")
    with Learner.load(path, backend="ort") as learner:
        learner.teach(np.zeros((8, 8), np.float32), 0)  # a blank image keeps the declared shape
        before = learner.counts.copy()
        with pytest.raises(EdgemetaError, match="its step failed in ONNX Runtime") as e:
            learner.teach(np.ones((8, 8), np.float32), 1)
        assert "\n" not in str(e.value) and "re-export" in str(e.value)
        assert (learner.counts == before).all()  # the failed step taught nothing


# --- load arguments past any machine -----------------------------------------------------------------------------

def test_a_batch_past_the_machine_memory_is_one_line_before_allocating():
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from edgemeta.runtime import Learner; Learner.load('mann', batch=10**7)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert "MemoryError" not in proc.stderr, proc.stderr[-2000:]
    assert last.startswith("edgemeta.EdgemetaError: ") and "batch=10000000 needs" in last and "fewer streams" in last


def test_a_thread_count_past_any_machine_is_refused_as_such():
    with pytest.raises(EdgemetaError, match=r"threads=1000000000000 is more than any machine runs; use 1\.\.1024") as e:
        Learner.load("mann", threads=10**12)
    assert "not a loadable ONNX learner" not in str(e.value)


# --- a synthetic URI and a device profile ------------------------------------------------------------------------

def test_a_negative_synthetic_seed_is_one_line(capsys):
    from edgemeta.cli import main

    err = _one_line_error(main, ["demo", "--headless", "--source", "synthetic://omniglot?seed=-1", "--max-frames", "1"],
                          capsys)
    assert "seed=-1 is out of range" in err


def test_a_profile_nested_a_hundred_thousand_deep_is_one_line(tmp_path, capsys):
    from edgemeta.cli import main

    profile = tmp_path / "deep.toml"
    profile.write_text("a = " + "[" * 100_000 + "\n")
    err = _one_line_error(main, ["doctor", "--device", str(profile)], capsys)
    assert "nested too deeply" in err
