"""edgemeta.export: one learner step to ONNX (and TensorRT) with explicit state, checked for parity."""
from .checkpoint_export import export_checkpoint

__all__ = ["export_checkpoint"]
