"""Your own meta-learner in edgemeta's loop, checkpoints, evaluation and export.

A user's step module is any `torch.nn.Module` with

    state_shapes() -> {name: shape without the batch axis}            (the pinned order of its state)
    step(image [B, 1, S, S], prev_label [B, C], state {name: [B, *shape]})
        -> (logits [B, C], novelty logit [B, 1] or None, next state {name: [B, *shape]})

where all-zero state is a fresh learner. `edgemeta train --model path/to/file.py:ClassName` builds it
as `ClassName(num_classes=C, image_size=S)`; `edgemeta.export.export_learner(module, ...)` takes one
already built. `UserLearner` wraps it in the StepLearner shape the rest of edgemeta drives (unroll,
compiled spans, DDP); `check_step_module` turns each way a module can break the contract into one line.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from edgemeta import EdgemetaError
from edgemeta.models.config import ModelConfig
from edgemeta.models.step_learner import StepLearner


def resolve_module_spec(spec: str) -> str:
    """"path/to/file.py:ClassName" with the path made absolute (a checkpoint must find it from anywhere)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        raise EdgemetaError(f"--model {spec!r}: expected a preset name or path/to/file.py:ClassName")
    file = Path(path).expanduser()
    if not file.is_file():
        raise EdgemetaError(f"--model {spec!r}: {file} does not exist")
    return f"{file.resolve()}:{name}"


