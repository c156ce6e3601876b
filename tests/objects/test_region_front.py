"""The objects front end: a centred (or user-set) square region, area-resized to RGB in [0, 1], no ink detection."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from edgemeta import EdgemetaError  # noqa: E402
from edgemeta.runtime.camera.region_front import region_to_input  # noqa: E402


def test_the_centred_square_becomes_the_learners_rgb_input():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :, 1] = 255  # green everywhere ...
    frame[240 - 50 : 240 + 50, 320 - 50 : 320 + 50] = (255, 0, 0)  # ... and a blue square in the middle
    out = region_to_input(frame, 96)
    assert out.found and out.roi == (176, 96, 288, 288) and out.bbox == out.roi
    assert out.image.shape == (3, 96, 96) and out.image.dtype == np.float32
    assert out.image[2, 48, 48] == pytest.approx(1.0) and out.image[0, 48, 48] == pytest.approx(0.0)  # blue, as RGB
    assert out.image[1, 2, 2] == pytest.approx(1.0)  # green at the region's corner


def test_a_user_region_is_squared_and_clipped_and_one_outside_is_one_line():
    frame = np.full((480, 640, 3), 128, np.uint8)
    assert region_to_input(frame, 32, (600, 400, 100, 200)).roi == (600, 450, 30, 30)
    assert region_to_input(frame, 32, (10, 20, 200, 100)).roi == (60, 20, 100, 100)
    with pytest.raises(EdgemetaError, match="outside the 640x480 frame"):
        region_to_input(frame, 32, (700, 10, 50, 50))
    with pytest.raises(EdgemetaError, match="BGR uint8"):
        region_to_input(frame.astype(np.float32), 32)
