"""`edgemeta.export.export_learner`: your own PyTorch step module -> the same checked export directory
as `edgemeta export` writes for a checkpoint (one export path: checkpoint_export.export_checked)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from edgemeta import EdgemetaError


def export_learner(module, out_dir, *, image_size: int, num_classes: int, name: str | None = None,
                   episode_steps: int = 100, trt: bool = False, fp16: bool = False, int8: bool = False,
                   max_batch: int = 8, data=None, log: Callable[[str], None] = print) -> dict:
    """Export `module` (a torch.nn.Module with `state_shapes()` and `step(image, prev_label, state)`, see
    edgemeta/models/user_learner.py) into `out_dir`; returns the report written to export.json.

    image_size, num_classes: S and C of the contract (image [B, 1, S, S], prev_label and logits [B, C]).
    name: the learner's name in the metadata and model card (default: the class name).
    episode_steps: the episode length it was trained on (the runtime warns past it; parity runs at least that).
    trt, fp16, int8, max_batch, data: as `edgemeta export` (data: where the parity episodes' images come
    from: an Omniglot directory or an image folder; synthetic drawings without).
    Every check `edgemeta export` makes gates the files: the contract (one step from zero state, named
    state in and out), onnx.checker, TensorRT readiness, parity over whole episodes. A failing one is an
    EdgemetaError in one line, and nothing is written.
    """
    import torch

    from edgemeta.models import ModelConfig
    from edgemeta.models.user_learner import UserLearner
    from edgemeta.runtime.preprocess import PREPROCESS_ID

    from .checkpoint_export import _torch_threads, export_checked
    from .staging import staged_directory

    if not isinstance(module, torch.nn.Module):
        raise EdgemetaError(f"export_learner takes a torch.nn.Module; got {type(module).__name__}")
    if not (isinstance(image_size, int) and image_size >= 1 and isinstance(num_classes, int) and num_classes >= 1):
        raise EdgemetaError(f"image_size and num_classes must be positive ints, got {image_size!r} and {num_classes!r}")
    if trt:
        from .tensorrt_engine import require_tensorrt

        require_tensorrt()
    kind = type(module)
    spec = f"{kind.__module__}.{kind.__qualname__}"
    cfg = ModelConfig(arch="custom", module=spec, image_size=image_size, num_classes=num_classes)
    learner = UserLearner(cfg, net=module.cpu())
    metadata = {
        "name": name or kind.__name__,
        "task": "omniglot",  # the runtime's image-learner contract (runtime/contract_check.py)
        "preprocess": PREPROCESS_ID,
        "config": {"model": cfg.to_dict(), "train": {}},
        "eval": {},
        "episode_steps": int(episode_steps),
    }
    with staged_directory(out_dir) as tmp, _torch_threads(1):
        return export_checked(learner, metadata, {"module": spec}, Path(out_dir), tmp, trt, fp16, max_batch, log,
                              data, int8)
