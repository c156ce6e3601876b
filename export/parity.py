"""Episode parity: the exported step, driven step by step with its state carried, must compute what
the PyTorch learner computes.

Every backend (PyTorch, ONNX Runtime, a TensorRT engine) is wrapped as a `step(feeds) -> outputs`
function over the contract's names, and the same loop drives them all, so the comparison covers the
state hand-over between steps too, not just a single call.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgemeta.runtime import contract
from edgemeta.runtime.softmax import softmax

StepFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

MIN_STEPS = 50
MIN_BATCH = 4


@dataclass(frozen=True)
class Tolerance:
    """What "the same" means for a backend; a None bound is reported, not gated.

    logits: absolute after scaling by max(1, max |reference logits|): a confident learner's logits
    reach tens, and float32 rounding over a 100-step episode scales with them. novelty (a
    probability): absolute, with the logits' bound. probabilities: on softmax(logits) and novelty.
    state: absolute after scaling by max(1, max |reference|) of each tensor, because memory and usage
    grow over an episode and rounding grows with them.
    """

    logits: float | None
    probabilities: float | None
    state: float | None
    exact_predictions: bool
    min_agreement: float | None = None  # least fraction of predictions equal to the reference's

    def describe(self) -> str:
        parts = []
        if self.logits is not None:
            parts.append(f"|logits diff| <= {self.logits:g} x max(1, max|ref|)")
        if self.probabilities is not None:
            parts.append(f"|probability diff| <= {self.probabilities:g} (so a prediction can only differ where the "
                         f"reference's top two are within {2 * self.probabilities:g})")
        if self.state is not None:
            parts.append(f"|state diff| <= {self.state:g} x max(1, max|ref|)")
        if self.exact_predictions:
            parts.append("identical predictions")
        if self.min_agreement is not None:
            parts.append(f">= {self.min_agreement:.0%} of predictions identical")
        return ", ".join(parts)


FP32 = Tolerance(logits=1e-4, probabilities=None, state=1e-4, exact_predictions=True)
# float32 with the state carried by the backend itself (see run_episodes): what the learner says must
# stay, but a rare least-used-slot near-tie may legitimately send the states apart.
FP32_CARRIED = Tolerance(logits=None, probabilities=None, state=None, exact_predictions=False, min_agreement=0.99)
# float16 keeps ~3 significant digits, too few for MANN's 1e-5 usage tie-breaks: the least-used slot
# can flip between two near-equal slots, after which the memory holds the same content in another row
# and the state tensors differ outright. What must stay is what the learner says: its probabilities.
FP16 = Tolerance(logits=None, probabilities=0.05, state=None, exact_predictions=False)
# int8 weights round to 1/127 of each matrix's largest weight: single probabilities can move by tenths
# where the learner is unsure, so what is gated is how often it says the same thing.
INT8 = Tolerance(logits=None, probabilities=None, state=None, exact_predictions=False, min_agreement=0.95)


@dataclass
class EpisodeInputs:
    images: np.ndarray  # (B, T, 1, S, S) float32, ink = 1.0; an RGB learner's (B, T, 3, S, S) in [0, 1]
    labels: np.ndarray  # (B, T) int64
    prev_label: np.ndarray  # (B, T, C) float32: one-hot of labels[:, t-1], zeros at t = 0
    source: str  # where the images came from, for the report


def episode_inputs(num_classes: int, image_size: int, batch: int, steps: int, data=None, seed: int = 0,
                   channels: int = 1) -> EpisodeInputs:
    """Episodes over all C labels: real meta-test drawings when Omniglot is available, else synthetic ones.

    data: an Omniglot directory, or None for $EDGEMETA_DATA; synthetic drawings when neither is set.
    channels 3: an RGB learner's episodes, camera views of made-up coloured things (data is not used).
    """
    from edgemeta.data.episodes import EpisodeSampler
    from edgemeta.data.tasks import is_omniglot

    rng = np.random.default_rng(seed)
    if channels == 3:
        return _camera_episodes(num_classes, image_size, batch, steps, rng)
    data = data if data is not None else os.environ.get("EDGEMETA_DATA")
    if data and not is_omniglot(data):  # an image folder: its meta-test classes
        images, source = _folder_classes(data, num_classes, image_size, rng), f"meta-test images of {data}"
    elif data:
        images, source = _omniglot_classes(data, num_classes, image_size, rng), "Omniglot meta-test drawings"
    else:
        images, source = _synthetic_classes(num_classes, image_size, rng), "synthetic drawings (no Omniglot given)"
    episodes = EpisodeSampler(images, num_classes, num_classes, steps=steps).sample(batch, rng)
    images, prev = episodes.step_inputs(num_classes)
    return EpisodeInputs(images, episodes.labels, prev, source)


def _camera_episodes(ways: int, size: int, batch: int, steps: int, rng, views: int = 20) -> EpisodeInputs:
    """RGB episodes: the sampler draws (class, view) indices, which pick camera views (B, T, 3, S, S)."""
    from edgemeta.data.camera_augment import shape_picture, view_classes
    from edgemeta.data.episodes import EpisodeSampler

    rgb = view_classes([shape_picture(rng) for _ in range(ways)], size, views, rng).reshape(ways * views, 3, size, size)
    index = np.arange(ways * views, dtype=np.float32).reshape(ways, views, 1, 1)
    episodes = EpisodeSampler(index, ways, ways, steps=steps).sample(batch, rng)
    _, prev = episodes.step_inputs(ways)
    images = rgb[episodes.images[..., 0, 0].astype(np.int64)]
    return EpisodeInputs(images, episodes.labels, prev, "camera views of made-up coloured things (RGB)")


def _omniglot_classes(data, ways: int, size: int, rng) -> np.ndarray:
    """(ways, 20, S, S): drawings of random meta-test classes through the pinned preprocessing."""
    from edgemeta.runtime.omniglot import DRAWINGS, RAW_SIZE, load_omniglot, split_classes
    from edgemeta.runtime.preprocess import omniglot_batch_to_input

    classes = np.sort(rng.choice(split_classes()["test"], size=ways, replace=False))
    paper = load_omniglot(data).drawings(classes).reshape(-1, RAW_SIZE, RAW_SIZE)
    return omniglot_batch_to_input(paper, size).reshape(ways, DRAWINGS, size, size)


def _folder_classes(data, ways: int, size: int, rng) -> np.ndarray:
    """(ways, n, S, S): images of random meta-test classes of an image folder (as many as it has, cycled)."""
    from edgemeta.data.image_folder import load_image_folder

    folder = load_image_folder(data)
    test = folder.split()["test"]
    names = [test[i % len(test)] for i in rng.permutation(max(ways, len(test)))[:ways]]
    return folder.class_images(names, size)


def _synthetic_classes(ways: int, size: int, rng) -> np.ndarray:
    """(ways, 20, S, S): a random sparse ink pattern per class, each drawing with some pixels flipped."""
    prototypes = rng.random((ways, 1, size, size)) < 0.2
    flips = rng.random((ways, 20, size, size)) < 0.05
    return (prototypes ^ flips).astype(np.float32)


@dataclass
class Trace:
    logits: np.ndarray  # (B, T, C)
    novelty: np.ndarray | None  # (B, T, 1)
    state: dict[str, np.ndarray]  # final state after T steps
    step_states: list[dict[str, np.ndarray]] | None = None  # the state fed into each step (record=True)


def run_episodes(step: StepFn, state_shapes: dict[str, tuple[int, ...]], inputs: EpisodeInputs,
                 record: bool = False, forced_by: Trace | None = None) -> Trace:
    """Drive `step` through the episodes from a fresh (all-zero) state, carrying `<s>_out` into `<s>`.

    forced_by: feed each step the state `forced_by` fed its step (a reference run with record=True)
    instead of this backend's own: the step itself is compared, one call at a time. Carried state is
    chaotic where it makes a discrete choice: LRUA writes the least-used slot, and when two usages are
    closer than float32 rounding (seen: 9e-8 apart after 93 steps) two exact implementations may pick
    different slots, and their states part for good although each step agrees to 1e-6.
    """
    batch, steps = inputs.prev_label.shape[:2]
    state = {n: np.zeros((batch, *s), dtype=np.float32) for n, s in state_shapes.items()}
    logits, novelty, fed = [], [], []
    for t in range(steps):
        if forced_by is not None:
            state = forced_by.step_states[t]
        if record:
            fed.append(state)
        out = step({contract.IMAGE: inputs.images[:, t], contract.PREV_LABEL: inputs.prev_label[:, t], **state})
        logits.append(np.asarray(out[contract.LOGITS], dtype=np.float32))
        if contract.NOVELTY in out:
            novelty.append(np.asarray(out[contract.NOVELTY], dtype=np.float32))
        state = {n: np.asarray(out[contract.state_out(n)], dtype=np.float32) for n in state_shapes}
    return Trace(np.stack(logits, 1), np.stack(novelty, 1) if novelty else None, state, fed if record else None)


def compare(reference: Trace, candidate: Trace, tol: Tolerance) -> dict:
    """Worst differences over every step (logits, probabilities, novelty) and the final state, and the verdict."""
    logits_diff = float(np.abs(reference.logits - candidate.logits).max())
    prob_diff = float(np.abs(softmax(reference.logits) - softmax(candidate.logits)).max())
    novelty_diff = None
    if reference.novelty is not None:
        novelty_diff = float(np.abs(reference.novelty - candidate.novelty).max()) if candidate.novelty is not None else float("inf")
    state_diff, state_bound = {}, {}
    for name, ref in reference.state.items():
        state_diff[name] = float(np.abs(ref - candidate.state[name]).max())
        state_bound[name] = None if tol.state is None else tol.state * max(1.0, float(np.abs(ref).max()))
    mismatches = int((reference.logits.argmax(-1) != candidate.logits.argmax(-1)).sum())
    total = int(reference.logits.shape[0] * reference.logits.shape[1])

    failures = []
    logits_bound = None if tol.logits is None else tol.logits * max(1.0, float(np.abs(reference.logits).max()))
    for what, diff, bound in (("logits", logits_diff, logits_bound), ("probabilities", prob_diff, tol.probabilities),
                              ("novelty", novelty_diff, tol.logits if tol.logits is not None else tol.probabilities)):
        if diff is not None and bound is not None and not diff <= bound:
            failures.append(f"{what} differ by {diff:.2e} > {bound:g}")
    failures += [f"state {n} differs by {state_diff[n]:.2e} > {state_bound[n]:.2e}"
                 for n in state_diff if state_bound[n] is not None and not state_diff[n] <= state_bound[n]]
    if tol.exact_predictions and mismatches:
        failures.append(f"{mismatches}/{total} predictions differ")
    if tol.min_agreement is not None and (total - mismatches) < tol.min_agreement * total:
        failures.append(f"only {total - mismatches}/{total} predictions identical (< {tol.min_agreement:.0%})")
    return {
        "episodes": int(reference.logits.shape[0]),
        "steps": int(reference.logits.shape[1]),
        "logits_max_abs": logits_diff,
        "logits_bound": logits_bound,
        "probabilities_max_abs": prob_diff,
        "novelty_max_abs": novelty_diff,
        "state_max_abs": state_diff,
        "state_bound": state_bound,
        "prediction_mismatches": mismatches,
        "predictions": total,
        "tolerance": tol.describe(),
        "passed": not failures,
        "failures": failures,
    }


def format_parity(backend: str, result: dict) -> str:
    diff, bound = result["state_max_abs"], result["state_bound"]
    worst = max(diff, key=lambda n: diff[n] / (bound[n] or 1.0))  # the state tensor closest to its tolerance
    state_bound = f", bound {bound[worst]:.1e}" if bound[worst] is not None else ", not gated"
    novelty = "" if result["novelty_max_abs"] is None else f", novelty {result['novelty_max_abs']:.1e}"
    verdict = "ok" if result["passed"] else "FAILED: " + "; ".join(result["failures"])
    return (
        f"parity {backend} vs PyTorch, {result['episodes']} episodes x {result['steps']} steps: "
        f"max |logits diff| {result['logits_max_abs']:.1e} (probabilities {result['probabilities_max_abs']:.1e}{novelty}), "
        f"max |state diff| {diff[worst]:.1e} ({worst}{state_bound}), "
        f"predictions {result['predictions'] - result['prediction_mismatches']}/{result['predictions']} identical: {verdict}"
    )


# --- backends ------------------------------------------------------------------------------------
def torch_step(learner) -> StepFn:
    """The reference: the learner's own `step` as training runs it (the ONNX graph of a MANN is traced
    from its deployment rewrite, export/mann_graph.py, which this check proves equal)."""
    import torch

    from edgemeta.export.onnx_export import StepGraph, io_names

    graph = StepGraph(learner.eval().cpu())
    _, outputs = io_names(learner)

    def step(feeds):
        with torch.no_grad():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in [contract.IMAGE, contract.PREV_LABEL, *graph.names]]
            return {name: t.numpy() for name, t in zip(outputs, graph(*args))}

    return step


def onnxruntime_step(model_path, providers=("CPUExecutionProvider",), threads: int = 1) -> StepFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # the fp16 variant warns about inserted casts; not news here
    session = ort.InferenceSession(str(model_path), options, providers=list(providers))
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}

    def step(feeds):
        return dict(zip(names, session.run(names, {k: v for k, v in feeds.items() if k in wanted})))

    return step