def load_user_class(spec: str) -> type:
    """The class `spec` ("path/to/file.py:ClassName") names; one-line errors for a file that fails to import."""
    spec = resolve_module_spec(spec)
    path, _, name = spec.rpartition(":")
    module_name = f"edgemeta_user_{Path(path).stem}_{abs(hash(path)) % 10**8}"
    module = sys.modules.get(module_name)
    if module is None:
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        try:
            loader.loader.exec_module(module)
        except Exception as e:  # the user's file: any error it raises is theirs to see, in one line
            raise EdgemetaError(f"{path} failed to import: {type(e).__name__}: {_first_line(e)}") from None
        sys.modules[module_name] = module
    cls = getattr(module, name, None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise EdgemetaError(f"{path} defines no torch.nn.Module subclass named {name}")
    return cls


def check_step_module(net: nn.Module, image_size: int, num_classes: int, batch: int = 2) -> bool:
    """Run one step from zero state and check it keeps the contract; -> whether it has a novelty head.

    Raises one EdgemetaError per kind of mistake: no step or state_shapes, state that is not a
    name -> shape table, a step that fails on contract-shaped inputs, logits, novelty or next state
    of the wrong shape, a state name missing from the next state, non-finite outputs from zero state.
    """
    what = type(net).__name__
    for method in ("step", "state_shapes"):
        if not callable(getattr(net, method, None)):
            raise EdgemetaError(f"{what} has no {method}() method; a step module defines state_shapes() and "
                                "step(image, prev_label, state) -> (logits, novelty or None, next_state)")
    shapes = net.state_shapes()
    if not isinstance(shapes, dict) or not shapes:
        raise EdgemetaError(f"{what}.state_shapes() returned {type(shapes).__name__}; expected a non-empty dict "
                            "{name: shape without the batch axis}")
    for name, shape in shapes.items():
        if not (isinstance(name, str) and name.isidentifier()) or name in ("image", "prev_label", "logits", "novelty"):
            raise EdgemetaError(f"{what}.state_shapes(): state name {name!r} must be an identifier other than "
                                "image, prev_label, logits and novelty")
        if not isinstance(shape, (tuple, list)) or not all(isinstance(d, int) and d >= 1 for d in shape):
            raise EdgemetaError(f"{what}.state_shapes(): state {name} has shape {shape!r}; expected a tuple of "
                                "positive ints without the batch axis")
    device = next(iter(net.parameters()), torch.zeros(())).device
    image = torch.zeros(batch, 1, image_size, image_size, device=device)
    prev = torch.zeros(batch, num_classes, device=device)
    state = {n: torch.zeros((batch, *s), device=device) for n, s in shapes.items()}
    try:
        with torch.no_grad():
            out = net.step(image, prev, state)
    except Exception as e:  # the user's code: say which inputs it was given and what it raised
        raise EdgemetaError(f"{what}.step failed on image [{batch}, 1, {image_size}, {image_size}], prev_label "
                            f"[{batch}, {num_classes}] and zero state: {type(e).__name__}: {_first_line(e)}") from None
    if not (isinstance(out, tuple) and len(out) == 3):
        raise EdgemetaError(f"{what}.step returned {type(out).__name__}; expected a tuple (logits, novelty or None, next_state)")
    logits, novelty, nxt = out
    _check_shape(what, "logits", logits, (batch, num_classes))
    if novelty is not None:
        _check_shape(what, "novelty", novelty, (batch, 1))
    if not isinstance(nxt, dict):
        raise EdgemetaError(f"{what}.step's next state is a {type(nxt).__name__}; expected a dict {{name: tensor}}")
    for name, shape in shapes.items():
        if name not in nxt:
            raise EdgemetaError(f"{what}.step's next state lacks {name!r} (it has {', '.join(map(str, nxt)) or 'nothing'})")
        _check_shape(what, f"next state {name}", nxt[name], (batch, *shape))
    extra = sorted(set(nxt) - set(shapes))
    if extra:
        raise EdgemetaError(f"{what}.step's next state has {', '.join(extra)}, not in state_shapes()")
    for name, t in [("logits", logits), *nxt.items()] + ([("novelty", novelty)] if novelty is not None else []):
        if not bool(torch.isfinite(t).all()):
            raise EdgemetaError(f"{what}: {name} is not finite after one step from zero state; all-zero state must "
                                "be a fresh learner (add epsilons where it divides or normalises)")
    return novelty is not None


class UserLearner(StepLearner):
    """A user's step module (`net`) as a StepLearner: the encoder passes pixels through, the core is
    `net.step`. Its weights live under `net.` in checkpoints."""

    def __init__(self, cfg: ModelConfig, net: nn.Module | None = None):
        nn.Module.__init__(self)
        self.cfg = cfg
        self.encoder = nn.Flatten()  # unroll encodes all T images at once; core gives `net` its images back
        if net is None:
            net = load_user_class(cfg.module)(num_classes=cfg.num_classes, image_size=cfg.image_size)
        self.net = net
        # Export and training read a novelty head from `learner.novelty` (not None: the step has one).
        self.novelty = True if check_step_module(net, cfg.image_size, cfg.num_classes) else None

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: tuple(s) for n, s in self.net.state_shapes().items()}

    def zero_state(self, batch: int, device=None) -> dict[str, torch.Tensor]:
        device = device or next(iter(self.parameters()), torch.zeros(())).device
        return {n: torch.zeros((batch, *s), device=device) for n, s in self.state_shapes().items()}

    def project(self, features: torch.Tensor, prev_label: torch.Tensor) -> torch.Tensor:
        return features

    def core(self, features, x_proj, prev_label, state):
        s = self.cfg.image_size
        return self.net.step(features.reshape(-1, 1, s, s), prev_label, state)


def _check_shape(what: str, name: str, t, expected: tuple[int, ...]) -> None:
    if not isinstance(t, torch.Tensor):
        raise EdgemetaError(f"{what}.step: {name} is a {type(t).__name__}; expected a tensor of shape {list(expected)}")
    if tuple(t.shape) != expected:
        raise EdgemetaError(f"{what}.step: {name} has shape {list(t.shape)}; expected {list(expected)}")
    if t.dtype != torch.float32:
        raise EdgemetaError(f"{what}.step: {name} is {t.dtype}; expected torch.float32")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


__all__ = ["UserLearner", "check_step_module", "load_user_class", "resolve_module_spec"]
