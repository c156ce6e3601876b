"""Camera-style views of a picture: what a webcam makes of a thing held up in front of it.

One view: the picture (RGBA, transparency = where the background shows) on a plain or shaded background,
at a random distance (scale), position, rotation and perspective, then light (brightness, contrast, gamma),
a colour cast, focus blur and sensor noise. Numpy and OpenCV only; every draw comes from the caller's rng.
"""
from __future__ import annotations

import cv2
import numpy as np


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain, shaded (linear gradient) or paper-like surface, float32 RGB in [0, 1]."""
    base = rng.uniform(0.2, 1.0, 3).astype(np.float32)
    if rng.random() < 0.5:
        return np.broadcast_to(base, (size, size, 3)).copy()
    other = rng.uniform(0.2, 1.0, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return base * (1 - t[..., None]) + other * t[..., None]


def camera_view(rgba: np.ndarray, rng: np.random.Generator, size: int, ink: tuple | None = None) -> np.ndarray:
    """One augmented view of `rgba` (H, W, 4 uint8) as RGB uint8 (size, size, 3).

    `ink`: for pictures that are a mask only (Omniglot, letters), the colour their opaque part takes; None
    keeps the picture's own colours.
    """
    h, w = rgba.shape[:2]
    src = rgba.astype(np.float32) / 255.0
    colour = src[..., :3] if ink is None else np.broadcast_to(np.asarray(ink, np.float32), (h, w, 3))
    alpha = src[..., 3]

    # distance, position, rotation, perspective: one homography from the picture's corners
    scale = rng.uniform(0.45, 0.95) * size / max(h, w)
    angle = np.deg2rad(rng.uniform(-25, 25))
    centre = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) - [w / 2, h / 2]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    dst = corners @ rot.T * scale + centre
    dst += rng.normal(0, 0.04 * size * scale * max(h, w) / size, dst.shape).astype(np.float32)  # perspective
    src_pts = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(src_pts, dst.astype(np.float32))
    warped = cv2.warpPerspective(np.dstack([colour, alpha]), m, (size, size), flags=cv2.INTER_AREA,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    a = warped[..., 3:4]
    image = _background(rng, size) * (1 - a) + warped[..., :3] * a

    # light: brightness, contrast, gamma; a colour cast (white balance)
    image = (image - 0.5) * rng.uniform(0.7, 1.2) + 0.5 + rng.uniform(-0.15, 0.15)
    image = np.clip(image, 0, 1) ** rng.uniform(0.7, 1.4)
    image = image * rng.uniform(0.85, 1.15, 3).astype(np.float32)

    # focus and sensor
    sigma = rng.uniform(0, 1.2)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0, rng.uniform(0, 0.04), image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def random_ink(rng: np.random.Generator) -> tuple[float, float, float]:
    """A dark pen colour for mask-only pictures."""
    return tuple(float(v) for v in rng.uniform(0.0, 0.35, 3))


def shape_picture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A made-up coloured thing (RGBA uint8, size x size): a few filled ellipses, boxes and triangles in random
    colours on a transparent ground. Needs no data set: the export's parity episodes are made of these."""
    pic = np.zeros((size, size, 4), np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        centre = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        kind = rng.integers(3)
        if kind == 0:
            axes = tuple(int(v) for v in rng.integers(size // 8, size // 3, 2))
            cv2.ellipse(pic, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        elif kind == 1:
            half = rng.integers(size // 8, size // 3, 2)
            cv2.rectangle(pic, tuple(int(v) for v in np.subtract(centre, half)),
                          tuple(int(v) for v in np.add(centre, half)), colour, -1)
        else:
            cv2.fillPoly(pic, [rng.integers(0, size, (3, 2)).astype(np.int32)], colour)
    return pic


def view_classes(pictures: list[np.ndarray], size: int, views: int, rng: np.random.Generator) -> np.ndarray:
    """(len(pictures), views, 3, size, size) float32 RGB in [0, 1]: camera views of each picture."""
    out = np.stack([np.stack([camera_view(p, rng, size) for _ in range(views)]) for p in pictures])
    return np.ascontiguousarray(out.transpose(0, 1, 4, 2, 3), dtype=np.float32) / np.float32(255.0)
