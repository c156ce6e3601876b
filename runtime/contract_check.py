"""Check a loaded graph (or engine) against the learner contract, with messages that say what is wrong.

Backends describe their inputs and outputs as (name, shape, dtype); this module compares them with
what runtime/contract.py and the graph's own metadata promise, before any buffer is allocated, so a
wrong file fails at load with "input 'image': got shape [...]; expected [B, 1, 20, 20]" instead of
an obscure error at the first step.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

from edgemeta import EdgemetaError
from edgemeta.runtime import contract
from edgemeta.runtime.preprocess import PREPROCESS_ID, RGB_PREPROCESS_ID


class ContractError(EdgemetaError, ValueError):
    """The file is not an edgemeta learner this runtime can drive."""


@dataclass(frozen=True)
class LearnerSpec:
    """What the runtime needs to know about a checked learner."""

    metadata: dict
    num_classes: int
    input_size: int
    channels: int  # 1: an ink map (task "omniglot"); 3: RGB in [0, 1] (task "objects")
    state_shapes: dict  # name -> shape without the batch axis, in graph order
    has_novelty: bool


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def _is_symbolic(dim) -> bool:
    return dim is None or isinstance(dim, str) or (isinstance(dim, int) and dim < 0)


def parse_metadata(raw, where: str) -> dict:
    if raw is None:
        raise ContractError(f"{where} has no '{contract.METADATA_KEY}' metadata; it was not written by `edgemeta export`")
    try:
        meta = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except json.JSONDecodeError as e:
        raise ContractError(f"{where}: '{contract.METADATA_KEY}' metadata is not valid JSON ({e.msg}); re-export it") from None
    if not isinstance(meta, dict):
        raise ContractError(f"{where}: '{contract.METADATA_KEY}' metadata is not a JSON object; re-export it")
    missing = [k for k in contract.REQUIRED_METADATA if k not in meta]
    if missing:
        raise ContractError(f"{where}: metadata lacks {', '.join(missing)}; re-export it with this edgemeta")
    if meta["format"] != contract.FORMAT:
        raise ContractError(
            f"{where} has contract format {meta['format']}; this runtime reads format {contract.FORMAT} "
            "(re-export the learner or install the matching edgemeta)"
        )
    if meta["task"] not in contract.TASKS:
        raise ContractError(f"{where} is a '{meta['task']}' learner; the runtime's Learner drives image learners "
                            f"(task {' or '.join(repr(t) for t in contract.TASKS)})")
    channels = meta.get("input_channels", 1)
    if channels != (3 if meta["task"] == "objects" else 1) or isinstance(channels, bool):
        raise ContractError(f"{where}: a '{meta['task']}' learner with input_channels {channels!r}; expected "
                            f"{3 if meta['task'] == 'objects' else 1}; re-export it")
    for key in ("num_classes", "input_size"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool) or meta[key] < 1:
            raise ContractError(f"{where}: metadata '{key}' must be a positive integer, got {meta[key]!r}")
    state = meta["state"]
    ok = isinstance(state, list) and state and all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("shape"), list)
        and all(isinstance(d, int) and d > 0 for d in s["shape"]) for s in state
    )
    if not ok:
        raise ContractError(f"{where}: metadata 'state' must be a list of {{name, shape}} with positive dimensions")
    names = [s["name"] for s in state]
    reserved = {contract.IMAGE, contract.PREV_LABEL, contract.LOGITS, contract.NOVELTY}
    if len(set(names)) != len(names) or reserved & set(names):
        raise ContractError(f"{where}: metadata state names {names} repeat or clash with {sorted(reserved)}")
    provided = RGB_PREPROCESS_ID if meta["task"] == "objects" else PREPROCESS_ID
    if meta["preprocess"] != provided:
        warnings.warn(
            f"{where} was trained on preprocessing {meta['preprocess']!r}; this runtime provides {provided!r}",
            stacklevel=3,
        )
    return meta


def check_learner(inputs, outputs, raw_metadata, batch: int, where: str) -> LearnerSpec:
    """inputs/outputs: objects with .name, .shape, .dtype. Raises ContractError on the first problem."""
    meta = parse_metadata(raw_metadata, where)
    c, s = meta["num_classes"], meta["input_size"]
    states = {st["name"]: tuple(st["shape"]) for st in meta["state"]}

    channels = meta.get("input_channels", 1)
    expected_in = {contract.IMAGE: (channels, s, s), contract.PREV_LABEL: (c,), **states}
    expected_out = {contract.LOGITS: (c,), **{contract.state_out(n): shp for n, shp in states.items()}}
    optional_out = {contract.NOVELTY: (1,)}

    _check_side("input", inputs, expected_in, {}, batch, where)
    present = _check_side("output", outputs, expected_out, optional_out, batch, where)
    return LearnerSpec(meta, c, s, channels, states, contract.NOVELTY in present)


def _check_side(kind: str, specs, expected: dict, optional: dict, batch: int, where: str) -> set:
    got = {t.name: t for t in specs}
    for name in expected:
        if name not in got:
            raise ContractError(
                f"{where}: missing {kind} '{name}' (the contract's {kind}s are {', '.join(expected)}); re-export the learner"
            )
    for name in got:
        if name not in expected and name not in optional:
            raise ContractError(f"{where}: unexpected {kind} '{name}'; the contract's {kind}s are {', '.join(expected)}")
    for name, t in got.items():
        want = expected[name] if name in expected else optional[name]
        wanted = ["B", *want]
        shape = list(t.shape)
        if len(shape) != len(wanted) or any(g != w for g, w in zip(shape[1:], want)):
            # The batch axis reads "B" when it is the dynamic one (sessions fix it to the batch asked for).
            shown = (["B"] if shape and (_is_symbolic(shape[0]) or shape[0] == batch) else shape[:1]) + shape[1:]
            raise ContractError(f"{where}: {kind} '{name}': got shape {_fmt(shown)}; expected {_fmt(wanted)}")
        if not _is_symbolic(shape[0]) and shape[0] != batch:
            raise ContractError(
                f"{where}: {kind} '{name}': got shape {_fmt(shape)}; expected {_fmt(wanted)} with B = {batch} "
                f"(this graph has a fixed batch of {shape[0]}; load it with batch={shape[0]})"
            )
        if t.dtype != "float32":
            raise ContractError(f"{where}: {kind} '{name}': got dtype {t.dtype}; expected float32")
    return set(got)
