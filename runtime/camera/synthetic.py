"""The synthetic camera: realistic few-shot camera sessions with no camera, and their ground truth.

`synthetic://omniglot?classes=5&shots=10&frames_per_shot=10&gap=2&seed=0&width=640&height=480&data=DIR`

A session shows `classes` held-out (meta-test) Omniglot characters, `shots` times each. A shot is one
drawing of the character held in front of the camera for `frames_per_shot` frames, after `gap` frames of
empty paper (the card being swapped). Shots come in rounds: every round shows each class once, in a fresh
random order, so classes recur in random order and the k-th shot of every class comes before the
(k+1)-th of any. Each shot is a different one of the character's 20 drawings (different people wrote them).
The drawings come from the full data set when one is configured (data=, --data, or the lookup in
runtime/omniglot.py), else from the embedded demo set of 40 meta-test characters (`data_source` says which).

What makes it look like a camera: the raw 105x105 drawing is warped onto the frame with a random
perspective, rotation and scale (changing slowly while the card is held: motion, approach), in a random
pen colour and thickness, on off-white paper with texture and uneven lighting (gradient, vignette),
defocus and motion blur, brightness flicker and sensor noise. Everything follows from `seed`: frame i of
a session is the same on every machine and can be rendered on its own (`render(i)`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.omniglot import DRAWINGS, load_omniglot_or_demo_set, split_classes


@dataclass(frozen=True)
class SyntheticParams:
    classes: int = 5
    shots: int = 10  # shots per class (each a different drawing; at most 20)
    frames_per_shot: int = 10
    gap: int = 2  # frames of empty paper before each shot
    seed: int = 0
    width: int = 640
    height: int = 480
    data: Optional[str] = None  # Omniglot directory; default: the opener's, else the lookup, else the embedded demo set

    def __post_init__(self):
        limits = {"classes": (1, 423), "shots": (1, DRAWINGS), "frames_per_shot": (1, 10_000), "gap": (0, 10_000),
                  "width": (64, 8192), "height": (64, 8192)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise EdgemetaError(f"synthetic://omniglot: {name}={value} is out of range; use {lo}..{hi}")


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one synthetic frame."""

    frame: int  # index in the session
    card: bool  # a character is in view
    label: Optional[int] = None  # class index within the session, 0..classes-1
    omniglot_class: Optional[int] = None  # index in the pinned Omniglot order
    drawing: Optional[int] = None  # which of the character's 20 drawings
    shot: Optional[int] = None  # global shot index
    class_shot: Optional[int] = None  # 0-based: the how-many-th shot of this class
    shot_frame: Optional[int] = None  # frame within the shot, 0..frames_per_shot-1


def parse_params(generator: str, query: dict[str, str]) -> SyntheticParams:
    """The query of a synthetic:// URI -> SyntheticParams, with one-line errors naming the valid keys."""
    if generator != "omniglot":
        raise EdgemetaError(f"unknown synthetic generator {generator!r}; valid: synthetic://omniglot")
    known = {f.name: f for f in fields(SyntheticParams)}
    values: dict[str, object] = {}
    for key, raw in query.items():
        if key not in known:
            raise EdgemetaError(f"synthetic://omniglot: unknown parameter {key!r}; valid: {', '.join(known)}")
        if key == "data":
            values[key] = raw or None
            continue
        try:
            values[key] = int(raw)
        except ValueError:
            raise EdgemetaError(f"synthetic://omniglot: {key}={raw!r} is not an integer") from None
    return SyntheticParams(**values)


def synthetic_opener(data: str | os.PathLike | None = None, dataset=None) -> Callable[[object], "SyntheticCamera"]:
    """VideoSource's `open_backend` for a synthetic:// URI. The session draws from `dataset` when given (an
    Omniglot already loaded), else from the URI's data=, else from `data`, else from the folder the lookup in
    runtime/omniglot.py finds."""

    def open_backend(spec) -> SyntheticCamera:
        params = parse_params(spec.target, spec.params)
        if params.data is None and data is not None:
            params = replace(params, data=str(data))
        return SyntheticCamera(params, dataset=dataset)

    return open_backend


