"""TensorRT-readiness of an ONNX graph, checked without TensorRT or a GPU.

The table below is our reading of onnx-tensorrt's operator support matrix (docs/operators.md) for
TensorRT 8.6, which parses opsets up to 17: the ops it imports and the restrictions it documents.
On top of that, edgemeta's contract forbids ops that TensorRT 8.6 can parse only slowly or with
data-dependent output shapes (OneHot, NonZero, ScatterND, control flow): a single learner step
never needs them, and each one has broken an engine build or a fixed-shape profile on some board.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

MAX_OPSET = 17  # TensorRT 8.6 parses ONNX opsets up to 17

# Ops TensorRT 8.6's ONNX parser imports (default domain).
SUPPORTED = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow
PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Parsed by TensorRT but ruled out by edgemeta's contract, with the reason printed to the user.
FORBIDDEN = {
    "OneHot": "not allowed by the export contract (build one-hot vectors with Equal against a constant range)",
    "NonZero": "data-dependent output shape",
    "Compress": "data-dependent output shape",
    "Unique": "data-dependent output shape",
    "NonMaxSuppression": "data-dependent output shape",
    "ScatterND": "not allowed by the export contract (scatter is slow in TensorRT; use masks)",
    "Loop": "control flow: one learner step must be a straight-line graph",
    "Scan": "control flow: one learner step must be a straight-line graph",
    "If": "control flow: one learner step must be a straight-line graph",
}

# input index -> what must be constant (an initializer or a Constant node's output)
CONSTANT_INPUTS = {
    "TopK": {1: "K"},
    "Slice": {3: "axes"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "CumSum": {1: "axis"},
    "InstanceNormalization": {1: "scale", 2: "B"},
}
# ops whose extra outputs TensorRT does not produce: op -> number of outputs it supports
MAX_OUTPUTS = {"MaxPool": 1, "LayerNormalization": 1}
IO_TYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 9: "bool", 3: "int8", 2: "uint8"}


@dataclass(frozen=True)
class Problem:
    op: str
    node: str
    reason: str

    def __str__(self) -> str:
        where = f" ({self.node})" if self.node else ""
        return f"{self.op}{where}: {self.reason}"


def check_model(model) -> dict:
    """{'ok': bool, 'ops': {op: count}, 'problems': [str]} for an onnx.ModelProto."""
    problems: list[Problem] = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > MAX_OPSET:
            problems.append(Problem("opset", "", f"opset {imp.version} > {MAX_OPSET}, the newest TensorRT 8.6 parses"))
    ops: Counter = Counter()
    _check_graph(model.graph, problems, ops, constants=set())
    _check_io(model.graph, problems)
    return {"ok": not problems, "ops": dict(sorted(ops.items())), "problems": [str(p) for p in problems]}


def format_report(report: dict) -> str:
    if report["ok"]:
        return f"TensorRT 8.6+ readiness: ok ({sum(report['ops'].values())} nodes, {len(report['ops'])} op types)"
    lines = [f"TensorRT 8.6+ readiness: {len(report['problems'])} problem(s)"]
    lines += [f"  not supported: {p}" for p in report["problems"]]
    return "\n".join(lines)


def _check_graph(graph, problems: list[Problem], ops: Counter, constants: set[str]) -> None:
    constants = constants | {init.name for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
    for node in graph.node:
        ops[node.op_type] += 1
        if node.domain not in ("", "ai.onnx"):
            problems.append(Problem(f"{node.domain}.{node.op_type}", node.name, "custom-domain op: needs a TensorRT plugin"))
            continue
        if node.op_type not in SUPPORTED:
            problems.append(Problem(node.op_type, node.name, "not in TensorRT 8.6's ONNX operator support matrix"))
        elif node.op_type in FORBIDDEN:
            problems.append(Problem(node.op_type, node.name, FORBIDDEN[node.op_type]))
        for index, what in CONSTANT_INPUTS.get(node.op_type, {}).items():
            if index < len(node.input) and node.input[index] and node.input[index] not in constants:
                problems.append(Problem(node.op_type, node.name, f"input {what} must be a constant (initializer or Constant)"))
        limit = MAX_OUTPUTS.get(node.op_type)
        if limit is not None and any(name for name in node.output[limit:]):
            problems.append(Problem(node.op_type, node.name, f"only the first {limit} output(s) are supported"))
        for attr in node.attribute:  # subgraphs of control-flow ops, already reported above
            subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subgraphs:
                _check_graph(sub, problems, ops, constants)


def _check_io(graph, problems: list[Problem]) -> None:
    initializers = {init.name for init in graph.initializer}
    for direction, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            tensor = value.type.tensor_type
            if tensor.elem_type not in IO_TYPES:
                problems.append(Problem(f"graph {direction}", value.name, f"element type {tensor.elem_type} is not a TensorRT I/O type"))
            dims = tensor.shape.dim
            dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
            if any(i != 0 for i in dynamic):
                problems.append(Problem(f"graph {direction}", value.name, f"axes {dynamic} are dynamic; only the batch axis (0) may be"))
