"""DIR/README.md: what a person needs to use an exported learner, read from the files themselves."""
from __future__ import annotations

import json

ONNX_TYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 9: "bool"}
INT8_FILE = "learner.int8.onnx"
# export/int8.py's MatMulInteger and DynamicQuantizeLinear are in no TensorRT's ONNX parser (export/trt_ready.py).
INT8_NOT_FOR_TENSORRT = (f"`{INT8_FILE}` is for ONNX Runtime on CPUs only, not for TensorRT: its MatMulInteger and "
                         "DynamicQuantizeLinear ops are not in TensorRT's ONNX parser, so edgemeta never hands it to "
                         "TensorRT (`edgemeta export learner.onnx --trt` and the trt backend take `learner.onnx`)")
MEANING = {
    "image": "input image, ink = 1.0, paper = 0.0 (pinned preprocessing)",
    "prev_label": "one-hot label of the previous committed step; zeros when there is none",
    "logits": "class scores for this image",
    "novelty": "probability that this image shows a class not taught yet",
    "x": "input point (x1, x2)",
    "prev_target": "target of the previous step; 0 when there is none",
    "prediction": "predicted target for x",
}


def io_table(model) -> list[tuple[str, str, str, str, str]]:
    """(name, direction, shape, dtype, meaning) for every graph input and output, from the graph."""
    rows = []
    inputs = {v.name for v in model.graph.input}
    for direction, values in (("in", model.graph.input), ("out", model.graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims = ["B" if d.dim_param else str(d.dim_value) for d in t.shape.dim]
            if v.name in MEANING:
                meaning = MEANING[v.name]
            elif direction == "in":
                meaning = "state (all zeros: a fresh learner)"
            else:
                source = v.name[: -len("_out")]
                meaning = f"next `{source}`: feed it back at the next step" if source in inputs else ""
            rows.append((v.name, direction, "[" + ", ".join(dims) + "]", ONNX_TYPES.get(t.elem_type, str(t.elem_type)), meaning))
    return rows


def render(meta: dict, model, report: dict) -> str:
    lines = [
        f"# edgemeta learner `{meta['name']}` ({meta['task']})",
        "",
        f"- model_id: `{meta['model_id']}` (sha256 of the weights; saved runtime state is tied to it)",
        f"- contract format {meta['format']}, opset {_opset(model)}, preprocessing `{meta['preprocess']}`",
        f"- trained on episodes of {meta['episode_steps']} steps; only the batch axis B is dynamic",
        *([f"- input: RGB in [0, 1], {meta['input_channels']} channels, its normalisation inside the graph; "
           f"front end `{meta.get('front_end', 'symbol')}`"] if meta.get("input_channels", 1) != 1 else []),
        *_training_lines(meta.get("config", {}).get("train") or {}),
        "",
        "## Inputs and outputs",
        "",
        "| tensor | | shape | dtype | meaning |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{n}` | {d} | {s} | {t} | {m} |" for n, d, s, t, m in io_table(model)]
    if meta.get("provenance"):
        lines += ["", "## Data sets and weight files it was made from", "", "| what | source | licence |", "|---|---|---|"]
        lines += [f"| {p['what']} | {p['source']} | {p['licence']} |" for p in meta["provenance"]]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}` ({info['bytes']:,} bytes, sha256 `{info['sha256'][:16]}...`)"
              + (" (ONNX Runtime on CPUs only; not for TensorRT)" if name == INT8_FILE else "")
              for name, info in report["files"].items()]
    lines += ["", "## Parity with PyTorch", ""]
    lines += [f"- {line}" for line in report["parity_lines"]]
    lines += ["", "## TensorRT readiness", "", f"- {report['readiness_line']}"]
    if INT8_FILE in report["files"]:
        lines += [f"- {INT8_NOT_FOR_TENSORRT}"]
    lines += ["", "## Evaluation", ""] + _eval_lines(meta.get("eval") or {})
    lines += ["", "## Configuration", "", "```"]
    lines += [f"{part}: {json.dumps(cfg, sort_keys=True)}" for part, cfg in meta["config"].items()] + ["```", ""]
    return "\n".join(lines)


def _training_lines(train: dict) -> list[str]:
    """How training departed from the plain recipe, where it did: camera views, a start from another checkpoint."""
    lines = []
    if train.get("camera_views"):
        lines.append(f"- trained with camera views: {train['camera_views']:.0%} of the examples shown as the symbol "
                     "front end reads a drawing held up to a camera (tilt, turn, distance, pen, blur; "
                     "edgemeta/data/camera_views.py)")
    if train.get("init"):
        lines.append(f"- fine-tuned from `{train['init']}`")
    return lines


def _opset(model) -> int:
    return next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)


def _eval_lines(table: dict) -> list[str]:
    accuracy = table.get("accuracy")
    if not accuracy:
        return ["Not evaluated: run `edgemeta eval RUN` before exporting to include the table."] if not table else \
            ["```json", json.dumps(table, indent=2, sort_keys=True), "```"]
    where = table.get("split", "meta-test")
    head = f"{table.get('ways', '?')}-way, {table.get('episodes', '?')} episodes of {where} classes" if "episodes" in table \
        else f"{where} accuracy at step {table.get('step', '?')}"
    lines = [head + ", accuracy (%) by instance:", "",
             "| instance | " + " | ".join(str(i + 1) for i in range(len(accuracy))) + " |",
             "|---|" + "---|" * len(accuracy),
             "| accuracy | " + " | ".join(f"{a:.1f}" for a in accuracy) + " |"]
    if "novelty" in table:
        n = table["novelty"]
        lines += ["", f"novelty: mean p(new) {n.get('first_instance_mean')} on first instances, "
                      f"{n.get('later_instances_mean')} on later ones"]
    return lines
