"""Learner.load checks the graph against the contract and names exactly what is wrong."""
from __future__ import annotations

import json

import pytest
from runtime_toy import toy_learner, toy_metadata

from edgemeta import EdgemetaError
from edgemeta.runtime import ContractError, Learner


def test_a_conforming_graph_loads(tmp_path):
    with Learner.load(toy_learner(tmp_path / "ok.onnx", novelty=True), batch=2) as learner:
        assert (learner.num_classes, learner.input_size, learner.batch) == (3, 8, 2)
        assert learner.has_novelty and learner.model_id == "toy0000000000000"
        assert learner.state_shapes == {"count": (3,), "ink": (1,)} and learner.state_nbytes == 2 * 4 * 4
        assert learner.metadata["episode_steps"] == 5


VIOLATIONS = [
    (dict(shapes={"image": ["batch", 1, 9, 8]}), r"input 'image': got shape \[B, 1, 9, 8\]; expected \[B, 1, 8, 8\]"),
    (dict(shapes={"ink": ["batch"]}), r"input 'ink': got shape \[B\]; expected \[B, 1\]"),
    (dict(shapes={"prev_label": ["batch", 4], "count": ["batch", 4], "count_out": ["batch", 4], "logits": ["batch", 4]}),
     r"input 'prev_label': got shape \[B, 4\]; expected \[B, 3\]"),
    (dict(names={"count": "counter", "count_out": "counter_out"}), "missing input 'count'"),
    (dict(names={"ink_out": "ink_next"}), "missing output 'ink_out'"),
    (dict(drop_input="ink"), "missing input 'ink'"),
    (dict(extra_output=True), "unexpected output 'debug'"),
    (dict(dtype="float64"), "input 'image': got dtype float64; expected float32"),
    (dict(batch=4), r"fixed batch of 4; load it with batch=4"),
    (dict(metadata=None), "has no 'edgemeta' metadata"),
    (dict(metadata="{not json"), "not valid JSON"),
    (dict(metadata=json.dumps([1, 2])), "not a JSON object"),
    (dict(metadata={k: v for k, v in toy_metadata().items() if k not in ("model_id", "state")}), "metadata lacks state, model_id"),
    (dict(metadata=toy_metadata(format=2)), "contract format 2; this runtime reads format 1"),
    (dict(metadata=toy_metadata(task="quadratic")), "'quadratic' learner"),
    (dict(metadata=toy_metadata(num_classes=0)), "'num_classes' must be a positive integer"),
    (dict(metadata=toy_metadata(state=[{"name": "count", "shape": [3]}])), "unexpected input 'ink'"),
    (dict(metadata=toy_metadata(state=[{"name": "image", "shape": [3]}])), "clash"),
    (dict(metadata=toy_metadata(state=[{"name": "count", "shape": [3]}, {"name": "ink", "shape": [2]}])),
     r"input 'ink': got shape \[B, 1\]; expected \[B, 2\]"),
]


@pytest.mark.parametrize("breakage, message", VIOLATIONS, ids=[m[:40] for _, m in VIOLATIONS])
def test_contract_violations_are_named(tmp_path, breakage, message):
    path = toy_learner(tmp_path / "bad.onnx", **breakage)
    with pytest.raises(ContractError, match=message) as e:
        Learner.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, EdgemetaError)


def test_other_preprocessing_warns(tmp_path):
    path = toy_learner(tmp_path / "p.onnx", metadata=toy_metadata(preprocess="something-else"))
    with pytest.warns(UserWarning, match="preprocessing 'something-else'"):
        Learner.load(path).close()


def test_files_that_are_not_onnx(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(EdgemetaError, match="is not a loadable ONNX learner"):
        Learner.load(junk)


def test_an_exported_learner_passes(tiny_onnx):
    with Learner.load(tiny_onnx) as learner:
        assert (learner.num_classes, learner.input_size) == (3, 12)
        assert list(learner.state_shapes) == [s["name"] for s in learner.metadata["state"]]
        assert {"h", "c", "memory", "usage"} <= set(learner.state_shapes)
