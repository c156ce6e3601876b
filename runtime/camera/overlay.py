"""Drawing the demo's overlay on a frame: the symbol's box (or why none was found), a region set by hand,
prediction, bars, thumbnail, FPS.

Everything is drawn with plain OpenCV primitives on one copy of the frame (no alpha blending), because the
overlay runs on every frame of a loop that must stay far above camera rate on a 2-core board.
Classes are shown as their key: class index k is "k+1" (key 1 teaches class 0, key 0 teaches class 9),
or by name when the learner has class names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import cv2
import numpy as np

if TYPE_CHECKING:  # the record is the demo's; drawing needs only its fields
    from edgemeta.runtime.demo.core import Observation

FONT = cv2.FONT_HERSHEY_SIMPLEX
GREEN = (60, 200, 60)
ORANGE = (0, 150, 255)
YELLOW = (0, 220, 255)
WHITE = (255, 255, 255)
GREY = (150, 150, 150)
PANEL = (40, 32, 28)
BAR = (200, 140, 40)
BAR_TOP = (60, 200, 60)

HELP = (
    "1-9, 0  teach the current frame as class 1-10",
    "r       reset (forget every class)",
    "s / l   save / load learned state",
    "h       show / hide this help",
    "q, Esc  quit",
)


@dataclass
class Hud:
    """What the overlay shows besides the frame's own facts: the learner's classes and the window's state."""

    counts: Sequence[int] = ()  # taught examples per class
    names: Optional[Sequence[str]] = None
    fps: float = 0.0
    status: str = ""  # a transient message ("taught class 2", "saved state to ...")
    help: bool = False


def class_name(k: int, names: Optional[Sequence[str]] = None) -> str:
    if names and k < len(names) and names[k]:
        return str(names[k])
    return str(k + 1)


def draw(frame: np.ndarray, obs: Optional[Observation], hud: Hud, inplace: bool = False) -> np.ndarray:
    """`frame` (BGR uint8) annotated with what the demo made of it (`obs`, None before the first frame) and
    the `hud`: a copy, or `frame` itself drawn on when `inplace`."""
    out = frame if inplace else frame.copy()
    h, w = out.shape[:2]
    s = max(h, 240) / 480.0  # text and layout scale with the frame
    thick = max(1, int(round(1.5 * s)))

    symbol = obs.symbol if obs is not None else None
    if symbol is not None:
        x, y, rw, rh = symbol.roi
        if (rw, rh) != (w, h):  # a region set by hand: green when a symbol is found in it, orange when not
            cv2.rectangle(out, (x, y), (x + rw - 1, y + rh - 1), GREEN if symbol.found else ORANGE, thick)
        if symbol.found:  # what was found, wherever it is in the frame
            x, y, bw, bh = symbol.bbox
            cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), GREEN, thick)
        elif symbol.reason:  # why nothing was found ("cut by the frame's edge", ...), under the prediction
            reason = symbol.reason.removeprefix("no character found: ").split(";")[0]
            _text(out, reason, (int(8 * s), int(62 * s)), 0.45 * s, ORANGE, 1)

    _prediction(out, obs, hud, s, thick)
    _bars(out, obs, hud, s)
    if symbol is not None and symbol.found:
        _thumbnail(out, symbol.image, s)
    footer = f"FPS {hud.fps:5.1f}   taught {int(np.sum(hud.counts)) if len(hud.counts) else 0}   h: help"
    _text(out, footer, (int(8 * s), h - int(10 * s)), 0.5 * s, WHITE, 1)
    if hud.status:
        _text(out, hud.status, (int(8 * s), h - int(34 * s)), 0.55 * s, YELLOW, 1)
    if hud.help:
        _help(out, s)
    return out


def _prediction(out, obs: Optional[Observation], hud: Hud, s: float, thick: int) -> None:
    if obs is not None and obs.taught is not None:
        text, colour = f"taught {class_name(obs.taught, hud.names)}", YELLOW
    elif not any(hud.counts):
        text, colour = "teach me: show a symbol, press 1", WHITE
    elif obs is None or not obs.found:
        text, colour = "no symbol", GREY
    elif obs.pred is None or obs.unknown:
        text, colour = f"?  ({obs.confidence:.0%})", ORANGE
    else:
        text, colour = f"{class_name(obs.pred, hud.names)}  {obs.confidence:.0%}", GREEN
    scale = 1.0 * s
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick + 1)
    pad = int(8 * s)
    cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), PANEL, -1)
    cv2.putText(out, text, (pad, pad + th), FONT, scale, colour, thick + 1, cv2.LINE_AA)


