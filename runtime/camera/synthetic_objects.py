"""`synthetic://objects?classes=5&shots=10&frames_per_shot=10&gap=2&seed=0&width=640&height=480`: things seen by a
webcam, for the `objects` learner with no camera.

Each class is one thing (a picture from runtime/demo_set/objects-demo.npz: ten icons of things from the Tango icon
theme, public domain), held up in shots scheduled as synthetic://omniglot schedules its cards (runtime/camera/
synthetic.py SessionPlan: rounds of the classes, empty desk frames between shots). Every shot changes the view:
distance, position, rotation and tilt (perspective), the desk's colour and light, a colour cast, focus blur and
sensor noise; within a shot the hand trembles and the exposure flickers from frame to frame.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.synthetic import FrameTruth, RenderedSession

GENERATOR = "objects"
PICTURES = Path(__file__).resolve().parents[1] / "demo_set" / "objects-demo.npz"
SOURCE = "Tango icon theme icons of things (public domain), runtime/demo_set/objects-demo.npz"
UPSCALED = 128  # the picture's side before it is warped into the frame: smooth edges at any distance


@dataclass(frozen=True)
class ObjectsParams:
    classes: int = 5
    shots: int = 10
    frames_per_shot: int = 10
    gap: int = 2
    seed: int = 0
    width: int = 640
    height: int = 480


LIMITS = {"classes": (1, 10), "shots": (1, 1000), "frames_per_shot": (1, 1000), "gap": (0, 1000),
          "seed": (0, 2**63 - 1), "width": (64, 8192), "height": (64, 8192)}


def parse_objects_params(query: dict[str, str]) -> ObjectsParams:
    """synthetic://objects query parameters -> ObjectsParams; a one-line error for an unknown or bad one."""
    values = {}
    for key, raw in query.items():
        if key not in LIMITS:
            raise EdgemetaError(f"synthetic://objects: unknown parameter {key!r}; valid: {', '.join(LIMITS)}")
        if not raw.isascii() or not raw.isdigit():
            raise EdgemetaError(f"synthetic://objects: {key}={raw!r} is not a non-negative integer")
        lo, hi = LIMITS[key]
        value = int(raw)
        if not lo <= value <= hi:
            raise EdgemetaError(f"synthetic://objects: {key}={value} is out of range; use {lo}..{hi}")
        values[key] = value
    return ObjectsParams(**values)