class SessionPlan:
    """What a session shows and when, without rendering or data: classes, drawings, the shot schedule and
    the ground truth of every frame (scripts and tests can plan with it alone)."""

    def __init__(self, params: SyntheticParams, pool: np.ndarray | None = None):
        """pool: the meta-test classes to choose from (pinned indices); default all 423."""
        self.params = p = params
        rng = np.random.default_rng([p.seed, 0])
        pool = split_classes()["test"] if pool is None else pool
        self.omniglot_classes = np.sort(rng.choice(pool, size=p.classes, replace=False))
        self.drawing_of = np.stack([rng.permutation(DRAWINGS)[: p.shots] for _ in range(p.classes)])
        self.shot_labels = self._schedule(rng)
        self.shot_len = p.gap + p.frames_per_shot
        self.num_frames = len(self.shot_labels) * self.shot_len
        self.middle_frame = p.frames_per_shot // 2

    def _schedule(self, rng) -> np.ndarray:
        """Labels of the shots in order: rounds of a random permutation, no class twice in a row."""
        order: list[int] = []
        for _ in range(self.params.shots):
            perm = list(rng.permutation(self.params.classes))
            if order and len(perm) > 1 and perm[0] == order[-1]:
                perm[0], perm[1] = perm[1], perm[0]
            order.extend(int(c) for c in perm)
        return np.array(order, dtype=np.int64)

    def __len__(self) -> int:
        return self.num_frames

    def truth_of(self, i: int) -> FrameTruth:
        shot, k = divmod(i, self.shot_len)
        if k < self.params.gap:
            return FrameTruth(frame=i, card=False)
        label = int(self.shot_labels[shot])
        class_shot = int(np.count_nonzero(self.shot_labels[:shot] == label))
        return FrameTruth(
            frame=i, card=True, label=label, omniglot_class=int(self.omniglot_classes[label]),
            drawing=int(self.drawing_of[label, class_shot]), shot=shot, class_shot=class_shot,
            shot_frame=k - self.params.gap,
        )

    def truths(self) -> list[FrameTruth]:
        return [self.truth_of(i) for i in range(self.num_frames)]

    def is_middle(self, truth: FrameTruth) -> bool:
        """The frame a person would teach: the middle of the shot, when the card is steady."""
        return truth.card and truth.shot_frame == self.middle_frame


