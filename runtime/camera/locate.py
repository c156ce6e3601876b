"""Where the character is in a whole frame: a small character on a card at arm's length, one that fills most
of the view, or one off to a side; or why there is none.

One coarse pass over the whole frame (its longer side shrunk to COARSE_SIZE), numpy in, numpy out:
1. shrink after a 3x3 erosion (a minimum filter), so that thin strokes of a distant card stay dark
   instead of averaging out into the paper;
2. flatten the lighting (runtime/camera/page.py); the paper is where the stroke-free brightness is
   near the frame's brightest: a darker desk around a card is not paper;
3. ink inside the paper; ink touching the paper's edge is a hand, the desk or the card's shadow, and
   ink touching the frame's edge is a character the frame cuts;
4. the character is the biggest stroke inside the paper with the strokes near it (a character may have
   several pieces).
The crop around it is then read at the working size by runtime/camera/frames.py, as a region set by hand is.
"""
from __future__ import annotations

import cv2
import numpy as np

from edgemeta.runtime.camera.page import PAPER_LEVEL, flatten_lighting, ink_threshold

COARSE_SIZE = 160  # the coarse pass's longer side: a card at arm's length keeps strokes a pixel or two wide
PAPER_SHARE = 0.55  # paper is at least this share of the frame's brightest paper (shadows and vignettes stay above)
NEAR = 0.6  # strokes within this share of the biggest stroke's longer side belong to the same character
MIN_SIDE = 0.04  # a character's longer side is at least this share of the frame's shorter side
RIM_SHARE = 0.3  # a stroke cut by the frame's edge meets it along at most this share of its longer side
DESK_RATIO = 4  # a dark region with more than this many times the ink inside it is the desk, not strokes
STROKE_SHARE = 5  # strokes are narrower than this share of the character's side (the depth kernel's width)
DEPTH_SHARE = 0.7  # a stroke of the character cuts at least this share of its biggest stroke's depth into the paper
WIDTH_RATIO = 1.25  # ... and is at most this many times as wide (plus half a pixel for rounding)
CROP_MARGIN = 0.3  # the crop reaches this share of the character's longer side beyond its box, on each side

_SQUARE3 = np.ones((3, 3), np.uint8)


Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


