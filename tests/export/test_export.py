"""`edgemeta export`: the exported step's contract, episode parity, TensorRT readiness, the fp16 variant.

Small untrained learners: the contract and parity do not depend on training, and they keep this fast.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from edgemeta.training.checkpoint import learner_from_checkpoint, load_checkpoint
from edgemeta.cli import main
from edgemeta.export import parity as P
from edgemeta.export.checkpoint_export import export_checkpoint
from edgemeta.export.fp16 import state_path_nodes, to_float16
from edgemeta.export.onnx_export import model_id
from edgemeta.export.trt_ready import check_model
from edgemeta.models import build_learner
from edgemeta.runtime import contract
from edgemeta.runtime.preprocess import PREPROCESS_ID
from toy_checkpoint import CONV, FLAT, make_checkpoint

@pytest.fixture(scope="module")
def exports(tmp_path_factory, monkeypatch_module):
    """Both small learners exported once through export_checkpoint (synthetic parity episodes)."""
    monkeypatch_module.delenv("EDGEMETA_DATA", raising=False)
    root = tmp_path_factory.mktemp("exports")
    make_checkpoint(root / "flat.pt", FLAT, metrics={"val": [30.0, 60.0]}, model="mann", ways=(3, 3), instances=20)
    (root / "conv").mkdir()
    make_checkpoint(root / "conv" / "best.pt", CONV, seed=1, model="default", ways=(2, 4), instances=None, episode_length=60)
    (root / "conv" / "eval.json").write_text(json.dumps({"ways": 4, "episodes": 10, "accuracy": [25.0, 80.0], "step": 0}))
    out = {}
    for name, ckpt in (("flat", root / "flat.pt"), ("conv", root / "conv")):
        lines = []
        report = export_checkpoint(ckpt, root / f"out-{name}", log=lines.append)
        out[name] = dict(report=report, dir=root / f"out-{name}", lines=lines,
                         learner=learner_from_checkpoint(load_checkpoint(ckpt)))
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("name", ["flat", "conv"])
def test_contract_names_dtypes_and_shapes(exports, name):
    learner, model = exports[name]["learner"], onnx.load(exports[name]["dir"] / contract.ONNX_FILE)
    states = learner.state_shapes()
    s, c = learner.cfg.image_size, learner.cfg.num_classes
    expected_in = {contract.IMAGE: (1, s, s), contract.PREV_LABEL: (c,), **states}
    expected_out = {contract.LOGITS: (c,), **{contract.state_out(n): shp for n, shp in states.items()}}
    if learner.cfg.novelty:
        expected_out[contract.NOVELTY] = (1,)
    for values, expected in ((model.graph.input, expected_in), (model.graph.output, expected_out)):
        assert [v.name for v in values] == list(expected)
        for v in values:
            t = v.type.tensor_type
            assert t.elem_type == TensorProto.FLOAT, v.name
            assert t.shape.dim[0].dim_param == contract.BATCH_AXIS, v.name  # only batch is dynamic
            assert tuple(d.dim_value for d in t.shape.dim[1:]) == tuple(expected[v.name]), v.name
    assert max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) == contract.OPSET


@pytest.mark.parametrize("batch", [1, 5])
def test_dynamic_batch_runs_and_matches_torch(exports, batch):
    """Batch 1 and 5 through ONNX Runtime, from a random (not fresh) state: outputs match the learner."""
    learner = exports["conv"]["learner"]
    session = ort.InferenceSession(str(exports["conv"]["dir"] / contract.ONNX_FILE), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(batch)
    feeds = {contract.IMAGE: rng.random((batch, 1, 16, 16), dtype=np.float32),
             contract.PREV_LABEL: np.eye(4, dtype=np.float32)[rng.integers(0, 4, batch)]}
    feeds.update({n: rng.random((batch, *shp), dtype=np.float32) for n, shp in learner.state_shapes().items()})
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    want = P.torch_step(learner)(feeds)
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name].shape == value.shape == (batch, *value.shape[1:])
        np.testing.assert_allclose(got[name], value, atol=1e-4, err_msg=name)


def test_metadata_keys_and_values(exports):
    for name, preset_name, steps, eval_table in (
        ("flat", "mann", 60, {"split": "validation", "accuracy": [30.0, 60.0], "step": 0}),
        ("conv", "default", 60, {"ways": 4, "episodes": 10, "accuracy": [25.0, 80.0], "step": 0}),
    ):
        learner = exports[name]["learner"]
        model = onnx.load(exports[name]["dir"] / contract.ONNX_FILE)
        meta = json.loads({p.key: p.value for p in model.metadata_props}[contract.METADATA_KEY])
        assert set(contract.REQUIRED_METADATA) <= set(meta)
        assert meta["format"] == contract.FORMAT and meta["task"] == "omniglot" and meta["name"] == preset_name
        assert (meta["num_classes"], meta["input_size"]) == (learner.cfg.num_classes, learner.cfg.image_size)
        assert meta["preprocess"] == PREPROCESS_ID
        assert meta["state"] == [{"name": n, "shape": list(s)} for n, s in learner.state_shapes().items()]
        assert meta["config"]["model"] == learner.cfg.to_dict() and meta["config"]["train"]["model"] == preset_name
        assert meta["eval"] == eval_table
        assert meta["episode_steps"] == steps
        assert meta["model_id"] == model_id(learner)
    assert exports["flat"]["report"]["metadata"]["model_id"] != exports["conv"]["report"]["metadata"]["model_id"]


def test_export_directory_holds_card_and_report(exports):
    d = exports["conv"]["dir"]
    assert sorted(p.name for p in d.iterdir()) == sorted([contract.ONNX_FILE, contract.MODEL_CARD_FILE, contract.EXPORT_REPORT_FILE])
    card = (d / contract.MODEL_CARD_FILE).read_text()
    assert "| `memory` | in | [B, 16, " in card and "| `novelty` | out | [B, 1] | float32 |" in card
    assert "| accuracy | 25.0 | 80.0 |" in card and "8 episodes x 60 steps" in card
    report = json.loads((d / contract.EXPORT_REPORT_FILE).read_text())
    assert report["files"][contract.ONNX_FILE]["bytes"] == (d / contract.ONNX_FILE).stat().st_size
    assert report["parity"]["onnxruntime"]["passed"] is True


def test_parity_over_whole_episodes(exports):
    for name in ("flat", "conv"):
        result = exports[name]["report"]["parity"]["onnxruntime"]
        assert result["steps"] >= P.MIN_STEPS and result["episodes"] >= P.MIN_BATCH
        assert result["logits_max_abs"] <= 1e-4 and result["prediction_mismatches"] == 0
        assert all(result["state_max_abs"][n] <= result["state_bound"][n] for n in result["state_max_abs"])
        assert any(line.startswith("parity onnxruntime (CPU) vs PyTorch") for line in exports[name]["lines"])
        carried = exports[name]["report"]["parity"]["onnxruntime_carried"]
        assert carried["passed"] and carried["steps"] == result["steps"]


def test_parity_check_catches_a_different_model(exports, tmp_path):
    """The same loop with another learner's weights behind the graph must fail, or the check proves nothing."""
    learner = exports["flat"]["learner"]
    torch.manual_seed(123)
    other = build_learner(FLAT).eval()
    inputs = P.episode_inputs(3, 12, 4, 50)
    reference = P.run_episodes(P.torch_step(other), other.state_shapes(), inputs)
    candidate = P.run_episodes(P.onnxruntime_step(exports["flat"]["dir"] / contract.ONNX_FILE), learner.state_shapes(), inputs)
    result = P.compare(reference, candidate, P.FP32)
    assert not result["passed"] and result["failures"]