def _bars(out, obs: Optional[Observation], hud: Hud, s: float) -> None:
    """One row per taught class: name, taught count, a confidence bar."""
    counts = list(hud.counts)
    probs = obs.probs if obs is not None else None
    pred = obs.pred if obs is not None and not obs.unknown else None
    taught = [k for k, c in enumerate(counts) if c > 0]
    if not taught:
        return
    h, w = out.shape[:2]
    row, bar_w, label_w = int(22 * s), int(110 * s), int(86 * s)
    x0 = w - bar_w - label_w - int(8 * s)
    y0 = int(8 * s)
    cv2.rectangle(out, (x0 - int(6 * s), 0), (w, y0 + row * len(taught) + int(4 * s)), PANEL, -1)
    for i, k in enumerate(taught):
        y = y0 + i * row
        p = float(probs[k]) if probs is not None and k < len(probs) else 0.0
        name = class_name(k, hud.names)[:8]
        _text(out, f"{name} ({counts[k]})", (x0, y + int(15 * s)), 0.45 * s, WHITE, 1, shadow=False)
        bx = x0 + label_w
        cv2.rectangle(out, (bx, y + int(4 * s)), (bx + bar_w, y + row - int(4 * s)), GREY, 1)
        fill = int(round(bar_w * min(max(p, 0.0), 1.0)))
        if fill > 0:
            colour = BAR_TOP if k == pred else BAR
            cv2.rectangle(out, (bx, y + int(4 * s)), (bx + fill, y + row - int(4 * s)), colour, -1)


def _thumbnail(out, image: np.ndarray, s: float) -> None:
    """The learner's input, magnified with visible pixels: ink dark on white as on paper, or an RGB (3, S, S) region."""
    h, w = out.shape[:2]
    side = int(96 * s)
    x, y = w - side - int(8 * s), h - side - int(8 * s)
    if image.ndim == 3:  # RGB in [0, 1], channels first
        thumb = np.clip(255.0 * image[::-1].transpose(1, 2, 0), 0, 255).astype(np.uint8)
        out[y : y + side, x : x + side] = cv2.resize(thumb, (side, side), interpolation=cv2.INTER_NEAREST)
    else:
        thumb = np.clip(255.0 * (1.0 - image), 0, 255).astype(np.uint8)
        thumb = cv2.resize(thumb, (side, side), interpolation=cv2.INTER_NEAREST)
        out[y : y + side, x : x + side] = cv2.cvtColor(thumb, cv2.COLOR_GRAY2BGR)  # 40x faster than broadcasting
    cv2.rectangle(out, (x - 1, y - 1), (x + side, y + side), WHITE, 1)


def _help(out, s: float) -> None:
    h, w = out.shape[:2]
    row = int(24 * s)
    y0 = int(h / 2 - row * len(HELP) / 2)
    cv2.rectangle(out, (int(20 * s), y0 - row), (w - int(20 * s), y0 + row * len(HELP)), PANEL, -1)
    for i, line in enumerate(HELP):
        _text(out, line, (int(32 * s), y0 + i * row), 0.55 * s, WHITE, 1, shadow=False)


def _text(out, text: str, org, scale: float, colour, thick: int, shadow: bool = True) -> None:
    # Small text is drawn without anti-aliasing: LINE_AA costs ~10x more, and at this size it barely shows.
    # The shadow (readable on light paper and dark scenes alike) is the same text one pixel down and right, at
    # the same thickness: OpenCV draws thicker text wider, so a thicker shadow drifts away from the text
    # letter by letter and smears into it.
    if shadow:
        cv2.putText(out, text, (org[0] + 1, org[1] + 1), FONT, scale, (0, 0, 0), thick, cv2.LINE_8)
    cv2.putText(out, text, org, FONT, scale, colour, thick, cv2.LINE_8)
