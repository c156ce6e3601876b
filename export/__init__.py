"""edgemeta.export: one learner step to ONNX (and TensorRT) with explicit state, checked for parity.

export_checkpoint: a checkpoint written by `edgemeta train`; export_learner: your own step module.
"""
from .checkpoint_export import export_checkpoint
from .learner_export import export_learner

__all__ = ["export_checkpoint", "export_learner"]