def test_forced_parity_checks_each_step_where_carried_state_has_parted():
    """A least-used-slot near-tie can send two exact implementations' carried states apart for good:
    the strict gate feeds each step PyTorch's state (forced_by), so it checks the step itself; a
    different model still fails it."""
    learner = build_learner(FLAT).eval()
    inputs = P.episode_inputs(3, 12, 4, 50)
    shapes = learner.state_shapes()
    exact = P.torch_step(learner)
    calls = {"n": 0}

    def parted(feeds):  # computes the same step, but once writes its memory into other rows, as a flipped tie would
        out = dict(exact(feeds))
        calls["n"] += 1
        if calls["n"] == 10:
            name = contract.state_out("memory")
            out[name] = np.roll(out[name], 1, axis=1)
        return out

    reference = P.run_episodes(exact, shapes, inputs, record=True)
    assert len(reference.step_states) == 50 and not reference.step_states[0]["memory"].any()
    carried = P.compare(reference, P.run_episodes(parted, shapes, inputs), P.FP32)
    calls["n"] = 0
    forced = P.compare(reference, P.run_episodes(parted, shapes, inputs, forced_by=reference), P.FP32)
    assert not carried["passed"] and forced["passed"], (carried["failures"], forced["failures"])
    torch.manual_seed(123)
    other = build_learner(FLAT).eval()
    assert not P.compare(reference, P.run_episodes(P.torch_step(other), shapes, inputs, forced_by=reference), P.FP32)["passed"]


def test_episode_inputs_feed_the_previous_label():
    inputs = P.episode_inputs(num_classes=3, image_size=12, batch=4, steps=50)
    assert inputs.images.shape == (4, 50, 1, 12, 12) and inputs.images.dtype == np.float32
    assert not inputs.prev_label[:, 0].any()
    np.testing.assert_array_equal(inputs.prev_label[:, 1:].argmax(-1), inputs.labels[:, :-1])
    assert (inputs.prev_label.sum(-1)[:, 1:] == 1).all()
    assert set(np.unique(inputs.labels)) == {0, 1, 2}


def test_episode_inputs_use_real_omniglot_through_the_pinned_preprocessing(data_dir):
    inputs = P.episode_inputs(num_classes=3, image_size=12, batch=4, steps=50, data=data_dir)
    assert inputs.source.startswith("Omniglot")
    ink = inputs.images.mean()
    assert 0.02 < ink < 0.5  # ink = 1 on paper = 0: thin strokes, mostly paper


