"""edgemeta.runtime: the torch-free side of edgemeta (numpy, onnxruntime, OpenCV).

Importing this package must never import torch: it is what runs on the device.
Heavy or optional pieces (OpenCV frame handling, TensorRT) live in their own modules
and are imported by whoever needs them.
"""

# Public names, imported on first use so that `import edgemeta.runtime` stays cheap (no
# onnxruntime, no OpenCV) and can never pull in torch.
_EXPORTS = {
    "Learner": "edgemeta.runtime.learner",
    "Prediction": "edgemeta.runtime.learner",
    "EpisodeLengthWarning": "edgemeta.runtime.learner",
    "shipped_learners": "edgemeta.runtime.learner",
    "resolve_learner": "edgemeta.runtime.learner",
    "ContractError": "edgemeta.runtime.contract_check",
    "RuntimeStateError": "edgemeta.runtime.state_file",
    "frame_to_input": "edgemeta.runtime.camera.frames",
    "FrameResult": "edgemeta.runtime.camera.frames",
    "FrameError": "edgemeta.runtime.camera.frames",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgemeta.runtime' has no attribute {name!r}")
