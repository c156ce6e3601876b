"""Backends: one learner step with its state kept between steps (ONNX Runtime, TensorRT, native C)."""
from __future__ import annotations

from typing import Sequence


class TensorSpec:
    """A backend's description of one graph input or output: name, shape (ints, or str/None for a
    symbolic axis) and element type ("float32", ...), which runtime/contract_check.py checks."""

    def __init__(self, name: str, shape: Sequence, dtype: str):
        self.name, self.shape, self.dtype = name, list(shape), dtype

    def __repr__(self) -> str:
        return f"TensorSpec({self.name!r}, {self.shape}, {self.dtype})"
