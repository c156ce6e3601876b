"""The deployment rewrite of the MANN step (export/mann_graph.py), the int8 variant (export/int8.py),
and evaluating an exported learner through ONNX Runtime (`edgemeta eval LEARNER.onnx`)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint
from edgemeta.cli import main
from edgemeta.export import parity as P
from edgemeta.export.checkpoint_export import checkpoint_metadata, export_checkpoint
from edgemeta.export.onnx_export import export_step
from edgemeta.models import ModelConfig, build_learner
from edgemeta.runtime import contract
from edgemeta.runtime.learner import Learner

PAPER_LIKE = ModelConfig(arch="mann", image_size=12, num_classes=3, controller=32, memory_slots=16, memory_width=8, read_heads=2)


@pytest.mark.parametrize("overrides", [
    {},
    {"encoder": "conv", "conv_channels": (4, 8), "embedding": 16, "novelty": True, "image_size": 16},
])
def test_mann_step_graph_has_fewer_nodes_and_computes_the_training_step(tmp_path, overrides):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**PAPER_LIKE.to_dict(), **overrides})
    learner = build_learner(cfg)
    meta = dict(name="t", task="omniglot", preprocess="p", config={}, eval={}, episode_steps=50)
    deployed = export_step(learner, tmp_path / "deployed.onnx", meta)
    traced = export_step(learner, tmp_path / "traced.onnx", meta, as_trained=True)
    assert len(onnx.load(deployed).graph.node) < len(onnx.load(traced).graph.node)
    inputs = P.episode_inputs(cfg.num_classes, cfg.image_size, 4, 50)
    reference = P.run_episodes(P.torch_step(learner), learner.state_shapes(), inputs)
    result = P.compare(reference, P.run_episodes(P.onnxruntime_step(deployed), learner.state_shapes(), inputs), P.FP32)
    assert result["passed"], result["failures"]


def test_int8_export_keeps_the_contract_and_most_predictions(tiny_run, tmp_path, data_dir, capsys):
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "out"), "--int8", "--data", str(data_dir)]) == 0
    assert "parity int8 onnxruntime (CPU)" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / contract.EXPORT_REPORT_FILE).read_text())["parity"]["onnx_int8"]
    assert report["passed"] and report["prediction_mismatches"] <= 0.05 * report["predictions"]
    int8_path, fp32_path = tmp_path / "out" / contract.ONNX_INT8_FILE, tmp_path / "out" / contract.ONNX_FILE
    model = onnx.load(int8_path)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[contract.METADATA_KEY])["precision"] == "int8"
    assert any(init.data_type == TensorProto.INT8 for init in model.graph.initializer)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in list(model.graph.input) + list(model.graph.output))
    assert int8_path.stat().st_size < 0.6 * fp32_path.stat().st_size
    # the runtime loads it like any learner: same state, and it runs the live protocol
    with Learner.load(int8_path, threads=1) as q, Learner.load(fp32_path, threads=1) as f:
        assert q.state_shapes == f.state_shapes and q.model_id == f.model_id
        image = np.zeros((1, 1, q.input_size, q.input_size), np.float32)
        image[..., 3:8, 4:6] = 1.0
        q.teach(image, 1)
        assert q.num_taught == 1 and q.predict(image).probs.shape == (1, q.num_classes)


def test_eval_of_an_exported_learner_matches_its_checkpoint(tiny_run, tmp_path, data_dir, capsys):
    ckpt = load_checkpoint(tiny_run / "last.pt")
    path = export_step(learner_from_checkpoint(ckpt), tmp_path / "learner.onnx", {**checkpoint_metadata(ckpt), "name": "tiny"})
    args = ["--data", str(data_dir), "--ways", "3", "--instances", "5", "--episodes", "60", "--no-plot"]
    assert main(["eval", str(tiny_run / "last.pt"), "--out", str(tmp_path / "torch"), *args]) == 0
    assert main(["eval", str(path), "--out", str(tmp_path / "onnx"), *args]) == 0
    torch_acc = json.loads((tmp_path / "torch" / "eval.json").read_text())["accuracy"]
    onnx_result = json.loads((tmp_path / "onnx" / "eval.json").read_text())
    assert onnx_result["accuracy"] == torch_acc  # same episodes, same function: the same table
    assert onnx_result["precision"] == "fp32" and torch_acc[-1] > 100 / 3 + 15  # and it learned


def test_eval_of_a_missing_learner_is_one_line(capsys):
    assert main(["eval", "no-such-learner"]) != 0
    err = capsys.readouterr().err
    assert "no shipped learner named 'no-such-learner'" in err and "Traceback" not in err


def test_bench_times_the_naive_loop_on_the_baseline_file(tiny_run, tmp_path, capsys):
    export_checkpoint(tiny_run, tmp_path / "out", int8=True, log=lambda s: None)
    int8_path, fp32_path = tmp_path / "out" / contract.ONNX_INT8_FILE, tmp_path / "out" / contract.ONNX_FILE
    assert main(["bench", str(int8_path), "--baseline", str(fp32_path), "--steps", "50", "--runs", "1",
                 "--json", str(tmp_path / "b.json")]) == 0
    assert f"naive session.run on {fp32_path.name}" in capsys.readouterr().out
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["baseline_path"] == str(fp32_path) and report["path"] == str(int8_path)
