"""Write a small image folder to try the toolkit with: CLASSES classes of IMAGES noisy PNG/JPEG images each.

    python examples/custom_learner/make_folder.py DIR [--classes 20] [--images 12]

Each class is a random pattern of dark blocks on light paper; its images are that pattern with noise,
a few pixels of shift and a random size, saved as gray PNG or colour JPEG: the mix a real folder has.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np


def make_folder(root, classes: int = 20, images: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c in range(classes):
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pattern = rng.random((6, 6)) < 0.35
        for i in range(images):
            size = int(rng.integers(40, 90))
            ink = cv2.resize(pattern.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
            ink = np.roll(ink, tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
            paper = np.clip(1 - ink + rng.normal(0, 0.08, ink.shape), 0, 1) * 255
            if i % 2:
                cv2.imwrite(str(folder / f"{i:03d}.jpg"), np.repeat(paper[:, :, None], 3, 2).astype(np.uint8))
            else:
                cv2.imwrite(str(folder / f"{i:03d}.png"), paper.astype(np.uint8))
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--images", type=int, default=12)
    args = parser.parse_args()
    print(f"wrote {make_folder(args.dir, args.classes, args.images)}")
