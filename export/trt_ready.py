"""TensorRT-readiness of an ONNX graph, checked without TensorRT or a GPU, for a given TensorRT version
(a device profile's `runtime.tensorrt`; 8.6, the oldest edgemeta supports, by default).

The tables below are our reading of onnx-tensorrt's operator support matrix (docs/operators.md): the ops
TensorRT 8.6 imports, the restrictions it documents, the element types each op takes, and the newest
opset each parser reads. Types are checked on every tensor, not only the graph's inputs and outputs:
TensorRT has no float64 at all, and before 10.0 it runs INT64 as INT32, clamping what does not fit.
On top of that, edgemeta's contract forbids ops that TensorRT 8.6 can parse only slowly or with
data-dependent output shapes (OneHot, NonZero, ScatterND, control flow): a single learner step
never needs them, and each one has broken an engine build or a fixed-shape profile on some board.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

MAX_OPSET = 17  # TensorRT 8.6 parses ONNX opsets up to 17
DEFAULT_TENSORRT = "8.6"  # the oldest TensorRT edgemeta supports (pyproject's [trt] extra)
# The newest ONNX opset each TensorRT's parser reads, by the first version that reads it. Versions between
# two rows take the lower one (8.4/8.5 are outside edgemeta's window; reading them as 13 errs on the safe side).
PARSER_MAX_OPSET = {(8, 0): 13, (8, 6): 17, (10, 0): 20}

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

FLOAT32, UINT8, INT8, INT32, INT64, BOOL, FLOAT16, DOUBLE = 1, 2, 3, 6, 7, 9, 10, 11
TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
              9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 16: "BFLOAT16"}
_F, _I, _B, _Q = {FLOAT32, FLOAT16}, {INT32, INT64}, {BOOL}, {INT8}  # INT64 runs as INT32 before TensorRT 10
# op -> element types its data input (input 0, or the one named) may have; ops not listed take any type
# TensorRT has (the shape ops: Reshape, Gather, Concat, Slice, ...).
OP_TYPES = {
    **dict.fromkeys("""MatMul Softmax LogSoftmax TopK Sqrt Exp Log Erf Reciprocal Pow Floor Ceil Sin Cos Tan Asin Acos
        Atan Sinh Cosh Asinh Acosh Atanh ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2
        ReduceLogSum ReduceLogSumExp ReduceSumSquare ArgMax ArgMin CumSum Einsum LRN LSTM GRU RNN
        BatchNormalization InstanceNormalization LayerNormalization GroupNormalization Resize Upsample Elu Selu
        HardSigmoid Softsign Dropout""".split(), _F),
    **dict.fromkeys("Relu Sigmoid Tanh Softplus LeakyRelu Conv ConvTranspose Gemm MaxPool AveragePool Round Clip".split(),
                    _F | _Q),
    **dict.fromkeys("Add Sub Mul Div Neg Abs Max Min Mean Sum Equal Greater GreaterOrEqual Less LessOrEqual Sign".split(),
                    _F | _I),
    **dict.fromkeys("And Or Xor Not".split(), _B),
}
CAST_TARGETS = _F | _I | _Q | _B | {UINT8}


@dataclass(frozen=True)
class Problem:
    op: str
    node: str
    reason: str

    def __str__(self) -> str:
        where = f" ({self.node})" if self.node else ""
        return f"{self.op}{where}: {self.reason}"


def parser_max_opset(tensorrt: str) -> int:
    """The newest ONNX opset the ONNX parser of TensorRT `tensorrt` ("8.6", "10.3.0") reads."""
    version = _version(tensorrt)
    rows = [v for v in sorted(PARSER_MAX_OPSET) if v <= version] or [min(PARSER_MAX_OPSET)]
    return PARSER_MAX_OPSET[rows[-1]]


def check_model(model, tensorrt: str = DEFAULT_TENSORRT) -> dict:
    """{'ok': bool, 'tensorrt': version, 'ops': {op: count}, 'problems': [str]} for an onnx.ModelProto, checked
    against TensorRT `tensorrt`'s parser."""
    problems: list[Problem] = []
    limit = parser_max_opset(tensorrt)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > limit:
            problems.append(Problem("opset", "", f"opset {imp.version} > {limit}, the newest TensorRT {tensorrt} parses"))
    ops: Counter = Counter()
    _check_graph(model.graph, problems, ops, constants=set())
    _check_io(model.graph, problems)
    _check_types(model, problems, int64_native=_version(tensorrt) >= (10, 0))
    return {"ok": not problems, "tensorrt": tensorrt, "ops": dict(sorted(ops.items())),
            "problems": [str(p) for p in problems]}


