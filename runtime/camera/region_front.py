"""The objects front end: a square region of the frame, area-resized to the learner's RGB input. No ink detection.

The region is centred by default (REGION_FRACTION of the frame's shorter side) or set by the user (x, y, w, h in
frame pixels; a non-square one is cut to its centred square). The learner's metadata names this front end
(`front_end`: "region"); its preprocessing (`preprocess`: RGB_PREPROCESS_ID) is RGB in [0, 1], channels first,
with the backbone's normalisation inside the graph. Returns the symbol front end's FrameResult, so the demo's
loop, overlay and log read it alike: `bbox` and `roi` are the region, `image` is (3, S, S).
"""
from __future__ import annotations

import numpy as np

from edgemeta.runtime.camera.frames import FrameError, FrameResult, centred_roi
from edgemeta.runtime.preprocess import bgr_to_input

FRONT_END = "region"
REGION_FRACTION = 0.6  # the centred square's side as a share of the frame's shorter side


def region_to_input(frame: np.ndarray, size: int, region: tuple[int, int, int, int] | None = None) -> FrameResult:
    """BGR uint8 frame (H, W, 3) -> FrameResult with image (3, size, size) float32 RGB in [0, 1]."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FrameError(f"frame must be a BGR uint8 array (H, W, 3), got {what}")
    roi = centred_roi(frame.shape, REGION_FRACTION) if region is None else square_inside(region, frame.shape)
    x, y, w, h = roi
    image = bgr_to_input(frame[y : y + h, x : x + w], size)
    return FrameResult(True, image, roi, roi, 0.0, float(image.max() - image.min()))


def square_inside(region, frame_shape) -> tuple[int, int, int, int]:
    """`region` (x, y, w, h) cut to its centred square and clipped to the frame; a one-line error if nothing is left."""
    fh, fw = frame_shape[:2]
    x, y, w, h = (int(v) for v in region)
    side = min(w, h)
    x, y = x + (w - side) // 2, y + (h - side) // 2
    x0, y0 = max(x, 0), max(y, 0)
    side = min(x + side, fw) - x0, min(y + side, fh) - y0
    side = min(side)
    if side < 1:
        raise FrameError(f"region {tuple(region)} lies outside the {fw}x{fh} frame")
    return (x0, y0, side, side)
