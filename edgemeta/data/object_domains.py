"""The objects learner's visual domains: classes of RGB pictures, each class several instances.

| domain | a class | its instances | source, licence |
|---|---|---|---|
| icons | one freedesktop icon name (`folder`, `user-trash`) | the same concept drawn by each theme's artists | Debian bookworm `tango-icon-theme` 0.8.90-11 (public domain), `gnome-icon-theme` 3.12.0-5 (GPL-2+/GPL-3+), `mate-icon-theme` 1.26.0-1 (LGPL-3+ or CC-BY-SA), `oxygen-icon-theme` 5:5.103.0-1 (LGPL-3+) |
| omniglot | one character | its 20 drawings, rendered dark ink on coloured paper | Omniglot (Lake et al. 2015), MIT |
| letters (never trained) | one Latin letter or digit | OpenCV's eight Hershey fonts | drawn by OpenCV (Apache-2.0), Hershey fonts public domain |

Classes split into train / test by a hash of their name (icons, letters) or by the pinned Omniglot split, so
the split never depends on what else is on disk.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from edgemeta import EdgemetaError

ICON_THEMES = ("tango-icon-theme", "gnome-icon-theme", "mate-icon-theme", "oxygen-icon-theme")
ICON_SIZES = ("48x48", "32x32")  # the largest bitmap size each theme ships first
MIN_THEMES = 3  # a class needs this many artists' versions
TEST_SHARE = 0.25  # classes held out of meta-training


def held_out(name: str) -> bool:
    """Whether class `name` is a test class: a stable hash, independent of the other classes present."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < TEST_SHARE


def icon_classes(root: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """{icon name: [RGBA uint8 image per theme]} from `root/<theme>/icons/...` (extracted Debian packages).

    Symlinked names are aliases of another icon, not another drawing, so only real files count.
    """
    root = Path(root)
    per_theme: dict[str, dict[str, Path]] = {}
    for theme in ICON_THEMES:
        found: dict[str, Path] = {}
        for size in ICON_SIZES:
            for path in sorted((root / theme).glob(f"icons/*/{size}/*/*.png")):
                if not path.is_symlink():
                    found.setdefault(path.stem, path)
        if found:
            per_theme[theme] = found
    if len(per_theme) < MIN_THEMES:
        raise EdgemetaError(f"{root}: found icon themes {sorted(per_theme)}; need {MIN_THEMES} of {', '.join(ICON_THEMES)} "
                            "(apt-get download them and dpkg-deb -x each into its own folder there)")
    names = sorted(set().union(*per_theme.values()))
    classes = {}
    for name in names:
        paths = [found[name] for found in per_theme.values() if name in found]
        if len(paths) >= MIN_THEMES:
            classes[name] = [_rgba(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in paths]
    return classes


def _rgba(image: np.ndarray) -> np.ndarray:
    """BGR(A)/grey from OpenCV -> RGBA uint8."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


def omniglot_classes(classes: np.ndarray, data=None) -> dict[str, list[np.ndarray]]:
    """{character name: [RGBA drawing]}: ink opaque black, paper transparent (the augmentation adds paper)."""
    from edgemeta.runtime.omniglot import load_omniglot

    omniglot = load_omniglot(data)
    masks = omniglot.drawings(classes)  # 1 = paper
    out = {}
    for c, drawings in zip(classes, masks):
        images = []
        for paper in drawings:
            rgba = np.zeros((*paper.shape, 4), np.uint8)
            rgba[..., 3] = (1 - paper) * 255
            images.append(rgba)
        out[omniglot.name(int(c))] = images
    return out


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijkmnqrty23456789"  # glyphs that differ between upper and lower case
HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
           cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


def letter_classes() -> dict[str, list[np.ndarray]]:
    """{letter: [RGBA glyph per Hershey font]}: the never-trained domain, drawn here, nothing to download."""
    out = {}
    for ch in LETTERS:
        images = []
        for font in HERSHEY:
            canvas = np.zeros((96, 96), np.uint8)
            scale = 2.2 if font != cv2.FONT_HERSHEY_PLAIN else 4.0
            (w, h), _ = cv2.getTextSize(ch, font, scale, 4)
            cv2.putText(canvas, ch, ((96 - w) // 2, (96 + h) // 2), font, scale, 255, 4, cv2.LINE_AA)
            rgba = np.zeros((96, 96, 4), np.uint8)
            rgba[..., 3] = canvas
            images.append(rgba)
        out[f"letter-{ch}"] = images
    return out