def format_report(report: dict) -> str:
    version = report.get("tensorrt", DEFAULT_TENSORRT)
    if report["ok"]:
        return f"TensorRT {version}+ readiness: ok ({sum(report['ops'].values())} nodes, {len(report['ops'])} op types)"
    lines = [f"TensorRT {version}+ readiness: {len(report['problems'])} problem(s)"]
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


def _check_types(model, problems: list[Problem], int64_native: bool) -> None:
    """Element types of every tensor: initializers and constants (float64; INT64 values INT32 cannot hold),
    intermediate tensors (float64), and what each op takes (OP_TYPES, Cast's target)."""
    from onnx import numpy_helper, shape_inference

    try:
        graph = shape_inference.infer_shapes(model).graph
    except Exception:  # shape inference refuses the graph: check what the file declares
        graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    constants = [(t.name, t) for t in graph.initializer]
    constants += [(n.output[0], a.t) for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    # Slice's starts/ends are clamped to the axis anyway: INT64_MAX there ("to the end") is harmless.
    slice_bounds = {name for n in graph.node if n.op_type == "Slice" for name in n.input[1:3]}
    for name, tensor in constants:
        types[name] = tensor.data_type
        if tensor.data_type == DOUBLE:
            problems.append(Problem("initializer", name, "float64: TensorRT has no float64 (its parser casts it to "
                                                           "float32, clamped): export it as float32"))
        elif tensor.data_type == INT64 and not int64_native and name not in slice_bounds:
            values = numpy_helper.to_array(tensor)
            if values.size and (values.max() > 2**31 - 1 or values.min() < -(2**31)):
                problems.append(Problem("initializer", name, "INT64 values beyond INT32's range: TensorRT before 10.0 "
                                                               "runs INT64 as INT32 and would clamp them"))
    reported = {name for name, t in constants if t.data_type == DOUBLE}
    for name, elem in types.items():
        if elem == DOUBLE and name not in reported:
            problems.append(Problem("tensor", name, "float64: TensorRT has no float64; keep the graph in float32"))
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if to is not None and to not in CAST_TARGETS:
                problems.append(Problem("Cast", node.name, f"to {TYPE_NAMES.get(to, to)}: TensorRT cannot cast to it"))
            continue
        if node.op_type == "Where" and node.input and types.get(node.input[0], BOOL) not in (0, BOOL):
            problems.append(Problem("Where", node.name, f"condition is {TYPE_NAMES.get(types[node.input[0]])}; "
                                                        "TensorRT takes BOOL"))
        allowed = OP_TYPES.get(node.op_type)
        if allowed is None or not node.input or not node.input[0]:
            continue
        elem = types.get(node.input[0], 0)
        if elem and elem != DOUBLE and elem not in allowed:  # float64 is reported above
            names = ", ".join(TYPE_NAMES[t] for t in sorted(allowed) if t != INT64)
            problems.append(Problem(node.op_type, node.name, f"input {node.input[0]!r} is {TYPE_NAMES.get(elem, elem)}; "
                                                             f"TensorRT's {node.op_type} takes {names}"))


def _version(text: str) -> tuple:
    parts = [int(p) for p in str(text).split(".")[:2] if p.isdigit()]
    return tuple(parts + [0] * (2 - len(parts)))
