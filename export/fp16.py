"""fp16 variants of an exported step for GPU execution providers; inputs and outputs stay float32.

Two levels, tried in this order by the exporter:
- "fp16": every float tensor and weight inside the graph is float16;
- "fp16-front": only the stateless front (the encoder and the controller's input projection: every
  node that no state input reaches) runs in float16; the recurrent path stays float32. MANN's
  least-used-slot choice compares usages that differ by 1e-5 tie-breaks, which float16 cannot
  resolve, so in full fp16 a different slot gets written and the memory drifts from the reference.
Casts at the boundaries keep the contract's float32 interface, so the runtime feeds every variant alike.
"""
from __future__ import annotations

import numpy as np

FP16_MAX = 65504.0  # largest finite float16; weights beyond it would become inf


def state_path_nodes(model, state_inputs) -> set[str]:
    """Names of the nodes to keep in float32 for "fp16-front": every node a state input reaches, and
    the constant-only nodes whose results only those nodes use (so their values are not rounded)."""
    graph = model.graph
    _name_nodes(graph)
    from_state, from_inputs = set(state_inputs), {i.name for i in graph.input}
    keep, constant_only = set(), set()
    for node in graph.node:  # ONNX graphs are topologically sorted
        if any(i in from_state for i in node.input):
            keep.add(node.name)
            from_state.update(node.output)
        if any(i in from_inputs for i in node.input):
            from_inputs.update(node.output)
        else:
            constant_only.add(node.name)
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    for node in reversed(graph.node):
        used_by = [c for o in node.output for c in consumers.get(o, [])]
        if node.name in constant_only and used_by and all(c in keep for c in used_by):
            keep.add(node.name)
    return keep


def to_float16(model, keep_fp32: set[str] = frozenset()):
    """A copy of `model` computing in float16 except the nodes named in `keep_fp32`.

    Float32 inputs and outputs of the graph are kept; a Cast is inserted wherever a float tensor
    crosses between the float16 and float32 parts.
    """
    import onnx
    from onnx import TensorProto, helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    _name_nodes(graph)
    float_tensors = _float_tensors(out)
    half_nodes = {n.name for n in graph.node if n.name not in keep_fp32}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    # Weights: float16 where only float16 nodes read them (a shared one stays float32 and is cast).
    half = set()  # tensors that hold float16 in the new graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and all(c.name in half_nodes for c in consumers.get(init.name, [])):
            init.CopyFrom(_half(onnx.numpy_helper.to_array(init), init.name))
            half.add(init.name)
    for node in graph.node:
        if node.name not in half_nodes:
            continue
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_half(onnx.numpy_helper.to_array(attr.t), attr.t.name))
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
        half.update(o for o in node.output if o in float_tensors)

    # Boundaries: cast a tensor to the precision each consumer computes in.
    casts: dict[tuple[str, int], str] = {}
    new_nodes = []
    for node in graph.node:
        wants = TensorProto.FLOAT16 if node.name in half_nodes else TensorProto.FLOAT
        for k, name in enumerate(node.input):
            if name not in float_tensors or (name in half) == (wants == TensorProto.FLOAT16):
                continue
            if (name, wants) not in casts:
                cast_name = f"{name}__as_{'fp16' if wants == TensorProto.FLOAT16 else 'fp32'}"
                new_nodes.append(helper.make_node("Cast", [name], [cast_name], to=wants, name=cast_name))
                casts[(name, wants)] = cast_name
            node.input[k] = casts[(name, wants)]
        new_nodes.append(node)
    for value in graph.output:  # float16 outputs are produced under an inner name, then cast back
        if value.name in half:
            inner = f"{value.name}__fp16"
            for node in new_nodes:
                node.input[:] = [inner if i == value.name else i for i in node.input]
                node.output[:] = [inner if o == value.name else o for o in node.output]
            new_nodes.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT, name=f"{value.name}__cast"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # intermediate types changed; ONNX Runtime infers them again
    return out


def _name_nodes(graph) -> None:
    """Precision is chosen per node by name; give unnamed nodes a stable one (op and position)."""
    for i, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def _float_tensors(model) -> set[str]:
    """Every float32 tensor of the graph (inputs, weights, intermediates, outputs)."""
    import onnx
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(model).graph
    values = list(inferred.input) + list(inferred.value_info) + list(inferred.output)
    names = {v.name for v in values if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    names.update(i.name for i in model.graph.initializer if i.data_type == TensorProto.FLOAT)
    for node in model.graph.node:  # Constant outputs are not always in value_info
        if node.op_type == "Constant" and node.attribute and node.attribute[0].t.data_type == TensorProto.FLOAT:
            names.update(node.output)
    return names


def _half(array: np.ndarray, name: str):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16), name)
