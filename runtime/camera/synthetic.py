"""The synthetic camera: realistic few-shot camera sessions with no camera, and their ground truth.

`synthetic://omniglot?classes=5&shots=10&frames_per_shot=10&gap=2&seed=0&width=640&height=480&data=DIR`
`synthetic://omniglot?card=300&offset=20&tilt=30`: a card held at a distance, off-centre, tilted


A session shows `classes` held-out (meta-test) Omniglot characters, `shots` times each. A shot is one
drawing of the character held in front of the camera for `frames_per_shot` frames, after `gap` frames of
empty paper (the card being swapped). Shots come in rounds: every round shows each class once, in a fresh
random order, so classes recur in random order and the k-th shot of every class comes before the
(k+1)-th of any. Each shot is a different one of the character's 20 drawings (different people wrote them).
The drawings come from the full data set when one is configured (data=, --data, or the lookup in
runtime/omniglot.py), else from the embedded demo set of 40 meta-test characters (`data_source` says which).

What makes it look like a camera: the raw 105x105 drawing is warped onto the frame with a random
perspective, rotation and scale (changing slowly while the card is held: motion, approach), in a random
pen colour and thickness, on off-white paper with texture and uneven lighting (gradient, vignette),
defocus and motion blur, brightness flicker and sensor noise. Everything follows from `seed`: frame i of
a session is the same on every machine and can be rendered on its own (`render(i)`).

Distance, position and tilt: with `card=S` the character is written on a card about S pixels on a side
(150: at arm's length, 600: held close, filling the view and more) lying on a darker desk, a thumb
sometimes holding its edge; the character covers about half of the card. Without `card` the paper fills
the view and the character's longer side is 20-36% of the frame's shorter side, aimed at the middle.
`offset=P` moves the card's centre off the frame's by up to P% of the frame's width and height; `tilt=D`
turns the card's plane away from the camera by up to D degrees (perspective). A character that the frame
edge cuts has `whole=False` in its ground truth.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

import cv2
import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.omniglot import DRAWINGS, load_omniglot_or_demo_set, split_classes


@dataclass(frozen=True)
class SyntheticParams:
    classes: int = 5
    shots: int = 10  # shots per class (each a different drawing; at most 20)
    frames_per_shot: int = 10
    gap: int = 2  # frames of empty paper before each shot
    seed: int = 0
    width: int = 640
    height: int = 480
    data: Optional[str] = None  # Omniglot directory; default: the opener's, else the lookup, else the embedded demo set
    card: int = 0  # the card's side in pixels (its distance); 0: the paper fills the view
    offset: int = 0  # the card's centre lies up to this percentage of the frame's width and height off the centre
    tilt: int = 0  # the card's plane turns away from the camera by up to this many degrees

    def __post_init__(self):
        limits = {"classes": (1, 423), "shots": (1, DRAWINGS), "frames_per_shot": (1, 10_000), "gap": (0, 10_000),
                  "width": (64, 8192), "height": (64, 8192), "card": (0, 8192), "offset": (0, 50), "tilt": (0, 70),
                  "seed": (0, 2**63 - 1)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise EdgemetaError(f"synthetic://omniglot: {name}={value} is out of range; use {lo}..{hi}")
        if 0 < self.card < 32:
            raise EdgemetaError(f"synthetic://omniglot: card={self.card} is too small to hold a character; use 0 "
                                "(the paper fills the view) or 32..8192 pixels")


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one synthetic frame."""

    frame: int  # index in the session
    card: bool  # a character is in view
    label: Optional[int] = None  # class index within the session, 0..classes-1
    omniglot_class: Optional[int] = None  # index in the pinned Omniglot order
    drawing: Optional[int] = None  # which of the character's 20 drawings
    shot: Optional[int] = None  # global shot index
    class_shot: Optional[int] = None  # 0-based: the how-many-th shot of this class
    shot_frame: Optional[int] = None  # frame within the shot, 0..frames_per_shot-1
    whole: Optional[bool] = None  # the whole character is in view (False: the frame edge cuts it); None: not rendered
    box: Optional[tuple] = None  # the character's ink box in frame pixels, x, y, w, h (may reach outside the frame)


