"""The exported learner's contract, shared by export (which writes it) and runtime (which checks it).

Graph inputs:  image [B,1,S,S] float32 (ink = 1.0; an "objects" learner: [B,3,S,S] RGB in [0, 1]), prev_label [B,C] float32 (one-hot of the previous
               committed step's label, zeros for none), then one input per state tensor, named after it.
Graph outputs: logits [B,C], then `<s>_out` for every state input `<s>` (same shape), then optional
               novelty [B,1] (probability that the image shows a class not taught yet).
Only the batch axis is dynamic. All-zero state is a fresh learner. Opset 17.
Metadata: JSON under metadata_props key "edgemeta" with at least REQUIRED_METADATA.
"""
from __future__ import annotations

FORMAT = 1
OPSET = 17
METADATA_KEY = "edgemeta"
BATCH_AXIS = "batch"

IMAGE = "image"
PREV_LABEL = "prev_label"
LOGITS = "logits"
NOVELTY = "novelty"

# "omniglot": the image learners (one ink channel, the symbol front end); "objects": RGB [B, 3, S, S] in [0, 1]
# with `input_channels` 3 and `front_end` "region" in the metadata (runtime/camera/region_front.py)
TASKS = ("omniglot", "objects")

REQUIRED_METADATA = (
    "format",  # int: this contract's version
    "name",  # "mann", "default", ...
    "task",  # one of TASKS
    "num_classes",  # C
    "input_size",  # S
    "preprocess",  # id of the pinned preprocessing (edgemeta.runtime.preprocess.PREPROCESS_ID)
    "state",  # [{"name": ..., "shape": [..., without batch]}] in graph order
    "config",  # the training run's model and train configs
    "eval",  # its evaluation table (may be {} for an unevaluated learner)
    "model_id",  # sha256 of the weights (first 16 hex digits): matches saved runtime state to the model
    "episode_steps",  # episode length the learner was meta-trained on (the runtime warns past it)
)


def state_out(name: str) -> str:
    """The output that carries state input `name` to the next step."""
    return f"{name}_out"


# Files of an export directory (`edgemeta export CHECKPOINT --out DIR`).
ONNX_FILE = "learner.onnx"  # the float32 step: every runtime reads this one
ONNX_FP16_FILE = "learner.fp16.onnx"  # --fp16 without --trt: float16 inside, float32 inputs/outputs
ONNX_INT8_FILE = "learner.int8.onnx"  # --int8: int8 weights for ONNX Runtime on CPUs, float32 inputs/outputs
ENGINE_FILE = "learner.engine"  # --trt: a serialized TensorRT engine for the GPU it was built on
ENGINE_LOG_FILE = "learner.engine.log"  # --trt: TensorRT's build log
MODEL_CARD_FILE = "README.md"  # shapes, parity numbers and evaluation table, for people
EXPORT_REPORT_FILE = "export.json"  # the same as JSON, with file hashes; written last
