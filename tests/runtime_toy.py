"""A hand-built ONNX learner that follows the contract and whose arithmetic is obvious (no torch needed).

State `count` [B, C] accumulates the previous labels it is given and `ink` [B, 1] holds the
last image's ink sum, so a test can tell exactly which steps were committed:
    count_out = count + prev_label          logits = count_out * 10 - ink_sum
    ink_out   = sum(image)                  novelty = sigmoid(ink_out - count_out.sum())  (optional)
`mutate` edits the pieces a contract violation is made of (names, shapes, dtypes, metadata).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgemeta.runtime import contract
from edgemeta.runtime.preprocess import PREPROCESS_ID


def toy_metadata(classes: int = 3, size: int = 8, **overrides) -> dict:
    meta = {
        "format": contract.FORMAT, "name": "toy", "task": "omniglot", "num_classes": classes, "input_size": size,
        "preprocess": PREPROCESS_ID,
        "state": [{"name": "count", "shape": [classes]}, {"name": "ink", "shape": [1]}],
        "config": {}, "eval": {}, "model_id": "toy0000000000000", "episode_steps": 5,
    }
    meta.update(overrides)
    return meta


def toy_learner(path: Path, classes: int = 3, size: int = 8, novelty: bool = False, metadata: dict | None | str = "default",
                shapes: dict | None = None, names: dict | None = None, dtype=None, extra_output: bool = False,
                drop_input: str | None = None, batch="batch") -> Path:
    """Write the toy learner to `path`; the keyword arguments break it in the ways a test needs."""
    import onnx
    from onnx import TensorProto, helper

    shapes = shapes or {}
    names = names or {}
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype or "float32"]

    def name(n):
        return names.get(n, n)

    def vi(n, default_shape, t=TensorProto.FLOAT):
        shp = shapes.get(n, [batch, *default_shape])
        return helper.make_tensor_value_info(name(n), t, shp)

    image_f = name("image") if elem == TensorProto.FLOAT else "image_f"
    nodes = [] if elem == TensorProto.FLOAT else [helper.make_node("Cast", [name("image")], ["image_f"], to=TensorProto.FLOAT)]
    nodes += [
        helper.make_node("Add", [name("count"), name("prev_label")], [name("count_out")]),
        helper.make_node("ReduceSum", [image_f, "axes"], ["ink_sum"], keepdims=0),
        helper.make_node("Unsqueeze", ["ink_sum", "one"], [name("ink_out")]),
        helper.make_node("Mul", [name("count_out"), "ten"], ["scaled"]),
        helper.make_node("Sub", ["scaled", name("ink_out")], [name("logits")]),
    ]
    inits = [
        helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]),
    ]
    inputs = [vi("image", [1, size, size], elem), vi("prev_label", [classes]), vi("count", [classes]), vi("ink", [1])]
    outputs = [vi("logits", [classes]), vi("count_out", [classes]), vi("ink_out", [1])]
    if novelty:
        nodes += [
            helper.make_node("ReduceSum", [name("count_out"), "one"], ["taught"], keepdims=1),
            helper.make_node("Sub", [name("ink_out"), "taught"], ["nov_logit"]),
            helper.make_node("Sigmoid", ["nov_logit"], [name("novelty")]),
        ]
        outputs.append(vi("novelty", [1]))
    if extra_output:
        nodes.append(helper.make_node("Identity", [name("logits")], ["debug"]))
        outputs.append(helper.make_tensor_value_info("debug", TensorProto.FLOAT, [batch, classes]))
    if drop_input:
        # Feed the dropped input from a constant instead, so the graph stays valid without it.
        shp = [1, *([classes] if drop_input in ("count", "prev_label") else [1])]
        inputs = [i for i in inputs if i.name != drop_input]
        inits.append(helper.make_tensor(drop_input, TensorProto.FLOAT, shp, [0.0] * int(np.prod(shp))))
    graph = helper.make_graph(nodes, "toy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.OPSET)])
    model.ir_version = 8
    if metadata is not None:
        value = metadata if isinstance(metadata, str) and metadata != "default" else json.dumps(
            toy_metadata(classes, size) if metadata == "default" else metadata
        )
        entry = model.metadata_props.add()
        entry.key, entry.value = contract.METADATA_KEY, value
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path