def parse_params(generator: str, query: dict[str, str]) -> SyntheticParams:
    """The query of a synthetic:// URI -> SyntheticParams, with one-line errors naming the valid keys."""
    if generator != "omniglot":
        raise EdgemetaError(f"unknown synthetic generator {generator!r}; valid: synthetic://omniglot, synthetic://objects")
    known = {f.name: f for f in fields(SyntheticParams)}
    values: dict[str, object] = {}
    for key, raw in query.items():
        if key not in known:
            raise EdgemetaError(f"synthetic://omniglot: unknown parameter {key!r}; valid: {', '.join(known)}")
        if key == "data":
            values[key] = raw or None
            continue
        try:
            values[key] = int(raw)
        except ValueError:
            raise EdgemetaError(f"synthetic://omniglot: {key}={raw!r} is not an integer") from None
    return SyntheticParams(**values)


def synthetic_opener(data: str | os.PathLike | None = None, dataset=None) -> Callable[[object], "SyntheticCamera"]:
    """VideoSource's `open_backend` for a synthetic:// URI. The session draws from `dataset` when given (an
    Omniglot already loaded), else from the URI's data=, else from `data`, else from the folder the lookup in
    runtime/omniglot.py finds."""

    def open_backend(spec) -> SyntheticCamera:
        if spec.target == "objects":  # things for the objects learner (runtime/camera/synthetic_objects.py)
            from edgemeta.runtime.camera.synthetic_objects import objects_camera

            return objects_camera(spec.params)
        params = parse_params(spec.target, spec.params)
        if params.data is None and data is not None:
            params = replace(params, data=str(data))
        return SyntheticCamera(params, dataset=dataset)

    return open_backend


class SessionPlan:
    """What a session shows and when, without rendering or data: classes, drawings, the shot schedule and
    the ground truth of every frame (scripts and tests can plan with it alone)."""

    def __init__(self, params: SyntheticParams, pool: np.ndarray | None = None):
        """pool: the meta-test classes to choose from (pinned indices); default all 423."""
        self.params = p = params
        rng = np.random.default_rng([p.seed, 0])
        pool = split_classes()["test"] if pool is None else pool
        self.omniglot_classes = np.sort(rng.choice(pool, size=p.classes, replace=False))
        self.drawing_of = np.stack([rng.permutation(DRAWINGS)[: p.shots] for _ in range(p.classes)])
        self.shot_labels = self._schedule(rng)
        self.shot_len = p.gap + p.frames_per_shot
        self.num_frames = len(self.shot_labels) * self.shot_len
        self.middle_frame = p.frames_per_shot // 2

    def _schedule(self, rng) -> np.ndarray:
        """Labels of the shots in order: rounds of a random permutation, no class twice in a row."""
        order: list[int] = []
        for _ in range(self.params.shots):
            perm = list(rng.permutation(self.params.classes))
            if order and len(perm) > 1 and perm[0] == order[-1]:
                perm[0], perm[1] = perm[1], perm[0]
            order.extend(int(c) for c in perm)
        return np.array(order, dtype=np.int64)

    def __len__(self) -> int:
        return self.num_frames

    def truth_of(self, i: int) -> FrameTruth:
        shot, k = divmod(i, self.shot_len)
        if k < self.params.gap:
            return FrameTruth(frame=i, card=False)
        label = int(self.shot_labels[shot])
        class_shot = int(np.count_nonzero(self.shot_labels[:shot] == label))
        return FrameTruth(
            frame=i, card=True, label=label, omniglot_class=int(self.omniglot_classes[label]),
            drawing=int(self.drawing_of[label, class_shot]), shot=shot, class_shot=class_shot,
            shot_frame=k - self.params.gap,
        )

    def truths(self) -> list[FrameTruth]:
        return [self.truth_of(i) for i in range(self.num_frames)]

    def is_middle(self, truth: FrameTruth) -> bool:
        """The frame a person would teach: the middle of the shot, when the card is steady."""
        return truth.card and truth.shot_frame == self.middle_frame


class RenderedSession(SessionPlan):
    """A planned session whose frames are rendered on demand: the VideoSource backend's read() and close().

    Subclasses implement render(i) -> (BGR frame, FrameTruth); after each read(), `truth` is the FrameTruth of
    the frame returned.
    """

    next = 0
    truth: Optional[FrameTruth] = None

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        raise NotImplementedError

    def check_index(self, i: int) -> None:
        if not 0 <= i < self.num_frames:
            raise IndexError(f"frame {i} outside the session's {self.num_frames} frames")

    def read(self) -> Optional[np.ndarray]:
        if self.next >= self.num_frames:
            return None
        frame, self.truth = self.render(self.next)
        self.next += 1
        return frame

    def close(self) -> None:
        pass