def locate(gray: np.ndarray, *, min_contrast: float = 0.2) -> tuple[Box, Box] | str:
    """A gray uint8 frame -> the region to read around its character and the character's own box, or the reason
    there is none (a phrase: "the character is cut by the frame's edge; ...")."""
    H, W = gray.shape
    f = max(1, -(-max(H, W) // COARSE_SIZE))
    small = gray
    if f > 1:
        small = _shrink(cv2.erode(gray, _SQUARE3), f)
    h, w = small.shape
    page, background = flatten_lighting(small)
    k = int(0.95 * (background.size - 1))
    bright = float(np.partition(background.ravel(), k)[k])
    paper = background >= PAPER_SHARE * bright
    if not paper.any():
        return "no paper in view"
    on_paper, contrast = ink_threshold(page[paper].reshape(-1, 1))
    if contrast < min_contrast:
        return f"no ink darker than the paper (contrast {contrast:.2f} < {min_contrast})"
    ink = np.zeros_like(paper)
    ink[paper] = on_paper.ravel()

    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    big = area >= max(2, int(0.0002 * h * w))
    # A stroke the frame's edge cuts meets the edge across its width; a dark strip running along the edge (the
    # desk beside a close card, a shadow) meets it along its length, and is no character.
    rim = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    contact = np.bincount(rim[_dark_at_the_edge(gray, f, page, background, ink)], minlength=n)
    cut = (contact > 0) & (contact <= RIM_SHARE * np.maximum(bw, bh))
    along = contact > RIM_SHARE * np.maximum(bw, bh)
    edge = np.zeros(n, bool)
    if not paper.all():
        near_edge = cv2.dilate((~paper).astype(np.uint8), _SQUARE3).astype(bool)
        edge[np.unique(labels[near_edge & ink])] = True
        edge[np.unique(labels[ink & _desk(small, paper, ink, bright)])] = True
    big[0] = False  # label 0 is the background
    cut &= ~edge  # the card's own edge running out of view is no cut character
    kept = big & ~cut & ~edge & ~along
    if not kept.any():
        if (big & cut).any():
            return "the character is cut by the frame's edge; move the card into view"
        if (big & edge).any():
            return "ink only at the paper's edge (a hand, the desk?); hold the card so its character is in view"
        if (big & along).any():
            return "ink only along the frame's edge (a character cut by the frame's edge, or the desk); move the card into view"
        return "no strokes on the paper"

    core = int(np.argmax(np.where(kept, area, 0)))
    box = np.array([x[core], y[core], x[core] + bw[core], y[core] + bh[core]], np.int64)
    kept &= _same_pen(core, kept, ink, labels, stats, small, max(box[2] - box[0], box[3] - box[1]))
    members = np.zeros(n, bool)
    members[core] = True
    for _ in range(2):  # gather nearby strokes, then the strokes near those
        reach = int(np.ceil(NEAR * max(box[2] - box[0], box[3] - box[1])))
        near = big & (x < box[2] + reach) & (x + bw > box[0] - reach) & (y < box[3] + reach) & (y + bh > box[1] - reach)
        if (near & cut).any():  # `near` holds only big strokes
            return "the character is cut by the frame's edge; move the card into view"
        members |= near & kept
        box = np.array([x[members].min(), y[members].min(), (x + bw)[members].max(), (y + bh)[members].max()])

    side = max(box[2] - box[0], box[3] - box[1]) * f
    if side < MIN_SIDE * min(H, W):
        return f"too little ink (a speck {side} pixels across, not a character)"
    pad = int(CROP_MARGIN * side) + 2 * f
    x0, y0 = max(0, box[0] * f - pad), max(0, box[1] * f - pad)
    x1, y1 = min(W, box[2] * f + pad), min(H, box[3] * f + pad)
    crop = int(x0), int(y0), int(x1 - x0), int(y1 - y0)
    character = int(box[0] * f), int(box[1] * f), int((box[2] - box[0]) * f), int((box[3] - box[1]) * f)
    return crop, character


def _shrink(image: np.ndarray, f: int) -> np.ndarray:
    """A box average over f x f pixels. Halving is OpenCV's fast path for INTER_AREA, so even factors go by halves
    (an average of averages: the same image, a fraction of the time)."""
    H, W = image.shape
    h, w = H // f, W // f
    while f % 2 == 0 and image.shape[0] // 2 >= h:
        image = cv2.resize(image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2],
                           (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        f //= 2
    if f > 1 or image.shape != (h, w):
        image = cv2.resize(image[: h * f, : w * f], (w, h), interpolation=cv2.INTER_AREA)
    return image


def _desk(small: np.ndarray, paper: np.ndarray, ink: np.ndarray, bright: float) -> np.ndarray:
    """Dark pixels that belong to the desk around the card rather than to a stroke on it.

    The paper mask comes from a closing, which also bridges narrow gaps of desk (between a thumb and the card's
    edge, in a notch of the outline): strips of desk inside the mask then look like ink. A stroke is a dark
    region of its own, surrounded by paper; such a strip is part of a dark region far bigger than the ink in it.
    """
    dark = (small < PAPER_SHARE * bright).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    ink_in = np.bincount(labels[ink], minlength=n)
    desk = stats[:, cv2.CC_STAT_AREA] > DESK_RATIO * ink_in
    desk[0] = False  # label 0 is what is not dark
    return np.take(desk, labels)


def _same_pen(core: int, candidates: np.ndarray, ink: np.ndarray, labels: np.ndarray, stats: np.ndarray,
              small: np.ndarray, side: int) -> np.ndarray:
    """Which components look written with the core's pen: one pen writes a character, so its strokes are about
    as wide as each other and about equally dark against the paper right beside them.

    Depth is a black-hat (a closing minus the image) with a kernel wider than the character's strokes and
    narrower than the character: the valley a stroke cuts into the paper. A thumb's or a shadow's rim, where the
    flattened page shows ink, is a step, not a valley; skin is far lighter than ink, so a thumb's tip narrower
    than the kernel is a shallow valley, and it is wider than a stroke. Only `candidates` (and the core) are
    measured; the others are not the same pen."""
    k = int(np.clip(side // STROKE_SHARE, 3, 31)) | 1
    depth = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    half_width = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    deep = np.zeros(len(stats), np.float32)
    wide = np.zeros(len(stats), np.float32)
    for j in np.flatnonzero(candidates):  # each within its own box: a few small slices
        x, y, w, h = stats[j, :4]
        mine = labels[y : y + h, x : x + w] == j
        values = depth[y : y + h, x : x + w][mine]
        deep[j] = np.partition(values, int(0.9 * (values.size - 1)))[int(0.9 * (values.size - 1))]
        wide[j] = half_width[y : y + h, x : x + w][mine].max()
    return (deep >= DEPTH_SHARE * deep[core]) & (wide <= WIDTH_RATIO * wide[core] + 0.5)


def _dark_at_the_edge(gray: np.ndarray, f: int, page: np.ndarray, background: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """For each pixel on the coarse image's rim (top, bottom, left, right, as `locate` lists them): whether the
    frame's own outermost pixels there are ink. The coarse pass's erosion and blur carry a stroke a few pixels
    short of the edge onto the rim; only ink in the outermost row or column is a character the frame cuts."""
    h, w = page.shape
    outer = [gray[0, : w * f], gray[-1, : w * f], gray[f : (h - 1) * f, 0], gray[f : (h - 1) * f, -1]]
    darkest = np.concatenate([line.reshape(-1, f).min(axis=1) for line in outer]).astype(np.float32)
    paper = np.concatenate([background[0], background[-1], background[1:-1, 0], background[1:-1, -1]])
    threshold = float(page[ink].max())  # the ink's faintest level on the flattened page
    return darkest * PAPER_LEVEL / np.maximum(paper, 1) <= threshold
