"""The page: lighting flattened to a uniform paper level, and the split of ink from paper (Otsu, with its contrast).

Shared by reading a region (runtime/camera/frames.py) and locating the character in the whole frame
(runtime/camera/locate.py).
"""
from __future__ import annotations

import cv2
import numpy as np

PAPER_LEVEL = 200  # flattened paper brightness: leaves room above it for bright spots


def flatten_lighting(region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 page with the paper at PAPER_LEVEL everywhere, ink well below: gray / paper brightness; and the
    paper brightness itself (what is left with the strokes erased)."""
    smooth = cv2.GaussianBlur(region, (3, 3), 0)  # sensor noise
    k = max(3, (max(region.shape) // 8) | 1)  # wider than a stroke, narrower than a lighting change
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    # The paper's brightness: a closing erases dark strokes thinner than k. It runs on the smoothed
    # image (a closing of raw noise is biased bright, which would make dark areas look like ink),
    # and is not blurred afterwards, so the edges of large dark areas (a table, a shadow) divide
    # out to paper instead of leaving a ring of false ink.
    background = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, kernel)
    return cv2.divide(smooth, np.maximum(background, 1), scale=PAPER_LEVEL), background


def ink_threshold(page: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu on the flattened page. Returns the ink mask and the ink's contrast to the paper."""
    t, _ = cv2.threshold(page, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    t = int(t)
    ink = page <= t
    hist = np.bincount(page.ravel(), minlength=256)
    n_ink, n_paper = int(hist[: t + 1].sum()), int(hist[t + 1 :].sum())
    if n_ink == 0 or n_paper == 0:
        return ink, 0.0
    # Median of each side (from the histogram): robust to a few bright or dark outliers.
    ink_level = int(np.searchsorted(np.cumsum(hist[: t + 1]), n_ink / 2))
    paper_level = t + 1 + int(np.searchsorted(np.cumsum(hist[t + 1 :]), n_paper / 2))
    return ink, max(0.0, (paper_level - ink_level) / max(paper_level, 1))
