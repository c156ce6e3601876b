"""The pinned image preprocessing shared by training, evaluation, export checks and the camera.

Contract (do not change: shipped learners were trained on it):
ink = 1.0, paper = 0.0, float32, area-interpolated resize to S x S.
Omniglot PNGs are black ink on white paper, so they are inverted first.
"""
from __future__ import annotations

import numpy as np

PREPROCESS_ID = "omniglot-ink1-area-v1"


def ink_to_input(ink: np.ndarray, size: int) -> np.ndarray:
    """Resize an ink map (H, W), ink=1 paper=0 in [0, 1], to the learner's (size, size) float32.

    Uses OpenCV's INTER_AREA, which averages the covered pixels: thin strokes survive
    downsampling as grey values instead of vanishing, as they would with nearest/linear.
    """
    import cv2  # imported here: numpy-only users of this module should not pay for OpenCV

    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2:
        raise ValueError(f"ink map: received shape {ink.shape}; expected (H, W)")
    if ink.shape == (size, size):
        return np.ascontiguousarray(ink)
    return cv2.resize(ink, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def omniglot_to_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """An Omniglot drawing (H, W) with paper truthy/255 and ink 0 -> (size, size) float32, ink = 1."""
    pixels = np.asarray(pixels)
    paper = pixels.astype(np.float32)
    if paper.max() > 1.0:
        paper = paper / 255.0
    return ink_to_input(1.0 - paper, size)


def omniglot_batch_to_input(paper_mask: np.ndarray, size: int) -> np.ndarray:
    """Many drawings at once: (N, H, W) bool/uint8 with paper = 1 -> (N, size, size) float32."""
    out = np.empty((len(paper_mask), size, size), dtype=np.float32)
    for i, img in enumerate(paper_mask):
        out[i] = ink_to_input(1.0 - img.astype(np.float32), size)
    return out

# RGB learners (task "objects"): a square region of the camera frame, area-resized to S x S, RGB float32 in
# [0, 1], channels first. The backbone's own normalisation is inside the graph, so clients feed plain pixels.
RGB_PREPROCESS_ID = "rgb01-area-v1"


def bgr_to_input(bgr: np.ndarray, size: int) -> np.ndarray:
    """A BGR uint8 picture (H, W, 3) -> (3, size, size) float32 RGB in [0, 1], area-resized."""
    import cv2

    bgr = np.asarray(bgr)
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"picture: received shape {bgr.shape}; expected (H, W, 3)")
    if bgr.shape[:2] != (size, size):
        bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    rgb = bgr[..., ::-1].transpose(2, 0, 1).astype(np.float32)
    return np.ascontiguousarray(rgb * np.float32(1.0 / 255.0))
