"""The demo overlay, rendered without a display: its text is legible (compared against a plain render of the
same string), and it draws what the frame record holds."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemeta.runtime.camera.frames import FrameResult
from edgemeta.runtime.camera.overlay import FONT, WHITE, YELLOW, Hud, draw
from edgemeta.runtime.demo.core import Observation

H, W = 480, 640  # layout scale 1: the footer at (8, H - 10) in scale 0.5, the status at (8, H - 34) in 0.55


def _plain(text: str, org, scale: float) -> np.ndarray:
    """`text` drawn alone in the overlay's font: coverage 0-255 (OpenCV may anti-alias its fonts)."""
    coverage = np.zeros((H, W), np.uint8)
    cv2.putText(coverage, text, org, FONT, scale, 255, 1, cv2.LINE_8)
    return coverage


@pytest.mark.parametrize("background", [30, 128, 215])  # a dark scene, grey, light paper
def test_footer_and_status_text_are_legible(background):
    hud = Hud(counts=[2, 1, 0], fps=123.4, status="taught class 2 (2 examples)")
    out = draw(np.full((H, W, 3), background, np.uint8), None, hud).astype(int)
    changed = np.abs(out - background).max(axis=2) > 24
    for text, org, scale, colour in [("FPS 123.4   taught 3   h: help", (8, H - 10), 0.5, WHITE),
                                     (hud.status, (8, H - 34), 0.55, YELLOW)]:
        coverage = _plain(text, org, scale)
        glyphs = coverage > 0
        shadow = np.zeros_like(glyphs)
        shadow[1:, 1:] = glyphs[:-1, :-1]  # one pixel down and right
        rows = np.flatnonzero(glyphs.any(axis=1))
        band = slice(rows[0] - 3, rows[-1] + 4)  # the line, with room for a shadow or a smear
        # The letters' solid pixels show the text colour: nothing overprints them.
        solid = coverage == 255
        assert np.abs(out[solid] - colour).max() <= 16, text
        # Nothing but the letters and their one-pixel drop shadow is drawn on the line: a shadow drawn
        # thicker than the text is wider too, so it drifts letter by letter and smears into the text.
        stray = changed[band] & ~(glyphs | shadow)[band]
        assert stray.sum() == 0, f"{text!r}: {int(stray.sum())} pixels drawn outside the text and its shadow"


def test_draws_the_frame_record():
    image = np.zeros((12, 12), np.float32)
    image[3:9, 5:7] = 1.0
    symbol = FrameResult(True, image, bbox=(300, 200, 40, 60), roi=(176, 96, 288, 288), ink_fraction=0.05, contrast=0.6)
    obs = Observation(0, np.full((H, W, 3), 215, np.uint8), symbol, probs=np.array([0.1, 0.85, 0.05], np.float32),
                      pred=1, confidence=0.85)
    out = draw(obs.frame, obs, Hud(counts=[1, 1, 0]))
    assert np.all(out[96, 200] == (60, 200, 60))  # the region of interest, green: a symbol was found
    assert np.all(out[200, 320] == (60, 200, 60))  # the symbol's box
    thumb = out[H - 104 : H - 8, W - 104 : W - 8]
    assert (thumb == 0).all(axis=2).any() and (thumb == 255).all(axis=2).any()  # the learner's input: ink on paper
    lost = Observation(1, obs.frame, FrameResult(False, None, None, symbol.roi, 0.0, 0.0, "no character found"))
    out = draw(lost.frame, lost, Hud(counts=[1, 1, 0]))
    assert np.all(out[96, 200] == (0, 150, 255))  # orange: nothing found
    assert np.all(out[200, 320] == 215)  # no box
    # the whole frame searched (no region set by hand): no region drawn; the box, or why nothing was found
    whole = FrameResult(True, image, bbox=(300, 200, 40, 60), roi=(0, 0, W, H), ink_fraction=0.05, contrast=0.6)
    out = draw(obs.frame, Observation(2, obs.frame, whole), Hud(counts=[1, 1, 0]))
    assert np.all(out[96, 200] == 215) and np.all(out[200, 320] == (60, 200, 60))
    cut = FrameResult(False, None, None, (0, 0, W, H), 0.0, 0.0, "no character found: the character is cut by the frame's edge")
    out = draw(obs.frame, Observation(3, obs.frame, cut), Hud(counts=[1, 1, 0]))
    assert (out[50:70, :300] == (0, 150, 255)).all(axis=2).any()  # the reason, in orange
