"""Quadratic learner export: the contract's quadratic variant, metadata, episode parity, atomic output."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import edgemeta.quadratic as quadratic
from edgemeta import EdgemetaError
from edgemeta.training.checkpoint import load_checkpoint
from edgemeta.data.quadratic import sample_episodes
from edgemeta.export.onnx_export import model_id
from edgemeta.quadratic import (
    QuadraticConfig, episode_tensors, export_quadratic, learner_from_quadratic_checkpoint, train_quadratic,
)
from edgemeta.runtime import contract


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("quadratic-run")
    cfg = QuadraticConfig(episodes=32, batch_size=16, lr=1e-2, seed=0, device="cpu", steps=50, hidden=12,
                          val_every=2, val_episodes=20, eval_episodes=50)
    train_quadratic(cfg, run, progress=False, log=lambda *a: None)
    return load_checkpoint(run)


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "quadratic"
    return out, export_quadratic(ckpt, out)


def test_graph_follows_the_quadratic_contract(exported):
    out, _ = exported
    model = onnx.load(str(out / "learner.onnx"))
    assert [i.name for i in model.graph.input] == ["x", "prev_target", "h", "c"]
    assert [o.name for o in model.graph.output] == ["prediction", "h_out", "c_out"]
    assert model.opset_import[0].version == contract.OPSET == 17
    expected = {"x": 2, "prev_target": 1, "h": 12, "c": 12, "prediction": 1, "h_out": 12, "c_out": 12}
    for v in list(model.graph.input) + list(model.graph.output):
        t = v.type.tensor_type
        assert t.elem_type == onnx.TensorProto.FLOAT, v.name
        dims = t.shape.dim
        assert dims[0].dim_param == contract.BATCH_AXIS, v.name  # only the batch axis is dynamic
        assert len(dims) == 2 and dims[1].dim_value == expected[v.name], v.name
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"OneHot", "NonZero", "ScatterND", "Loop", "If", "TopK"}, ops


def test_metadata_carries_the_contract_keys(exported, ckpt):
    out, result = exported
    model = onnx.load(str(out / "learner.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props[contract.METADATA_KEY])
    assert set(contract.REQUIRED_METADATA) <= set(meta)
    assert meta == result["metadata"]
    assert (meta["task"], meta["name"], meta["num_classes"], meta["input_size"], meta["preprocess"]) == (
        "quadratic", "quadratic", 0, 2, "none")
    assert meta["state"] == [{"name": "h", "shape": [12]}, {"name": "c", "shape": [12]}]
    assert meta["episode_steps"] == 50 and meta["format"] == contract.FORMAT
    assert meta["model_id"] == model_id(learner_from_quadratic_checkpoint(ckpt))
    assert meta["config"]["model"]["hidden"] == 12 and meta["config"]["train"]["batch_size"] == 16
    assert len(meta["eval"]["nmse"]) == 50 and meta["eval"]["oracle"][10] < 1e-6


def test_parity_over_a_whole_episode_at_any_batch(exported, ckpt):
    out, result = exported
    assert result["parity"]["steps"] == 50 and result["parity"]["max_abs_diff"] <= 1e-4
    learner = learner_from_quadratic_checkpoint(ckpt)
    sess = ort.InferenceSession(str(out / "learner.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # batch sizes the export never traced
        ep = sample_episodes(batch, 50, np.random.default_rng(batch))
        x, prev, _ = episode_tensors(ep, "cpu")
        with torch.no_grad():
            want, want_state = learner.unroll(x, prev)
        state = {"h": np.zeros((batch, 12), np.float32), "c": np.zeros((batch, 12), np.float32)}
        got = []
        for t in range(50):
            pred, h, c = sess.run(None, {"x": ep.x[:, t], "prev_target": ep.prev_target[:, t, None], **state})
            got.append(pred)
            state = {"h": h, "c": c}
        np.testing.assert_allclose(np.stack(got, 1), want.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(state["c"], want_state["c"].numpy(), atol=1e-4, rtol=0)


def test_failed_parity_leaves_nothing_behind(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(quadratic, "PARITY_TOL", -1.0)  # no export can pass this
    with pytest.raises(EdgemetaError, match="parity"):
        export_quadratic(ckpt, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary folder

    old = tmp_path / "old"
    old.mkdir()
    (old / "learner.onnx").write_bytes(b"previous export")
    with pytest.raises(EdgemetaError, match="parity"):
        export_quadratic(ckpt, old)
    assert (old / "learner.onnx").read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_an_omniglot_checkpoint_is_refused(ckpt, tmp_path):
    with pytest.raises(EdgemetaError, match="not a quadratic"):
        export_quadratic({**ckpt, "task": "omniglot"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_edgemeta_export_command_exports_a_quadratic_run(ckpt, tmp_path, capsys):
    from edgemeta.cli import main

    out = tmp_path / "exports" / "quadratic"
    assert main(["export", ckpt["path"], "--out", str(out)]) == 0
    report = json.loads((out / contract.EXPORT_REPORT_FILE).read_text())
    assert report["metadata"]["task"] == "quadratic"
    assert report["parity"]["onnxruntime"]["max_abs_diff"] <= 1e-4
    sess = ort.InferenceSession(str(out / contract.ONNX_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x", "prev_target", "h", "c"]