class SyntheticCamera(RenderedSession):
    """A finite frame source (the VideoSource backend for synthetic://): read() -> BGR frame or None at the end.

    After each read(), `truth` is the FrameTruth of the frame returned.
    """

    def __init__(self, params: SyntheticParams, dataset=None):
        p = params
        if dataset is None:
            try:
                dataset = load_omniglot_or_demo_set(p.data)
            except EdgemetaError as e:
                raise EdgemetaError(f"synthetic://omniglot needs the Omniglot dataset: {e}") from None
        pool = dataset.meta_test_classes()
        if p.classes > len(pool):
            raise EdgemetaError(f"synthetic://omniglot: classes={p.classes}, but {dataset.source} has {len(pool)}: ask "
                                f"for fewer, or get all 423 with `edgemeta data download DIR` and pass --data DIR")
        super().__init__(params, pool)
        self.data_source = dataset.source  # which drawings: a data folder, or the embedded demo set
        self.class_names = tuple(dataset.name(c).split("/", 1)[1] for c in self.omniglot_classes)
        self._paper_masks = dataset.drawings(self.omniglot_classes)  # (classes, 20, 105, 105), 1 = paper
        self._ink_boxes = _ink_boxes(self._paper_masks)  # (classes, 20, 4): x0, y0, x1, y1 of each drawing's ink
        self._paper = _paper_texture(np.random.default_rng([p.seed, 1]), p.height, p.width)
        self._noise = np.random.default_rng([p.seed, 2]).standard_normal((4, p.height, p.width, 3), np.float32)
        self._shot_cache: tuple[int, dict] | None = None
        self.next = 0
        self.truth: FrameTruth | None = None

    def truth_of(self, i: int) -> FrameTruth:
        """The plan's ground truth, and whether the frame shows the whole character (the rendered pose)."""
        if self.truth is not None and self.truth.frame == i:  # the frame just read: worked out once, in render()
            return self.truth
        truth = super().truth_of(i)
        if not truth.card:
            return truth
        look = self._shot_look(truth.shot)
        jitter = np.random.default_rng([self.params.seed, 3, i]).normal(0, 0.6, 2)  # render()'s first draw
        H, _ = self._pose(look, truth, jitter)
        ink = self._paper_masks[truth.label, truth.drawing] == 0
        if look["thick"]:
            ink = cv2.dilate(ink.astype(np.uint8), np.ones((look["thick"] + 1,) * 2, np.uint8)).astype(bool)
        ys, xs = np.nonzero(ink)
        # Each ink pixel's whole square, not its centre: held close, one drawing pixel spans several frame pixels,
        # and ink whose square reaches the frame's outermost row or column is ink the frame's edge cuts.
        corners = np.concatenate([np.stack([xs + dx, ys + dy], -1) for dx in (0, 1) for dy in (0, 1)])
        at = cv2.perspectiveTransform(corners[None].astype(np.float32), H)[0]
        whole = bool(at.min() >= 1.0 and (at[:, 0] <= self.params.width - 1).all()
                     and (at[:, 1] <= self.params.height - 1).all())
        (x0, y0), (x1, y1) = np.floor(at.min(0)), np.ceil(at.max(0))
        return replace(truth, whole=whole, box=(int(x0), int(y0), int(x1 - x0), int(y1 - y0)))

    def drawing(self, truth: FrameTruth) -> np.ndarray:
        """The Omniglot drawing a card frame shows, as the data set holds it: (105, 105), paper = 1."""
        return self._paper_masks[truth.label, truth.drawing]

    # --- rendering ---

    def render(self, i: int) -> tuple[np.ndarray, FrameTruth]:
        self.check_index(i)
        p = self.params
        truth = self.truth_of(i)
        shot, k = divmod(i, self.shot_len)
        look = self._shot_look(shot)
        rng = np.random.default_rng([p.seed, 3, i])
        if truth.card:
            jitter = rng.normal(0, 0.6, 2)  # the hand's tremor (drawn first: truth_of() draws it again)
            H, card = self._pose(look, truth, jitter)
            out = look["paper"].copy() if card is None else self._card_on_desk(look, card)
            self._draw_character(out, look, truth, H)
        else:
            out = (look["paper"] if look["desk"] is None else look["desk"]).copy()
        # Sensor noise: one of a few pre-drawn fields, flipped at random (drawing fresh noise per frame
        # costs more than everything else), then auto-exposure flicker and the uint8 conversion.
        noise = self._noise[rng.integers(len(self._noise))]
        flip = int(rng.integers(-1, 3))
        if flip < 2:
            noise = cv2.flip(noise, flip)
        out = cv2.scaleAdd(noise, float(look["noise"]), out)
        return cv2.convertScaleAbs(out, alpha=1.0 + rng.normal(0.0, 0.015)), truth

    def _shot_look(self, shot: int) -> dict:
        """Everything fixed during one shot: lighting, paper and ink colour, pose and its motion."""
        if self._shot_cache and self._shot_cache[0] == shot:
            return self._shot_cache[1]
        p = self.params
        rng = np.random.default_rng([p.seed, 4, shot])
        light = _lighting(rng, p.height, p.width)
        tint = np.array([rng.uniform(215, 240), rng.uniform(225, 248), rng.uniform(230, 255)], np.float32)
        paper = (self._paper * light)[..., None] * tint  # (H, W, 3)
        kind = rng.choice(3, p=[0.45, 0.35, 0.2])  # blue pen, black marker, pencil
        ink = {0: (rng.uniform(90, 150), rng.uniform(30, 70), rng.uniform(15, 50)),
               1: (rng.uniform(15, 50),) * 3,
               2: (rng.uniform(70, 110),) * 3}[int(kind)]
        side = min(p.height, p.width)
        look = {
            "paper": paper,
            "ink": light[..., None] * np.array(ink, np.float32),  # the pen's colour under this light
            "opacity": rng.uniform(0.75, 0.95) if kind == 2 else rng.uniform(0.9, 1.0),
            "noise": rng.uniform(2.0, 7.0),
            "thick": int(rng.choice([0, 0, 1, 2])),  # pen thickness: dilation in raw pixels
            "blur": rng.uniform(0.3, 1.4),  # defocus sigma in frame pixels
            # The person aims the character at the middle of the view (the demo's region of interest is
            # a centred square of 60% of the shorter side), its longer side 20-36% of the shorter side.
            "size": rng.uniform(0.2, 0.36) * side,
            "centre": np.array([p.width / 2, p.height / 2]) + np.clip(rng.normal(0, 0.02 * side, 2), -0.05 * side, 0.05 * side),
            "angle": rng.uniform(-12, 12),
            "tilt": rng.normal(0, 0.04, (4, 2)),  # perspective: corner offsets, fraction of the size
            "velocity": np.clip(rng.normal(0, 0.002 * side, 2), -0.004 * side, 0.004 * side),  # px per frame
            "spin": rng.normal(0, 0.25),  # degrees per frame
            "zoom": rng.normal(0, 0.004),  # scale change per frame
            "enter": rng.uniform(3, 12),  # motion blur length (px) on the first frame, as the card arrives
        }
        look.update(self._placement(shot, light, tint))
        self._shot_cache = (shot, look)
        return look

    def _placement(self, shot: int, light: np.ndarray, tint: np.ndarray) -> dict:
        """Distance, position and tilt of the shot (card=, offset=, tilt=), from a stream of their own so that
        sessions without them are the same frames as ever."""
        p = self.params
        rng = np.random.default_rng([p.seed, 5, shot])
        out = {"card": 0.0, "char_frac": 1.0, "char_at": np.zeros(2), "offset": np.zeros(2), "turn": None,
               "desk": None, "thumb": None}
        if p.card:
            out["card"] = p.card * rng.uniform(0.9, 1.1)
            out["char_frac"] = rng.uniform(0.45, 0.6)  # the character's longer side, as a share of the card's
            out["char_at"] = rng.uniform(-0.05, 0.05, 2)  # written about in the middle of the card
            grain = cv2.resize(rng.normal(0, 1, (p.height // 8 + 2, p.width // 3 + 2)).astype(np.float32),
                               (p.width, p.height), interpolation=cv2.INTER_CUBIC)
            shade = rng.uniform(0.25, 0.5)  # a desk well darker than the paper
            desk_tint = tint * np.array([rng.uniform(0.5, 0.8), rng.uniform(0.7, 0.9), 1.0], np.float32)
            out["desk"] = (light * (shade + 0.03 * grain))[..., None] * desk_tint
            if rng.random() < 0.5:  # a thumb on one of the card's edges
                side = int(rng.integers(4))
                skin = np.array([rng.uniform(100, 150), rng.uniform(130, 175), rng.uniform(180, 230)], np.float32)
                out["thumb"] = (side, rng.uniform(-0.2, 0.2), rng.uniform(0.07, 0.1), skin)
        if p.offset:
            out["offset"] = rng.uniform(-1, 1, 2) * p.offset / 100.0 * np.array([p.width, p.height])
        if p.tilt:
            out["turn"] = (rng.uniform(0, np.pi), math.radians(rng.uniform(-p.tilt, p.tilt)))
        return out

    def _pose(self, look: dict, truth: FrameTruth, jitter: np.ndarray):
        """Where the shot's character (and card) is on frame `truth.frame`: the homography from the drawing's
        105x105 pixels to the frame, and the card's corners in the frame (None when the paper fills the view).

        Positions are in card units (the card's side is 1; without a card, the character's square's side is 1):
        turned in the card's plane, tilted out of it (a pinhole camera of focal length the frame's width),
        scaled and moved to the card's centre."""
        t = truth.shot_frame
        zoom = 1 + look["zoom"] * t
        scale = (look["card"] or look["size"]) * zoom
        centre = look["centre"] + look["offset"] + look["velocity"] * t + jitter
        angle = math.radians(look["angle"] + look["spin"] * t)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        focal = float(self.params.width)

        def to_frame(uv: np.ndarray) -> np.ndarray:
            xy = uv @ rot.T * scale
            if look["turn"] is None:
                return xy + centre
            axis_angle, tilt = look["turn"]
            a = np.array([math.cos(axis_angle), math.sin(axis_angle)])
            along = xy @ a
            across = xy - along[:, None] * a  # turning about the axis a foreshortens this part and moves it in depth
            depth = focal + np.linalg.norm(across, axis=1) * np.sign(across @ np.array([-a[1], a[0]])) * math.sin(tilt)
            flat = along[:, None] * a + across * math.cos(tilt)
            return flat * (focal / depth)[:, None] + centre

        square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        # the character's square on the card, with the hand's small perspective wobble ("tilt", a share of its size)
        dst = to_frame((square + look["tilt"]) * look["char_frac"] + look["char_at"])
        card = to_frame(square) if look["card"] else None
        # Omniglot drawings sit anywhere in their 105x105 box: map the character's own box (a square
        # around its ink) to the pose, so that what is centred and sized is the character.
        x0, y0, x1, y1 = self._drawn_box(look, truth)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2
        src = np.array([[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]],
                       np.float32)
        return cv2.getPerspectiveTransform(src, dst.astype(np.float32)), card

    def _drawn_box(self, look: dict, truth: FrameTruth) -> np.ndarray:
        """The drawing's ink box as drawn: the pen's thickness (a dilation by a (thick+1)-square) widens it."""
        x0, y0, x1, y1 = self._ink_boxes[truth.label, truth.drawing]
        k = look["thick"] + 1
        before, after = k - 1 - k // 2, k // 2  # OpenCV's kernel anchor is its centre, k // 2
        size = self._paper_masks.shape[-1]
        return np.array([max(x0 - before, 0), max(y0 - before, 0), min(x1 + after, size), min(y1 + after, size)])

    def _card_on_desk(self, look: dict, card: np.ndarray) -> np.ndarray:
        """The frame before the ink: the desk, the card's paper over it, and a thumb holding the card."""
        h, w = look["paper"].shape[:2]
        mask = np.zeros((h, w), np.uint8)
        cv2.fillConvexPoly(mask, np.round(card * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4)
        alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) * (1.0 / 255.0)
        out = cv2.blendLinear(look["desk"], look["paper"], 1.0 - alpha, alpha)
        if look["thumb"] is not None:
            side, along, width, skin = look["thumb"]
            edge = {0: card[2:4], 1: card[[1, 2]], 2: card[[0, 1]], 3: card[[3, 0]]}[side]  # bottom, right, top, left
            mid = edge.mean(0) + along * (edge[1] - edge[0])
            outward = mid - card.mean(0)
            outward /= max(np.linalg.norm(outward), 1e-6)
            card_side = np.linalg.norm(card[1] - card[0])
            centre = mid + outward * 0.05 * card_side  # the tip reaches a little onto the card
            axes = (int(width * card_side), int(0.2 * card_side))
            angle = math.degrees(math.atan2(outward[1], outward[0])) + 90
            thumb = np.zeros((h, w), np.uint8)
            cv2.ellipse(thumb, tuple(int(v) for v in centre), axes, angle, 0, 360, 255, -1, cv2.LINE_AA)
            t_alpha = thumb.astype(np.float32) * (1.0 / 255.0)
            light = look["paper"].mean(axis=2, keepdims=True) / 235.0
            out = cv2.blendLinear(out, np.ascontiguousarray(np.broadcast_to(light * skin, out.shape), np.float32),
                                  1.0 - t_alpha, t_alpha)
        return out

    def _draw_character(self, out: np.ndarray, look: dict, truth: FrameTruth, H: np.ndarray) -> None:
        t = truth.shot_frame
        mask = self._paper_masks[truth.label, truth.drawing]
        ink = (1 - mask).astype(np.float32)
        if look["thick"]:
            ink = cv2.dilate(ink, np.ones((look["thick"] + 1,) * 2, np.uint8))
        ys, xs = np.nonzero(ink)
        # Composite only inside the character's bounding box (+ room for blur): most of the frame is paper.
        h, w = out.shape[:2]
        box = cv2.perspectiveTransform(np.array([[[xs.min(), ys.min()], [xs.max() + 1, ys.min()], [xs.max() + 1, ys.max() + 1],
                                                  [xs.min(), ys.max() + 1]]], np.float32), H)[0]
        x0, y0 = np.floor(box.min(0)).astype(int) - 12
        x1, y1 = np.ceil(box.max(0)).astype(int) + 12
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        H = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ H
        alpha = cv2.warpPerspective(ink, H, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
        alpha = cv2.GaussianBlur(alpha, (0, 0), look["blur"])
        if t == 0:  # the card is still moving into place
            alpha = _motion_blur(alpha, look["enter"], math.degrees(math.atan2(*look["velocity"][::-1])))
        alpha *= look["opacity"]
        out[y0:y1, x0:x1] = cv2.blendLinear(out[y0:y1, x0:x1], look["ink"][y0:y1, x0:x1], 1.0 - alpha, alpha)


def _ink_boxes(paper_masks: np.ndarray) -> np.ndarray:
    """x0, y0, x1, y1 (exclusive) of the ink of every drawing in (classes, drawings, H, W), paper = 1."""
    ink = paper_masks == 0
    rows, cols = ink.any(axis=3), ink.any(axis=2)
    first = lambda a: a.argmax(-1)
    last = lambda a: a.shape[-1] - a[..., ::-1].argmax(-1)
    return np.stack([first(cols), first(rows), last(cols), last(rows)], axis=-1).astype(np.float32)


def _paper_texture(rng, h: int, w: int) -> np.ndarray:
    """Paper fibres and unevenness: low-frequency blotches plus fine grain, around 1.0."""
    coarse = cv2.resize(rng.normal(0, 1, (h // 24 + 2, w // 24 + 2)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    return 1.0 + 0.012 * coarse + 0.01 * fine


def _lighting(rng, h: int, w: int) -> np.ndarray:
    """Uneven lighting: a gradient across the frame, a vignette and a soft shadow, in about [0.55, 1.05]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x = (x - w / 2) / max(h, w)
    y = (y - h / 2) / max(h, w)
    phi = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0.05, 0.3) * (x * np.cos(phi) + y * np.sin(phi))
    light -= rng.uniform(0.1, 0.4) * (x * x + y * y)
    if rng.random() < 0.5:  # a soft shadow (a hand, the phone) over part of the paper
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        light -= rng.uniform(0.1, 0.25) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(0.1, 0.25) ** 2))
    return np.clip(light, 0.4, 1.1).astype(np.float32)


def _motion_blur(img: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    n = max(3, int(round(length)) | 1)
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (n, n))
    return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
