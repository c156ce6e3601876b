"""TensorRT-readiness beyond the graph's inputs and outputs: the types of initializers and intermediate
tensors (float64; INT64 that INT32 cannot hold), what each op takes, and the parser's opset limit for the
target's TensorRT version, taken from the device profile."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgemeta.devices.profiles import load_profile  # noqa: E402
from edgemeta.export.trt_ready import check_model, format_report, parser_max_opset  # noqa: E402
from edgemeta.runtime.learner import LEARNERS_DIR  # noqa: E402


def model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def info(name, elem, shape=("batch", 4)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def problems(m, tensorrt="8.6"):
    return "\n".join(check_model(m, tensorrt)["problems"])


def test_float64_initializers_and_intermediate_tensors_are_refused():
    weight = numpy_helper.from_array(np.ones((1, 4), np.float64), "w")
    m = model([helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.DOUBLE, name="to_double"),
               helper.make_node("Add", ["x64", "w"], ["s"], name="add"),
               helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT, name="back")],
              [info("x", TensorProto.FLOAT)], [info("y", TensorProto.FLOAT)], [weight])
    text = problems(m)
    assert "initializer (w): float64" in text
    assert "Cast (to_double): to DOUBLE: TensorRT cannot cast to it" in text
    assert "tensor (s): float64" in text  # found by shape inference: the graph's I/O are float32


def test_int64_beyond_int32_is_refused_before_tensorrt_10_except_slice_bounds():
    big = numpy_helper.from_array(np.array([2**40], np.int64), "big")
    end = numpy_helper.from_array(np.array([2**63 - 1], np.int64), "end")
    start = numpy_helper.from_array(np.array([0], np.int64), "start")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    m = model([helper.make_node("Slice", ["x", "start", "end", "axes"], ["s"], name="to_the_end"),
               helper.make_node("Add", ["i", "big"], ["j"], name="add_big")],
              [info("x", TensorProto.FLOAT), info("i", TensorProto.INT64, ("batch", 1))],
              [info("s", TensorProto.FLOAT), info("j", TensorProto.INT64, ("batch", 1))], [big, end, start, axes])
    text = problems(m, "8.6")
    assert "initializer (big): INT64 values beyond INT32's range" in text
    assert "(end)" not in text  # INT64_MAX as a Slice end means "to the end", clamped harmlessly
    assert check_model(m, "10.3")["ok"], problems(m, "10.3")  # TensorRT 10 has INT64


@pytest.mark.parametrize("node, inputs, message", [
    (helper.make_node("MatMul", ["a", "b"], ["y"], name="int_matmul"), [("a", TensorProto.INT32), ("b", TensorProto.INT32)],
     "MatMul (int_matmul): input 'a' is INT32; TensorRT's MatMul takes FLOAT, FLOAT16"),
    (helper.make_node("Softmax", ["a"], ["y"], name="sm"), [("a", TensorProto.INT64)],
     "Softmax (sm): input 'a' is INT64"),
    (helper.make_node("And", ["a", "b"], ["y"], name="and"), [("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)],
     "And (and): input 'a' is FLOAT; TensorRT's And takes BOOL"),
    (helper.make_node("Where", ["a", "b", "b"], ["y"], name="w"), [("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)],
     "Where (w): condition is FLOAT; TensorRT takes BOOL"),
    (helper.make_node("Add", ["a", "b"], ["y"], name="u8"), [("a", TensorProto.UINT8), ("b", TensorProto.UINT8)],
     "Add (u8): input 'a' is UINT8"),
])
def test_per_op_type_limits(node, inputs, message):
    m = model([node], [info(n, t) for n, t in inputs], [helper.make_tensor_value_info("y", 0, None)])
    assert message in problems(m)


def test_integer_shape_arithmetic_is_accepted():
    # The exported learners compute shapes in INT64 (Gather, Mul, Div, Equal, Where): TensorRT runs them as INT32.
    m = model([helper.make_node("Mul", ["i", "i"], ["j"]), helper.make_node("Equal", ["j", "i"], ["c"]),
               helper.make_node("Where", ["c", "i", "j"], ["y"])],
              [info("i", TensorProto.INT64)], [info("y", TensorProto.INT64)])
    assert check_model(m)["ok"], problems(m)


@pytest.mark.parametrize("tensorrt, opset", [("8.2", 13), ("8.2.5", 13), ("8.5", 13), ("8.6", 17), ("8.6.1", 17),
                                             ("10.0", 20), ("10.3", 20)])
def test_parser_opset_limit_by_tensorrt_version(tensorrt, opset):
    assert parser_max_opset(tensorrt) == opset


def test_opset_is_checked_against_the_profiles_tensorrt():
    learner = onnx.load(LEARNERS_DIR / "mann.onnx")  # opset 17
    orin = check_model(learner, load_profile("jetson-orin-nano").tensorrt)
    assert orin["ok"] and format_report(orin).startswith("TensorRT 8.6+ readiness: ok")
    nano = check_model(learner, load_profile("jetson-nano").tensorrt)
    assert nano["problems"] == ["opset: opset 17 > 13, the newest TensorRT 8.2 parses"]
    assert check_model(learner, load_profile("x86-cuda").tensorrt)["ok"]


@pytest.mark.parametrize("name", ["mann", "default"])
def test_shipped_learners_are_ready_and_their_int8_files_are_not(name):
    assert check_model(onnx.load(LEARNERS_DIR / f"{name}.onnx"))["ok"]
    text = problems(onnx.load(LEARNERS_DIR / f"{name}-int8.onnx"))
    assert "MatMulInteger" in text and "DynamicQuantizeLinear" in text


def test_the_int8_files_card_says_it_is_not_for_tensorrt():
    import json

    from edgemeta.export.model_card import render

    report = json.loads((LEARNERS_DIR / "mann.json").read_text())["export"]  # the shipped learner's export.json
    assert "learner.int8.onnx" in report["files"]
    card = render(report["metadata"], onnx.load(LEARNERS_DIR / "mann.onnx"), report)
    assert "`learner.int8.onnx` is for ONNX Runtime on CPUs only, not for TensorRT" in card
    assert "(ONNX Runtime on CPUs only; not for TensorRT)" in card
    report["files"].pop("learner.int8.onnx")
    assert "not for TensorRT" not in render(report["metadata"], onnx.load(LEARNERS_DIR / "mann.onnx"), report)


def test_export_with_a_device_checks_readiness_against_its_tensorrt(tmp_path, capsys):
    """The board's parser decides: an opset-17 step is ready for TensorRT 8.6 and refused for an 8.2 board."""
    from pathlib import Path

    from toy_checkpoint import FLAT, make_checkpoint

    from edgemeta.cli import main

    source = Path(__file__).resolve().parents[2] / "devices" / "boards" / "x86-cuda.toml"
    old = tmp_path / "old-board.toml"
    old.write_text(source.read_text().replace('name = "x86-cuda"', 'name = "old-board"').replace('tensorrt = "8.6"', 'tensorrt = "8.2"'))
    make_checkpoint(tmp_path / "run.pt", FLAT)
    assert main(["export", str(tmp_path / "run.pt"), "--out", str(tmp_path / "ok"), "--device", "x86-cuda"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run.pt"), "--out", str(tmp_path / "old"), "--device", str(old)]) == 1
    err = capsys.readouterr().err
    assert "is not TensorRT-ready" in err and "opset" in err, err
    assert not (tmp_path / "old").exists()


def test_int8_files_keep_their_readout_layers_float():
    """The MatMul that turns the state into logits stays float in the int8 file (rounding it moves the argmax)."""
    from edgemeta.export.int8 import readout_matmuls

    readouts = set(readout_matmuls(LEARNERS_DIR / "default.onnx"))
    int8 = {n.name: n.op_type for n in onnx.load(LEARNERS_DIR / "default-int8.onnx").graph.node}
    assert readouts and all(int8.get(name) == "MatMul" for name in readouts), readouts
    assert "MatMulInteger" in int8.values()  # the controller's weights are int8