class SyntheticCamera(SessionPlan):
    """A finite frame source (the VideoSource backend for synthetic://): read() -> BGR frame or None at the end.

    After each read(), `truth` is the FrameTruth of the frame returned.
    """

    def __init__(self, params: SyntheticParams, dataset=None):
        p = params
        if dataset is None:
            try:
                dataset = load_omniglot_or_demo_set(p.data)
            except EdgemetaError as e:
                raise EdgemetaError(f"synthetic://omniglot needs the Omniglot dataset: {e}") from None
        pool = dataset.meta_test_classes()
        if p.classes > len(pool):
            raise EdgemetaError(f"synthetic://omniglot: classes={p.classes}, but {dataset.source} has {len(pool)}: ask "
                                f"for fewer, or get all 423 with `edgemeta data download DIR` and pass --data DIR")
        super().__init__(params, pool)
        self.data_source = dataset.source  # which drawings: a data folder, or the embedded demo set
        self.class_names = tuple(dataset.name(c).split("/", 1)[1] for c in self.omniglot_classes)
        self._paper_masks = dataset.drawings(self.omniglot_classes)  # (classes, 20, 105, 105), 1 = paper
        self._paper = _paper_texture(np.random.default_rng([p.seed, 1]), p.height, p.width)
        self._noise = np.random.default_rng([p.seed, 2]).standard_normal((4, p.height, p.width, 3), np.float32)
        self._shot_cache: tuple[int, dict] | None = None
        self.next = 0
        self.truth: FrameTruth | None = None

    def read(self) -> Optional[np.ndarray]:
        if self.next >= self.num_frames:
            return None
        frame, self.truth = self.render(self.next)
        self.next += 1
        return frame

    def close(self) -> None:
        pass

    # --- rendering ---

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        if not 0 <= i < self.num_frames:
            raise IndexError(f"frame {i} outside the session's {self.num_frames} frames")
        p = self.params
        truth = self.truth_of(i)
        shot, k = divmod(i, self.shot_len)
        look = self._shot_look(shot)
        rng = np.random.default_rng([p.seed, 3, i])
        out = look["paper"].copy()
        if truth.card:
            self._draw_card(out, look, truth, rng)
        # Sensor noise: one of a few pre-drawn fields, flipped at random (drawing fresh noise per frame
        # costs more than everything else), then auto-exposure flicker and the uint8 conversion.
        noise = self._noise[rng.integers(len(self._noise))]
        flip = int(rng.integers(-1, 3))
        if flip < 2:
            noise = cv2.flip(noise, flip)
        out = cv2.scaleAdd(noise, float(look["noise"]), out)
        return cv2.convertScaleAbs(out, alpha=1.0 + rng.normal(0.0, 0.015)), truth

    def _shot_look(self, shot: int) -> dict:
        """Everything fixed during one shot: lighting, paper and ink colour, pose and its motion."""
        if self._shot_cache and self._shot_cache[0] == shot:
            return self._shot_cache[1]
        p = self.params
        rng = np.random.default_rng([p.seed, 4, shot])
        light = _lighting(rng, p.height, p.width)
        tint = np.array([rng.uniform(215, 240), rng.uniform(225, 248), rng.uniform(230, 255)], np.float32)
        paper = (self._paper * light)[..., None] * tint  # (H, W, 3)
        kind = rng.choice(3, p=[0.45, 0.35, 0.2])  # blue pen, black marker, pencil
        ink = {0: (rng.uniform(90, 150), rng.uniform(30, 70), rng.uniform(15, 50)),
               1: (rng.uniform(15, 50),) * 3,
               2: (rng.uniform(70, 110),) * 3}[int(kind)]
        side = min(p.height, p.width)
        look = {
            "paper": paper,
            "ink": light[..., None] * np.array(ink, np.float32),  # the pen's colour under this light
            "opacity": rng.uniform(0.75, 0.95) if kind == 2 else rng.uniform(0.9, 1.0),
            "noise": rng.uniform(2.0, 7.0),
            "thick": int(rng.choice([0, 0, 1, 2])),  # pen thickness: dilation in raw pixels
            "blur": rng.uniform(0.3, 1.4),  # defocus sigma in frame pixels
            # The person aims the character at the middle of the view (the demo's region of interest is
            # a centred square of 60% of the shorter side), its longer side 20-36% of the shorter side.
            "size": rng.uniform(0.2, 0.36) * side,
            "centre": np.array([p.width / 2, p.height / 2]) + np.clip(rng.normal(0, 0.02 * side, 2), -0.05 * side, 0.05 * side),
            "angle": rng.uniform(-12, 12),
            "tilt": rng.normal(0, 0.04, (4, 2)),  # perspective: corner offsets, fraction of the size
            "velocity": np.clip(rng.normal(0, 0.002 * side, 2), -0.004 * side, 0.004 * side),  # px per frame
            "spin": rng.normal(0, 0.25),  # degrees per frame
            "zoom": rng.normal(0, 0.004),  # scale change per frame
            "enter": rng.uniform(3, 12),  # motion blur length (px) on the first frame, as the card arrives
        }
        self._shot_cache = (shot, look)
        return look

    def _draw_card(self, out: np.ndarray, look: dict, truth: FrameTruth, rng) -> None:
        t = truth.shot_frame
        mask = self._paper_masks[truth.label, truth.drawing]
        ink = (1 - mask).astype(np.float32)
        if look["thick"]:
            ink = cv2.dilate(ink, np.ones((look["thick"] + 1,) * 2, np.uint8))
        size = look["size"] * (1 + look["zoom"] * t)
        centre = look["centre"] + look["velocity"] * t + rng.normal(0, 0.6, 2)
        angle = math.radians(look["angle"] + look["spin"] * t)
        corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) + look["tilt"]
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        dst = (corners @ rot.T) * size + centre
        # Omniglot drawings sit anywhere in their 105x105 box: map the character's own box (a square
        # around its ink) to the pose, so that what is centred and sized is the character.
        ys, xs = np.nonzero(ink)
        cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
        half = max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) / 2
        src = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]],
                       np.float32)
        H = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
        # Composite only inside the character's bounding box (+ room for blur): most of the frame is paper.
        h, w = out.shape[:2]
        box = cv2.perspectiveTransform(np.array([[[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.max() + 1, ys.max() + 1],
                                                  [xs.min(), ys.max() + 1]]], np.float32), H)[0]
        x0, y0 = np.floor(box.min(0)).astype(int) - 12
        x1, y1 = np.ceil(box.max(0)).astype(int) + 12
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        H = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ H
        alpha = cv2.warpPerspective(ink, H, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = cv2.GaussianBlur(alpha, (0, 0), look["blur"])
        if t == 0:  # the card is still moving into place
            alpha = _motion_blur(alpha, look["enter"], math.degrees(math.atan2(*look["velocity"][::-1])))
        alpha *= look["opacity"]
        out[y0:y1, x0:x1] = cv2.blendLinear(out[y0:y1, x0:x1], look["ink"][y0:y1, x0:x1], 1.0 - alpha, alpha)


def _paper_texture(rng, h: int, w: int) -> np.ndarray:
    """Paper fibres and unevenness: low-frequency blotches plus fine grain, around 1.0."""
    coarse = cv2.resize(rng.normal(0, 1, (h // 24 + 2, w // 24 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    return 1.0 + 0.012 * coarse + 0.01 * fine


def _lighting(rng, h: int, w: int) -> np.ndarray:
    """Uneven lighting: a gradient across the frame, a vignette and a soft shadow, in about [0.55, 1.05]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (x - w / 2) / max(h, w)
    y = (y - h / 2) / max(h, w)
    phi = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.05, 0.3) * (x * np.cos(phi) + y * np.sin(phi))
    light -= rng.uniform(0.1, 0.4) * (x * x + y * y)
    if rng.random() < 0.5:  # a soft shadow (a hand, the phone) over part of the paper
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        light -= rng.uniform(0.1, 0.25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(0.1, 0.25) ** 2))
    return np.clip(light, 0.4, 1.1).astype(np.float32)


def _motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    n = max(3, int(round(length)) | 1)
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (n, n))
    return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