class ObjectsCamera(RenderedSession):
    """A finite frame source (the VideoSource backend for synthetic://objects): read() -> BGR frame or None."""

    def __init__(self, params: ObjectsParams):
        with np.load(PICTURES) as data:
            pictures, names = data["pictures"], [str(n) for n in data["names"]]
        super().__init__(params, np.arange(len(pictures)))
        self.objects = self.omniglot_classes  # the plan picks picture indices from the pool
        self.data_source = SOURCE
        self.class_names = tuple(names[k] for k in self.objects)
        self._pictures = [_premultiplied(cv2.resize(pictures[k], (UPSCALED, UPSCALED), interpolation=cv2.INTER_CUBIC))
                          for k in self.objects]
        p = params
        self._noise = np.random.default_rng([p.seed, 2]).standard_normal((2, p.height, p.width, 3), np.float32)
        self._shot_cache: tuple[int, dict] | None = None
        self.next = 0
        self.truth: FrameTruth | None = None

    def truth_of(self, i: int) -> FrameTruth:
        return replace(super().truth_of(i), omniglot_class=None, drawing=None)

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        self.check_index(i)
        truth = self.truth_of(i)
        look = self._shot_look(i // self.shot_len)
        rng = np.random.default_rng([self.params.seed, 3, i])
        out = look["desk"].copy()  # uint8: the whole-frame work stays in cheap saturating uint8 operations
        if truth.card:
            colour, alpha = self._pictures[truth.label]
            tremor = np.eye(3, dtype=np.float32)
            tremor[:2, 2] = rng.normal(0, 1.5, 2)  # the hand's tremor, in frame pixels
            x0, y0, x1, y1 = look["box"]  # only the thing's box is warped and composited: a fraction of the frame
            shift = np.eye(3, dtype=np.float32)
            shift[:2, 2] = (-x0, -y0)
            H = shift @ tremor @ look["H"]
            size = (x1 - x0, y1 - y0)
            # Premultiplied colour and its alpha warped alike, then composited: out = out * (1 - a) + colour * light.
            a = cv2.warpPerspective(alpha, H, size, flags=cv2.INTER_LINEAR)
            c = cv2.warpPerspective(colour, H, size, flags=cv2.INTER_LINEAR)
            box = out[y0:y1, x0:x1].astype(np.float32)
            box = box * (1.0 - a[..., None]) + c * look["light"]
            if look["blur"] > 0:
                box = cv2.GaussianBlur(box, (0, 0), look["blur"])
            out[y0:y1, x0:x1] = cv2.convertScaleAbs(box)
        # Sensor noise: one of the shot's pre-drawn fields (fresh noise per frame costs more than the rest), then
        # the auto-exposure's flicker.
        up, down = look["noise"][rng.integers(len(look["noise"]))]
        out = cv2.subtract(cv2.add(out, up), down)
        return cv2.convertScaleAbs(out, alpha=1.0 + rng.normal(0.0, 0.02)), truth

    def _shot_look(self, shot: int) -> dict:
        """Everything fixed during one shot: the desk, the light, the thing's pose, blur and noise."""
        if self._shot_cache and self._shot_cache[0] == shot:
            return self._shot_cache[1]
        p = self.params
        rng = np.random.default_rng([p.seed, 4, shot])
        w, h = p.width, p.height
        desk_colour = rng.uniform(60, 200, 3).astype(np.float32)
        ramp = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.25), w, dtype=np.float32)
        if rng.random() < 0.5:
            ramp = ramp[::-1]
        desk = cv2.convertScaleAbs(np.broadcast_to(ramp[None, :, None] * desk_colour, (h, w, 3)))
        light = (rng.uniform(0.7, 1.2) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)  # brightness and colour cast
        side = rng.uniform(0.3, 0.55) * min(w, h)  # the distance
        centre = np.array([w / 2, h / 2]) + rng.uniform(-0.08, 0.08, 2) * np.array([w, h])
        angle = np.deg2rad(rng.uniform(-20, 20))
        corners = np.float32([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2
        tilt = rng.uniform(-0.12, 0.12, 2) * side  # the thing's plane turns away: one side shorter
        corners[:, 0] *= 1 + tilt[0] / side * corners[:, 1] / (side / 2)
        corners[:, 1] *= 1 + tilt[1] / side * corners[:, 0] / (side / 2)
        rot = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        dst = (corners @ rot.T + centre).astype(np.float32)
        src = np.float32([[0, 0], [UPSCALED, 0], [UPSCALED, UPSCALED], [0, UPSCALED]])
        margin = 8  # the tremor and the blur reach a few pixels beyond the thing's corners
        (bx0, by0), (bx1, by1) = np.floor(dst.min(0)) - margin, np.ceil(dst.max(0)) + margin
        box = (max(int(bx0), 0), max(int(by0), 0), min(int(bx1), w), min(int(by1), h))
        look = {"desk": desk, "light": light, "H": cv2.getPerspectiveTransform(src, dst).astype(np.float32), "box": box,
                "blur": float(rng.choice([0.0, 0.0, rng.uniform(0.5, 1.5)])),  # in focus two shots in three
                "noise": [_noise_pair(field, float(rng.uniform(2.0, 6.0))) for field in self._noise]}
        self._shot_cache = (shot, look)
        return look


def _noise_pair(field: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise `field` * sigma as two uint8 images, what to add and what to subtract."""
    scaled = field * sigma
    return cv2.convertScaleAbs(np.maximum(scaled, 0)), cv2.convertScaleAbs(np.maximum(-scaled, 0))


def _premultiplied(bgra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BGRA uint8 -> (colour times alpha, float32 BGR in 0..255; alpha in [0, 1])."""
    alpha = bgra[..., 3].astype(np.float32) / 255.0
    return bgra[..., :3].astype(np.float32) * alpha[..., None], alpha


def objects_camera(query: dict[str, str]) -> ObjectsCamera:
    return ObjectsCamera(parse_objects_params(query))