def test_readiness_ok_for_exported_learners(exports):
    for name in ("flat", "conv"):
        report = check_model(onnx.load(exports[name]["dir"] / contract.ONNX_FILE))
        assert report["ok"], report["problems"]
        assert "TopK" in report["ops"]
        assert "TensorRT 8.6+ readiness: ok" in exports[name]["lines"][0]


def _graph(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_readiness_reports_unsupported_ops():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [1])
    vals = helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", None])
    idx = helper.make_tensor_value_info("i", TensorProto.INT64, ["batch", None])
    nz = helper.make_tensor_value_info("nz", TensorProto.INT64, [2, None])
    model = _graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk_dynamic_k"),
         helper.make_node("NonZero", ["x"], ["nz"], name="nonzero")],
        [x, k], [vals, idx, nz])
    report = check_model(model)
    assert not report["ok"]
    text = "\n".join(report["problems"])
    assert "TopK (topk_dynamic_k): input K must be a constant" in text
    assert "NonZero (nonzero): data-dependent output shape" in text
    assert "graph output (nz)" in text  # a dynamic non-batch axis


def test_readiness_accepts_constant_k_and_flags_custom_ops_and_new_opsets():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", 2])
    i = helper.make_tensor_value_info("i", TensorProto.INT64, ["batch", 2])
    k = helper.make_tensor("k", TensorProto.INT64, [1], [2])
    ok = _graph([helper.make_node("TopK", ["x", "k"], ["v", "i"])], [x], [v, i], [k])
    assert check_model(ok)["ok"]
    custom = _graph([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], [x],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], opset=18)
    problems = check_model(custom)["problems"]
    assert any("opset 18" in p for p in problems) and any("com.microsoft.Gelu" in p for p in problems)


def test_fp16_variant_keeps_float32_io_and_reports_parity(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    make_checkpoint(tmp_path / "c.pt", CONV, seed=2, model="default", ways=(4, 4), instances=None, episode_length=50)
    assert main(["export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "out"), "--fp16"]) == 0
    assert "parity fp16 onnxruntime" in capsys.readouterr().out
    half = json.loads((tmp_path / "out" / contract.EXPORT_REPORT_FILE).read_text())["parity"]["onnx_fp16"]
    assert half["passed"] and half["precision"] in ("fp16", "fp16-front") and half["steps"] >= 50
    model = onnx.load(tmp_path / "out" / contract.ONNX_FP16_FILE)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in list(model.graph.input) + list(model.graph.output))
    assert any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer)
    assert json.loads(model.metadata_props[0].value)["precision"] == half["precision"]
    assert check_model(model)["ok"]


def test_fp16_front_keeps_the_state_path_in_float32(exports):
    model = onnx.load(exports["flat"]["dir"] / contract.ONNX_FILE)
    learner = exports["flat"]["learner"]
    keep = state_path_nodes(model, learner.state_names)
    topk = next(n.name for n in model.graph.node if n.op_type == "TopK")
    assert topk in keep  # the least-used slot choice must see float32 usages
    front = to_float16(model, keep)
    onnx.checker.check_model(front, full_check=True)
    inputs = P.episode_inputs(3, 12, 4, 50)
    reference = P.run_episodes(P.torch_step(learner), learner.state_shapes(), inputs)
    session_path = exports["flat"]["dir"].parent / "front.onnx"
    onnx.save(front, str(session_path))
    result = P.compare(reference, P.run_episodes(P.onnxruntime_step(session_path), learner.state_shapes(), inputs), P.FP16)
    assert result["passed"] and result["probabilities_max_abs"] < P.FP16.probabilities


def test_cli_export_prints_parity_and_writes_the_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    make_checkpoint(tmp_path / "run" / "last.pt", FLAT, model="mann", ways=(3, 3), instances=17)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")]) == 0
    out = capsys.readouterr().out
    assert "parity onnxruntime (CPU) vs PyTorch, 8 episodes x 51 steps" in out and ": ok" in out
    assert (tmp_path / "exp" / contract.ONNX_FILE).is_file()
    # a second export replaces the first as a whole
    make_checkpoint(tmp_path / "run" / "last.pt", FLAT, seed=5, model="mann", ways=(3, 3), instances=17)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")]) == 0
    meta = json.loads((tmp_path / "exp" / contract.EXPORT_REPORT_FILE).read_text())["metadata"]
    assert meta["model_id"] == model_id(learner_from_checkpoint(load_checkpoint(tmp_path / "run")))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging leftovers


def test_an_omniglot_learners_card_names_its_data_and_licence(tmp_path):
    """The model card of a learner trained on Omniglot says where the data came from and under which licence."""
    from edgemeta.export.checkpoint_export import OMNIGLOT_PROVENANCE

    make_checkpoint(tmp_path / "c.pt", FLAT, model="mann", ways=(3, 3), instances=5)
    export_checkpoint(tmp_path / "c.pt", tmp_path / "export", log=lambda line: None)
    card = (tmp_path / "export" / "README.md").read_text()
    assert "MIT (Copyright (c) 2015 Brenden Lake)" in card and OMNIGLOT_PROVENANCE[0]["what"] in card
