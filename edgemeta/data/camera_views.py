"""Camera views of Omniglot drawings: what the symbol front end makes of a drawing held up to a webcam.

A learner meta-trained on the clean drawings meets something else in the live demo: the drawing on a card seen
at a slant, turned a little, near or far, drawn with another pen, out of focus, thresholded again by the front
end and normalised by it (runtime/camera/frames.py). `camera_view` makes that from a 105 x 105 drawing:

1. pen: strokes thickened or thinned by a few pixels (at Omniglot's scale);
2. pose: one homography, a tilt of the card (a 3-D rotation about a random axis in its plane, seen through
   a pinhole camera), an in-plane rotation, and the distance (how many working pixels the drawing spans);
3. optics: a Gaussian blur (focus) and sensor noise, on a grey page of random brightness and ink contrast;
4. the front end itself, `frame_to_input` with the whole view as its region: it flattens the lighting,
   thresholds (Otsu), drops specks, crops to the ink's box, pads it to a square at Omniglot's fill, matches
   the stroke width and area-resizes: the very code the demo runs, so the training views and the camera meet
   in one normalisation.

It is generic on purpose: no part of the synthetic camera (runtime/camera/synthetic.py) is used, since the
benchmarks measure with that renderer; training on it would teach the test, not the camera.
Numpy and OpenCV only; every random draw comes from the caller's generator.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.frames import OMNIGLOT_SIZE, frame_to_input
from edgemeta.runtime.preprocess import omniglot_to_input

_PEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


@dataclass(frozen=True)
class CameraViewParams:
    """How far a view may stray from the drawing. Every draw is uniform in the range given."""

    tilt: float = 25.0  # the card's tilt away from facing the camera, at most (degrees)
    rotation: float = 15.0  # in-plane rotation, at most, either way (degrees)
    span: tuple[float, float] = (40.0, 130.0)  # the drawing's 105-pixel square seen across this many working pixels
    pen: int = 1  # strokes thickened or thinned by up to this many 3x3 steps (about 2 px each at 105 x 105)
    blur: float = 1.2  # focus blur's sigma, at most (working pixels)
    noise: float = 0.04  # sensor noise's standard deviation, at most (fraction of full scale)
    contrast: tuple[float, float] = (0.45, 0.85)  # ink darkness relative to the paper
    distance: tuple[float, float] = (2.5, 8.0)  # camera distance in half card widths: lower, stronger perspective

    def __post_init__(self) -> None:
        lo, hi = self.span
        if not (0 <= self.tilt < 80 and 0 <= self.rotation <= 180 and 8 <= lo <= hi and self.pen >= 0
                and self.blur >= 0 and self.noise >= 0 and 0 < self.contrast[0] <= self.contrast[1] <= 1
                and 1 < self.distance[0] <= self.distance[1]):
            raise EdgemetaError(f"camera view parameters out of range: {asdict(self)}")


def _pose(rng: np.random.Generator, p: CameraViewParams, side: float) -> np.ndarray:
    """The 4 corners of the drawing's square in the view (pixels, centred in a canvas of `side` / 0.7): a tilted
    card, turned in its plane, through a pinhole camera."""
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    turn = np.deg2rad(rng.uniform(-p.rotation, p.rotation))
    c, s = np.cos(turn), np.sin(turn)
    pts = half @ np.array([[c, -s], [s, c]]).T
    tilt, axis = np.deg2rad(rng.uniform(0, p.tilt)), rng.uniform(0, np.pi)
    u = np.array([np.cos(axis), np.sin(axis), 0.0])  # the tilt's axis, in the card's plane
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    rot = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * k @ k  # Rodrigues
    xyz = np.column_stack([pts, np.zeros(4)]) @ rot.T
    dist = rng.uniform(*p.distance)
    uv = xyz[:, :2] * dist / (dist + xyz[:, 2:3])  # pinhole; unit scale where the card faces the camera
    uv *= side / 2 / np.abs(uv).max()  # the distance: the square's extent in working pixels
    return (uv + side / 2 / 0.7).astype(np.float32)


def camera_view(drawing: np.ndarray, rng: np.random.Generator, size: int,
                params: CameraViewParams = CameraViewParams()) -> np.ndarray:
    """One camera view of an Omniglot drawing (105 x 105, paper = 1, ink = 0, as the data set holds it), as
    the learner's (size, size) float32 input (ink = 1.0). Where the front end finds no character in the view
    (the ink vanished, say), the drawing's clean input instead."""
    drawing = np.asarray(drawing)
    if drawing.shape != (OMNIGLOT_SIZE, OMNIGLOT_SIZE):
        raise EdgemetaError(f"drawing: received shape {drawing.shape}; expected ({OMNIGLOT_SIZE}, {OMNIGLOT_SIZE})")
    ink = (drawing == 0).astype(np.uint8)
    steps = int(rng.integers(-params.pen, params.pen + 1))
    if steps > 0:
        ink = cv2.dilate(ink, _PEN, iterations=steps)
    elif steps < 0:
        thinner = cv2.erode(ink, _PEN, iterations=-steps)
        ink = thinner if thinner.sum() > 0.3 * ink.sum() else ink  # a thin pen, never an erased character

    side = rng.uniform(*params.span)
    canvas = int(np.ceil(side / 0.7))  # paper all round: the front end drops ink that touches the border
    corners = np.array([[0, 0], [OMNIGLOT_SIZE, 0], [OMNIGLOT_SIZE, OMNIGLOT_SIZE], [0, OMNIGLOT_SIZE]], np.float32)
    m = cv2.getPerspectiveTransform(corners, _pose(rng, params, side))
    # Shrinking: INTER_AREA-like coverage comes from the blur below plus linear sampling of a pre-blurred map.
    src = ink.astype(np.float32)
    shrink = side / OMNIGLOT_SIZE
    if shrink < 0.7:
        src = cv2.GaussianBlur(src, (0, 0), 0.5 / shrink)  # anti-aliasing: a camera's pixel averages its area
    view = cv2.warpPerspective(src, m, (canvas, canvas), flags=cv2.INTER_LINEAR, borderValue=0.0)
    sigma = rng.uniform(0, params.blur)
    if sigma > 0.2:
        view = cv2.GaussianBlur(view, (0, 0), sigma)

    paper = rng.uniform(150, 240)
    dark = paper * (1 - rng.uniform(*params.contrast))
    gray = paper - (paper - dark) * view + rng.normal(0, rng.uniform(0, params.noise) * 255, view.shape)
    gray = np.clip(gray + 0.5, 0, 255).astype(np.uint8)
    found = frame_to_input(gray, size, roi=(0, 0, canvas, canvas))  # with the demo's own options
    return found.image if found.found else omniglot_to_input(drawing, size)


def camera_views(drawings: np.ndarray, rng: np.random.Generator, size: int,
                 params: CameraViewParams = CameraViewParams()) -> np.ndarray:
    """(N, 105, 105) drawings (paper = 1) -> (N, size, size) float32 camera views, one each."""
    out = np.empty((len(drawings), size, size), np.float32)
    for i, drawing in enumerate(drawings):
        out[i] = camera_view(drawing, rng, size, params)
    return out
