"""Camera frame -> the learner's input image: find a dark character on light paper, or say there is none.

Pure functions over numpy arrays (OpenCV for the image operations). The output matches the pinned
Omniglot preprocessing (runtime/preprocess.py): a binary ink map at Omniglot's 105 x 105 scale,
the character filling about as much of the square as Omniglot's characters do, strokes about as
wide, then the same area resize to S x S with ink = 1.0.

Steps, each for a reason:
1. region of interest (default: a centred square), shrunk to a working size: cheap, and the
   result is the same for any camera resolution;
2. grayscale, then divide by a background estimate (a grey closing, which erases thin dark
   strokes and keeps the paper): uneven lighting and shadows become a flat page;
3. Otsu threshold on the flattened page, and a contrast test: on a blank page Otsu still splits
   the sensor noise, but the two sides differ by a few percent, not the tens of percent of ink;
4. drop specks and blobs touching the region's border (table edges, fingers, shadows);
5. the ink's bounding box, padded to a square with a margin, resized to 105 x 105, strokes
   thickened or thinned towards Omniglot's width, then the pinned area resize.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.locate import locate
from edgemeta.runtime.camera.page import flatten_lighting, ink_threshold
from edgemeta.runtime.preprocess import ink_to_input

OMNIGLOT_SIZE = 105  # Omniglot drawings are 105 x 105 binary masks
OMNIGLOT_FILL = 0.64  # median (longer side of the character's box) / 105 over Omniglot
OMNIGLOT_STROKE = 3.8  # median stroke width in pixels at 105 x 105 (twice the median distance to paper)


class FrameError(EdgemetaError, ValueError):
    """A frame that is not an image this function can read (wrong type, shape, NaN)."""


@dataclass(frozen=True)
class FrameResult:
    """What was found in a frame. `image` is None when `found` is False; `reason` then says why."""

    found: bool
    image: np.ndarray | None  # (S, S) float32, ink = 1.0
    bbox: tuple[int, int, int, int] | None  # the character's box in frame pixels: x, y, w, h
    roi: tuple[int, int, int, int]  # the region searched, in frame pixels: x, y, w, h
    ink_fraction: float  # share of the region's pixels that are ink
    contrast: float  # ink darkness relative to the paper, 0..1
    reason: str = ""


def centred_roi(frame_shape, fraction: float = 0.6) -> tuple[int, int, int, int]:
    """A centred square whose side is `fraction` of the frame's shorter side: x, y, w, h."""
    if not 0.0 < fraction <= 1.0:
        raise FrameError(f"roi fraction must lie in (0, 1], got {fraction}")
    h, w = frame_shape[:2]
    side = max(1, int(round(min(h, w) * fraction)))
    return ((w - side) // 2, (h - side) // 2, side, side)


def _check_frame(frame) -> None:
    """Type, layout and values of a frame, with one-line errors."""
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array (H, W, 3) BGR, got {type(frame).__name__}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise FrameError(f"frame: got shape {frame.shape}; expected (H, W, 3) BGR, (H, W, 4) BGRA or (H, W) gray")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise FrameError(f"frame: got shape {frame.shape}; it is too small to hold a character (at least 8 x 8)")
    if frame.dtype.kind == "f":
        if not np.isfinite(frame).all():
            raise FrameError("frame holds NaN or infinite values; check the camera or the decoder")
        if frame.min() < 0.0 or frame.max() > 1.0:
            raise FrameError(f"float frame values must lie in [0, 1], got [{frame.min():.3g}, {frame.max():.3g}]")
    elif frame.dtype != np.uint8:
        raise FrameError(f"frame: dtype {frame.dtype}; expected uint8 (or float in [0, 1])")


def to_gray(frame) -> np.ndarray:
    """A BGR, BGRA or gray frame (uint8, or float in [0, 1]) -> gray uint8, with clear errors."""
    _check_frame(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    gray = frame if frame.dtype == np.uint8 else (frame * 255.0 + 0.5).astype(np.uint8)
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_BGRA2GRAY if gray.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return gray


def frame_to_input(
    frame,
    size: int,
    *,
    roi: tuple[int, int, int, int] | None = None,
    margin: float | None = None,
    work_size: int = 160,
    min_contrast: float = 0.2,
    min_ink: float = 0.002,
    max_ink: float = 0.3,
    normalize_strokes: bool = True,
) -> FrameResult:
    """Find a dark character on light paper in `frame` and turn it into the learner's (size, size) input.

    roi: x, y, w, h in frame pixels: search only there (a region the user sets). Default: the whole frame,
            in two passes: locate the character on a coarse copy of the frame, then read it from a crop
            around it at the working size (`locate`).
    margin: padding around the character's box, as a fraction of its longer side, per side
            (default: Omniglot's, so the character fills ~64% of the square).
    min_contrast: how much darker than the paper ink must be (0..1); min_ink/max_ink: the share of
            the region read that may be ink. Outside these the result is "no character found".
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise FrameError(f"size must be a positive integer, got {size!r}")
    _check_frame(frame)
    options = dict(margin=margin, work_size=work_size, min_contrast=min_contrast, min_ink=min_ink, max_ink=max_ink,
                   normalize_strokes=normalize_strokes)
    if roi is not None:
        return read_region(frame, int(size), _check_roi(roi, frame.shape), **options)
    gray = to_gray(frame)  # converted once, for the coarse pass and the crop alike
    found = locate(gray, min_contrast=min_contrast)
    whole = (0, 0, frame.shape[1], frame.shape[0])
    if isinstance(found, str):
        return FrameResult(False, None, None, whole, 0.0, 0.0, f"no character found: {found}")
    crop, character = found
    result = read_region(gray, int(size), crop, character=character, **options)
    return replace(result, roi=whole)


def read_region(frame, size: int, roi: tuple[int, int, int, int], *, margin: float | None, work_size: int,
                min_contrast: float, min_ink: float, max_ink: float, normalize_strokes: bool,
                character: tuple[int, int, int, int] | None = None) -> FrameResult:
    """The character inside `roi` (x, y, w, h, already checked) -> the learner's input, or why there is none.

    character: where `locate` found the character (frame pixels): ink outside it (a thumb's rim, the desk in
    the crop's corner) is not read."""
    x, y, w, h = roi
    region = to_gray(frame[y : y + h, x : x + w])  # convert the region only: a fraction of the frame
    # Shrink by an integer factor: INTER_AREA is then a plain box average, and fast.
    factor = max(1, -(-max(w, h) // work_size))
    scale = 1.0 / factor
    if factor > 1:
        region = cv2.resize(region, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    roi_box = (x, y, w, h)

    paper, _ = flatten_lighting(region)
    ink_mask, contrast = ink_threshold(paper)
    within = None
    if character is not None:  # in the shrunk region's pixels, with a working pixel of slack for rounding
        cx, cy, cw, ch = character
        within = ((cx - x) // factor - 1, (cy - y) // factor - 1, -(-(cx + cw - x) // factor) + 1,
                  -(-(cy + ch - y) // factor) + 1)
    open_sides = (False,) * 4
    if character is not None:
        H, W = frame.shape[:2]
        open_sides = (x == 0, y == 0, x + w == W, y + h == H)
    ink_mask = _clean(ink_mask, within, open_sides)
    fraction = float(ink_mask.mean())

    def none(reason: str) -> FrameResult:
        return FrameResult(False, None, None, roi_box, fraction, contrast, f"no character found: {reason}")

    if contrast < min_contrast:
        return none(f"no ink darker than the paper (contrast {contrast:.2f} < {min_contrast})")
    if fraction < min_ink:
        return none(f"too little ink ({fraction:.2%} of the region)")
    if fraction > max_ink:
        return none(f"too much ink ({fraction:.2%} of the region); hold a card with one character on light paper")

    ys, xs = np.nonzero(ink_mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    square = _pad_square(ink_mask[y0:y1, x0:x1], margin)
    canonical = cv2.resize(square.astype(np.float32), (OMNIGLOT_SIZE, OMNIGLOT_SIZE), interpolation=cv2.INTER_AREA) >= 0.5
    if normalize_strokes:
        canonical = _match_stroke_width(canonical)
    if not canonical.any():
        return none("the ink vanished at Omniglot scale (a speck, not a character)")
    image = ink_to_input(canonical.astype(np.float32), int(size))
    bbox = (x + int(x0 / scale), y + int(y0 / scale), max(1, int(round((x1 - x0) / scale))), max(1, int(round((y1 - y0) / scale))))
    return FrameResult(True, image, bbox, roi_box, fraction, contrast)


def _check_roi(roi, shape) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise FrameError(f"roi must be (x, y, w, h) integers, got {roi!r}") from None
    H, W = shape[:2]
    if w < 8 or h < 8 or x < 0 or y < 0 or x + w > W or y + h > H:
        raise FrameError(f"roi {roi!r} does not fit in a {W}x{H} frame (and must be at least 8 x 8)")
    return x, y, w, h


def _clean(ink: np.ndarray, within: tuple[int, int, int, int] | None = None,
           open_sides: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> np.ndarray:
    """Keep ink components that are big enough, do not touch the region's border, and meet the box `within`
    (x0, y0, x1, y1) when one is given. `open_sides` (left, top, right, bottom) may be touched: where the crop
    around a located character ends at the frame's edge, a character right by the edge touches it."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    h, w = ink.shape
    min_area = max(4, int(0.0005 * h * w))
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    left, top, right, bottom = open_sides
    keep = (area >= min_area) & (left | (x > 0)) & (top | (y > 0)) & (right | (x + bw < w)) & (bottom | (y + bh < h))
    if within is not None:
        x0, y0, x1, y1 = within
        keep &= (x < x1) & (x + bw > x0) & (y < y1) & (y + bh > y0)
    keep[0] = False  # label 0 is the background
    if keep[1:].all():
        return ink
    return np.take(keep, labels)


def _pad_square(crop: np.ndarray, margin: float | None) -> np.ndarray:
    """Centre the character's box in a square with a margin on every side."""
    h, w = crop.shape
    side_of_char = max(h, w)
    fill = OMNIGLOT_FILL if margin is None else 1.0 / (1.0 + 2.0 * float(margin))
    side = max(side_of_char + 2, int(round(side_of_char / fill)))
    out = np.zeros((side, side), bool)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = crop
    return out


def _match_stroke_width(mask: np.ndarray) -> np.ndarray:
    """Thicken or thin strokes towards Omniglot's width (pens and scales vary; the learner saw one width)."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    width = 2.0 * float(np.median(dist[mask]))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    steps = int(round((width - OMNIGLOT_STROKE) / 2.0))  # each 3x3 step changes the width by ~2 px
    if steps > 0:
        thinned = cv2.erode(mask.astype(np.uint8), kernel, iterations=steps).astype(bool)
        return thinned if thinned.sum() > 0.25 * mask.sum() else mask  # never erase a character
    if steps < 0:
        return cv2.dilate(mask.astype(np.uint8), kernel, iterations=-steps).astype(bool)
    return mask
