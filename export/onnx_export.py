"""Write one learner step as an ONNX graph with explicit state in and out (see runtime/contract.py)."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from edgemeta.runtime import contract
from edgemeta.runtime.atomic import atomic_path


class StepGraph(nn.Module):
    """Flattens the dict-state step into positional tensors in the contract's order."""

    def __init__(self, learner):
        super().__init__()
        self.learner = learner
        self.names = learner.state_names
        self.has_novelty = getattr(learner, "novelty", None) is not None

    def forward(self, image, prev_label, *state):
        logits, novelty, nxt = self.learner.step(image, prev_label, dict(zip(self.names, state)))
        outs = [logits] + [nxt[n] for n in self.names]
        if self.has_novelty:
            outs.append(torch.sigmoid(novelty))
        return tuple(outs)


def model_id(learner: nn.Module) -> str:
    """A hash of the weights: state saved on a device is only ever loaded into the same model."""
    h = hashlib.sha256()
    for name, t in sorted(learner.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def io_names(learner) -> tuple[list[str], list[str]]:
    names = list(learner.state_names)
    inputs = [contract.IMAGE, contract.PREV_LABEL] + names
    outputs = [contract.LOGITS] + [contract.state_out(n) for n in names]
    if getattr(learner, "novelty", None) is not None:
        outputs.append(contract.NOVELTY)
    return inputs, outputs


def step_module(learner, as_trained: bool = False) -> nn.Module:
    """The module to trace: for a MANN the deployment rewrite of its step (export/mann_graph.py: the
    same function in about half the nodes) unless as_trained; else the training step as written."""
    from edgemeta.models.mann import MANNLearner

    if not as_trained and isinstance(learner, MANNLearner):
        from .mann_graph import MANNStepGraph

        return MANNStepGraph(learner)
    return StepGraph(learner)


def export_step(learner, path: str | Path, metadata: dict, batch: int = 2, as_trained: bool = False) -> Path:
    """Trace one learner step to ONNX at `path` (atomically) with metadata; returns the path.

    as_trained=True traces `learner.step` exactly as training runs it (the export that
    benchmarks/runtime_step.py compares the deployment graph against)."""
    import onnx

    learner = learner.eval().cpu()
    cfg = learner.cfg
    graph = step_module(learner, as_trained)
    image = torch.zeros(batch, cfg.channels, cfg.image_size, cfg.image_size)
    prev = torch.zeros(batch, cfg.num_classes)
    state = tuple(learner.zero_state(batch, "cpu").values())
    inputs, outputs = io_names(learner)
    dynamic = {n: {0: contract.BATCH_AXIS} for n in inputs + outputs}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter: it keeps TopK's K constant and gives a plain opset-17 graph.
        torch.onnx.export(
            graph, (image, prev, *state), str(tmp), input_names=inputs, output_names=outputs,
            dynamic_axes=dynamic, opset_version=contract.OPSET, do_constant_folding=True, dynamo=False,
        )
        model = onnx.load(str(tmp))
        pin_output_shapes(model, output_shapes(learner))
        meta = {
            "format": contract.FORMAT,
            "num_classes": cfg.num_classes,
            "input_size": cfg.image_size,
            **({"input_channels": cfg.channels} if cfg.channels != 1 else {}),  # absent: one ink channel
            "state": [{"name": n, "shape": list(s)} for n, s in learner.state_shapes().items()],
            "model_id": model_id(learner),
            **metadata,
        }
        missing = [k for k in contract.REQUIRED_METADATA if k not in meta]
        if missing:
            raise ValueError(f"export metadata lacks {missing}")
        entry = model.metadata_props.add()
        entry.key, entry.value = contract.METADATA_KEY, json.dumps(meta)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return Path(path)


def output_shapes(learner) -> dict[str, tuple[int, ...]]:
    """Output name -> shape without the batch axis, as the contract pins it."""
    shapes = {contract.LOGITS: (learner.cfg.num_classes,)}
    shapes.update({contract.state_out(n): tuple(s) for n, s in learner.state_shapes().items()})
    if getattr(learner, "novelty", None) is not None:
        shapes[contract.NOVELTY] = (1,)
    return shapes


def pin_output_shapes(model, shapes: dict[str, tuple[int, ...]]) -> None:
    """Declare every output as [batch, *shapes[name]]: the tracer leaves some axes symbolic
    ("Addc_out_dim_1"), and the contract fixes every axis but batch. onnx.checker's full check
    (strict shape inference) then proves the declared shapes are what the graph computes."""
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = contract.BATCH_AXIS
        for size in shapes[value.name]:
            dims.add().dim_value = int(size)
