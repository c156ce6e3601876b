"""Camera frames -> learner input, tested on synthetic frames: Omniglot characters drawn on paper with
uneven lighting and sensor noise; blank or cluttered frames must say "no character found"."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime.camera.frames import FrameError, _pad_square, centred_roi, frame_to_input
from edgemeta.runtime.preprocess import ink_to_input


def paper(rng, h=480, w=640, noise=6.0, gradient=True) -> np.ndarray:
    """A gray page, brighter to one side (a lamp), with sensor noise. float32 0..255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    page = np.full((h, w), 195.0, np.float32)
    if gradient:
        page += 45.0 * (xx / w - 0.5) + 30.0 * (yy / h - 0.5)
    return page + rng.normal(0.0, noise, (h, w)).astype(np.float32)


def draw(rng, drawing, side, centre=None, ink=45.0, h=480, w=640, **kw):
    """Put an Omniglot drawing (105x105, paper = 1) on paper, `side` pixels wide. Returns BGR uint8 and its box."""
    page = paper(rng, h, w, **kw)
    stroke = cv2.resize((1.0 - drawing).astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    cy, cx = centre or (h // 2, w // 2)
    y0, x0 = cy - side // 2, cx - side // 2
    region = page[y0 : y0 + side, x0 : x0 + side]
    page[y0 : y0 + side, x0 : x0 + side] = region * (1.0 - stroke) + ink * stroke
    page = cv2.GaussianBlur(page, (3, 3), 0.8)  # a slightly soft lens
    ys, xs = np.nonzero(stroke > 0.5)
    box = (x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return cv2.cvtColor(np.clip(page, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR), box


def canonical(drawing, size):
    """The drawing itself, centred the way frame_to_input centres what it finds."""
    ink = drawing == 0
    ys, xs = np.nonzero(ink)
    square = _pad_square(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], None)
    mask = cv2.resize(square.astype(np.float32), (105, 105), interpolation=cv2.INTER_AREA) >= 0.5
    return ink_to_input(mask.astype(np.float32), size)


@pytest.fixture(scope="module")
def drawings(omniglot):
    from edgemeta.runtime.omniglot import split_classes

    return omniglot.drawings(split_classes()["test"][:12])  # (12, 20, 105, 105), held-out characters


def test_characters_on_paper_are_found_and_match_omniglot(drawings):
    rng = np.random.default_rng(0)
    for c in range(12):
        side = int(rng.integers(140, 260))
        centre = (240 + int(rng.integers(-25, 25)), 320 + int(rng.integers(-25, 25)))
        frame, box = draw(rng, drawings[c, 0], side, centre)
        result = frame_to_input(frame, 20)
        assert result.found, result.reason
        assert result.image.shape == (20, 20) and result.image.dtype == np.float32
        assert 0.0 <= result.image.min() and result.image.max() <= 1.0
        x, y, w, h = result.bbox
        bx, by, bw, bh = box
        assert abs(x - bx) <= 6 and abs(y - by) <= 6 and abs(w - bw) <= 10 and abs(h - bh) <= 10
        corr = np.corrcoef(result.image.ravel(), canonical(drawings[c, 0], 20).ravel())[0, 1]
        assert corr > 0.9, f"character {c}: correlation {corr:.2f} with the Omniglot preprocessing"


def test_gray_bgra_and_float_frames(drawings):
    rng = np.random.default_rng(1)
    frame, _ = draw(rng, drawings[0, 0], 200)
    reference = frame_to_input(frame, 28).image
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    for variant in (gray, cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA), gray[:, :, None], frame.astype(np.float32) / 255.0):
        result = frame_to_input(variant, 28)
        assert result.found and np.abs(result.image - reference).mean() < 0.02


def test_a_region_set_by_hand_is_the_only_place_searched(drawings):
    rng = np.random.default_rng(2)
    frame, box = draw(rng, drawings[1, 0], 120, centre=(120, 140))  # top left, outside the centred square
    assert not frame_to_input(frame, 20, roi=centred_roi(frame.shape)).found
    result = frame_to_input(frame, 20, roi=(40, 20, 200, 200))
    assert result.found and result.roi == (40, 20, 200, 200)
    assert abs(result.bbox[0] - box[0]) <= 6 and abs(result.bbox[1] - box[1]) <= 6


@pytest.mark.parametrize("side, centre", [
    (70, (240, 320)),  # a card at arm's length: a small character
    (120, (120, 140)),  # off-centre, top left
    (120, (390, 540)),  # off-centre, bottom right
    (400, (240, 320)),  # held close: larger than the old centred square (288 pixels)
    (330, (250, 430)),  # close and off to the right
])
def test_the_character_is_found_anywhere_in_the_frame(drawings, side, centre):
    rng = np.random.default_rng(side)
    for c in range(4):
        frame, box = draw(rng, drawings[c, 1], side, centre)
        result = frame_to_input(frame, 20)
        assert result.found, result.reason
        assert result.roi == (0, 0, 640, 480)  # the whole frame was searched
        x, y, w, h = result.bbox
        bx, by, bw, bh = box
        tol = 6 + side // 40
        assert abs(x - bx) <= tol and abs(y - by) <= tol and abs(w - bw) <= 2 * tol and abs(h - bh) <= 2 * tol
        corr = np.corrcoef(result.image.ravel(), canonical(drawings[c, 1], 20).ravel())[0, 1]
        assert corr > 0.85, f"character {c}: correlation {corr:.2f} with the Omniglot preprocessing"


def test_a_character_cut_by_the_frame_edge_is_not_found_and_says_so(drawings):
    rng = np.random.default_rng(4)
    for c in range(4):
        frame, box = draw(rng, drawings[c, 0], 300, centre=(240, 320))
        cut = box[0] + box[2] // 3  # the frame's left edge now runs through the character's first third
        shifted = np.ascontiguousarray(np.pad(frame[:, cut:], ((0, 0), (0, cut), (0, 0)), mode="edge"))
        result = frame_to_input(shifted, 20)
        assert not result.found and "cut by the frame's edge" in result.reason, (c, result.reason)


def test_a_character_with_a_stroke_the_frame_edge_cuts_is_not_found(drawings):
    """The body is in view but a separate stroke of it (a dot above it) runs out of the frame: the character is cut,
    not a smaller whole character."""
    rng = np.random.default_rng(6)
    for c in range(4):
        frame, box = draw(rng, drawings[c, 0], 240, centre=(300, 320))
        x, y, w, h = box
        dot_x = x + w // 2
        frame[: max(4, y - 20), dot_x - 8 : dot_x + 8] = 45  # a dot from above the frame down to 20 px above the body
        assert frame_to_input(frame, 20).reason.endswith("the character is cut by the frame's edge; move the card into view")
        frame[:12, dot_x - 8 : dot_x + 8] = frame[:12, dot_x - 40 : dot_x - 24]  # paper over its top: now whole in view
        assert frame_to_input(frame, 20).found


def test_a_character_a_few_pixels_from_the_frame_edge_is_found(drawings):
    """Blur and the coarse pass carry its strokes onto the frame's edge; only the frame's own outermost pixels say
    whether the frame cuts it."""
    rng = np.random.default_rng(5)
    for c in range(4):
        frame, box = draw(rng, drawings[c, 0], 240, centre=(240, 320))
        up = box[1] - 3  # the character's top now lies 3 pixels below the frame's top edge
        shifted = np.ascontiguousarray(np.pad(frame[up:], ((0, up), (0, 0), (0, 0)), mode="edge"))
        result = frame_to_input(shifted, 20)
        assert result.found, (c, result.reason)
        assert result.bbox[1] <= 6 and abs(result.bbox[3] - box[3]) <= 8


def card_on_desk(rng, drawing, card=160, centre=(240, 320), thumb=False):
    """A light card with a character on a dark desk; optionally a thumb on the card's edge and no character."""
    page = paper(rng) * 0.35  # the desk
    cy, cx = centre
    y0, x0 = cy - card // 2, cx - card // 2
    page[y0 : y0 + card, x0 : x0 + card] = paper(rng)[y0 : y0 + card, x0 : x0 + card]
    if drawing is not None:
        side = card // 2
        stroke = cv2.resize((1.0 - drawing).astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        sy, sx = cy - side // 2, cx - side // 2
        page[sy : sy + side, sx : sx + side] = page[sy : sy + side, sx : sx + side] * (1 - stroke) + 45.0 * stroke
    if thumb:
        cv2.ellipse(page, (cx, y0 + card), (card // 9, card // 5), 0, 0, 360, 150.0, -1)
    return cv2.cvtColor(np.clip(cv2.GaussianBlur(page, (3, 3), 0.8), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def test_a_card_on_a_desk_is_read_and_a_thumb_or_an_empty_card_is_not(drawings):
    rng = np.random.default_rng(6)
    result = frame_to_input(card_on_desk(rng, drawings[3, 0], thumb=True), 20)
    assert result.found, result.reason
    x, y, w, h = result.bbox
    assert 280 <= x and x + w <= 360 and 200 <= y and y + h <= 280  # the character, not the thumb below it
    for frame in (card_on_desk(rng, None), card_on_desk(rng, None, thumb=True), card_on_desk(rng, None, 400)):
        result = frame_to_input(frame, 20)
        assert not result.found and result.reason.startswith("no character found"), result.reason


def _overlap(a, b) -> float:
    """Intersection over union of two boxes x, y, w, h."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


@pytest.mark.parametrize("card", [170, 350])
def test_the_thumb_holding_a_card_is_not_read_as_part_of_its_character(omniglot, card):
    """On a card held by a thumb, the box read is the character's own: neither the thumb's rim nor the strip of
    desk between the thumb and the card's edge joins it (the character would shrink in the learner's input)."""
    from edgemeta.runtime.camera.sources import VideoSource
    from edgemeta.runtime.camera.synthetic import synthetic_opener

    uri = f"synthetic://omniglot?classes=5&shots=3&frames_per_shot=2&gap=0&seed=2&card={card}&tilt=20"
    src = VideoSource(uri, open_backend=synthetic_opener(dataset=omniglot))
    overlaps = []
    while (frame := src.read()) is not None:
        truth = src.backend.truth_of(src.frame_index)
        result = frame_to_input(frame, 28)
        assert result.found, (truth.frame, result.reason)
        overlaps.append(_overlap(result.bbox, truth.box))
    assert min(overlaps) > 0.75, [round(o, 2) for o in overlaps]


@pytest.mark.parametrize("make, reason", [
    (lambda rng: paper(rng), "no ink darker than the paper"),
    (lambda rng: paper(rng, noise=20.0), "no ink darker than the paper"),
    (lambda rng: paper(rng, gradient=False) * 0 + 128, "no ink"),
    (lambda rng: np.zeros((480, 640), np.float32), "no ink"),
    (lambda rng: speck(rng), "too little ink"),
    (lambda rng: slab(rng), "no ink"),
    (lambda rng: dots(rng), "no ink"),  # seen whole, a field of dense marks is one dark patch
])
def test_no_character_found(make, reason):
    frame = np.clip(make(np.random.default_rng(3)), 0, 255).astype(np.uint8)
    result = frame_to_input(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), 20)
    assert not result.found and result.image is None and result.bbox is None
    assert result.reason.startswith("no character found") and reason in result.reason


def test_too_much_ink_in_a_region_set_by_hand():
    frame = np.clip(dots(np.random.default_rng(3)), 0, 255).astype(np.uint8)
    result = frame_to_input(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), 20, roi=(176, 96, 288, 288))
    assert not result.found and "too much ink" in result.reason


def speck(rng):
    page = paper(rng)
    page[235:245, 315:325] = 40.0  # a dot of dirt: ink, but far too little for a character
    return page


def slab(rng):
    page = paper(rng)
    page[170:310, 250:390] = 40.0  # a big dark block (a thumb, the table): no strokes in it
    return page


def dots(rng):
    page = paper(rng)
    for y in range(110, 370, 12):
        for x in range(190, 450, 12):
            page[y : y + 8, x : x + 8] = 40.0  # a page of dense marks: more ink than any character
    return page


@pytest.mark.parametrize("frame, message", [
    ([[0, 1], [2, 3]], "numpy array"),
    (np.zeros((480, 640, 2), np.uint8), r"got shape \(480, 640, 2\)"),
    (np.zeros(640, np.uint8), r"got shape \(640,\)"),
    (np.zeros((4, 4, 3), np.uint8), "too small"),
    (np.zeros((480, 640, 3), np.int32), "dtype int32"),
    (np.full((480, 640, 3), np.nan, np.float32), "NaN"),
    (np.full((480, 640, 3), 255.0, np.float32), r"must lie in \[0, 1\]"),
])
def test_bad_frames_are_refused_clearly(frame, message):
    with pytest.raises(FrameError, match=message) as e:
        frame_to_input(frame, 20)
    assert isinstance(e.value, EdgemetaError)


def test_bad_options_are_refused_clearly():
    frame = np.full((480, 640, 3), 200, np.uint8)
    with pytest.raises(FrameError, match="does not fit"):
        frame_to_input(frame, 20, roi=(600, 0, 100, 100))
    with pytest.raises(FrameError, match="roi fraction"):
        centred_roi(frame.shape, 1.5)
    with pytest.raises(FrameError, match="size must be a positive integer"):
        frame_to_input(frame, 0)
    assert centred_roi((480, 640), 0.5) == (200, 120, 240, 240)


def test_a_learner_learns_from_camera_frames(tiny_onnx, omniglot):
    """End to end: teach from synthetic camera frames of held-out characters, name new frames of them."""
    from edgemeta.runtime.omniglot import split_classes
    from edgemeta.runtime import Learner

    test_classes = split_classes()["test"]
    rng = np.random.default_rng(5)
    right = total = 0
    with Learner.load(tiny_onnx) as learner:
        for _ in range(8):
            learner.reset()
            classes = rng.choice(test_classes, 3, replace=False)
            drawings = omniglot.drawings(classes)
            order = [(c, k) for k in range(2) for c in range(3)]
            rng.shuffle(order)
            for c, k in order:
                result = frame_to_input(draw(rng, drawings[c, k], int(rng.integers(150, 250)))[0], learner.input_size)
                learner.teach(result.image, c)
            for c in range(3):
                for k in range(2, 6):
                    result = frame_to_input(draw(rng, drawings[c, k], int(rng.integers(150, 250)))[0], learner.input_size)
                    assert result.found, result.reason
                    right += int(learner.predict(result.image).label[0] == c)
                    total += 1
    assert right / total > 0.55, f"accuracy {right / total:.2f} from frames (chance 0.33)"
