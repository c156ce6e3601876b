"""int8 weights for CPU runtimes: learner.int8.onnx, ONNX Runtime only.

At batch 1 a step multiplies vectors by its weight matrices: every weight is read once per step and
used once, so the products are bound by memory traffic (the paper-size MANN holds 2.9 MB of float32
weights, more than a CPU core's L2 cache). Storing the constant weights of every MatMul as int8 reads
a quarter of the bytes; ONNX Runtime quantizes each step's activations on the fly (dynamic
quantization) and multiplies in integers. Inputs, outputs and the state stay float32, so the runtime
feeds this file like any other.

What is lost is precision, not the contract: the export gates it on what the learner says over whole
episodes (probabilities, like the fp16 variant), and reports how often its predictions match. The
ops (DynamicQuantizeLinear, MatMulInteger) are ONNX Runtime's; TensorRT builds its own int8 engines
from calibration, so this file is for the CPU execution provider.
"""
from __future__ import annotations

import tempfile
from pathlib import Path


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> None:
    """Write `out_path`: `onnx_path` with int8 weights in every MatMul whose weight is a constant."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # it logs every node it looks at, and advice through the root logger
    loggers = [logging.getLogger("onnxruntime.quantization"), logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # quantize_dynamic writes through its own temporary files; give it a plain target.
            target = Path(tmp) / "int8.onnx"
            quantize_dynamic(
                str(onnx_path), str(target), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                per_channel=False, extra_options={"MatMulConstBOnly": True},
                nodes_to_exclude=readout_matmuls(onnx_path),
            )
            Path(out_path).write_bytes(target.read_bytes())
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_PASS_THROUGH = ("Add", "Slice", "Split", "Reshape", "Squeeze", "Flatten")


def readout_matmuls(onnx_path: str | Path) -> list[str]:
    """The MatMuls whose products reach a graph output through nothing but a bias Add and slicing or reshaping
    (`_PASS_THROUGH`): readout layers, such as the one that turns the state into logits. They stay float: they
    are small, and rounding them moves the argmax itself, where rounding the controller's weights only nudges
    what it feeds."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def reaches_output(name: str) -> bool:
        if name in outputs:
            return True
        return any(c.op_type in _PASS_THROUGH and any(reaches_output(o) for o in c.output)
                   for c in consumers.get(name, []))

    return [n.name for n in graph.node if n.op_type == "MatMul" and reaches_output(n.output[0])]
