"""Cache the frozen EfficientNet-Lite0's features of camera-style views, so meta-training the objects head
runs on a CPU in minutes.

    python -m edgemeta.data.feature_cache --icons icon-themes --out runs/objects-features

One file per (domain, block of classes), `<domain>-<block>.npz`: `features` [classes, instances, views, 1280]
float16, `names`, `test` (held-out flag per class). A finished block is never recomputed, so an interrupted
run resumes where it stopped; progress goes to stderr.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

BLOCK = 32  # classes per cache file: the unit of resumption
OMNIGLOT_TRAIN, OMNIGLOT_TEST = 200, 100  # characters taken from the pinned train / test splits


def _views(images: list[np.ndarray], rng: np.random.Generator, size: int, views: int, mask_only: bool) -> np.ndarray:
    from edgemeta.data.camera_augment import camera_view, random_ink

    return np.stack([
        np.stack([camera_view(img, rng, size, random_ink(rng) if mask_only else None) for _ in range(views)])
        for img in images
    ])  # [instances, views, S, S, 3]


def cache_domain(domain: str, classes: dict[str, list[np.ndarray]], out: Path, size: int, views: int,
                 seed: int, mask_only: bool, instances: int, is_test=None, encode=None) -> None:
    """`is_test(name)`: whether a class is held out (default: the name hash of object_domains.held_out).
    `encode`: images [N, 3, S, S] in [0, 1] -> features [N, ...] (default: the backbone's pooled 1280)."""
    import torch

    from edgemeta.data.object_domains import held_out
    is_test = is_test or held_out
    from edgemeta.models.efficientnet_lite import load_pretrained
    from edgemeta.runtime.atomic import atomic_path

    encode = encode or load_pretrained().features
    names = sorted(classes)
    blocks = range(0, len(names), BLOCK)
    start = time.time()
    for b, first in enumerate(blocks):
        path = out / f"{domain}-{b:03d}.npz"
        if path.exists():
            continue
        block_names = names[first : first + BLOCK]
        rng = np.random.default_rng([seed, b, len(domain)])
        feats = []
        for name in block_names:
            imgs = classes[name][:instances]
            pix = _views(imgs, rng, size, views, mask_only)  # [I, V, S, S, 3]
            x = torch.from_numpy(pix.reshape(-1, size, size, 3)).permute(0, 3, 1, 2).float().div(255)
            with torch.no_grad():
                f = encode(x)
            f = f.reshape(len(imgs), views, *f.shape[1:])
            feats.append(f.numpy().astype(np.float16))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds ".npz" to a name
            np.savez(f, features=np.stack(feats), names=np.array(block_names),
                     test=np.array([is_test(n) for n in block_names]))
        done = first + len(block_names)
        print(f"{domain}: {done}/{len(names)} classes, {time.time() - start:.0f} s", file=sys.stderr, flush=True)


def load_cache(out: str | Path, domain: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """features [classes, instances, views, ...] float32 (1280 pooled by default), names, test flags, one domain."""
    files = sorted(Path(out).glob(f"{domain}-*.npz"))
    if not files:
        from edgemeta import EdgemetaError

        raise EdgemetaError(f"no cached features for {domain!r} in {out}: run python -m edgemeta.data.feature_cache")
    parts = [np.load(f) for f in files]
    return (np.concatenate([p["features"] for p in parts]).astype(np.float32),
            [str(n) for p in parts for n in p["names"]], np.concatenate([p["test"] for p in parts]))


@click.command()
@click.option("--icons", type=click.Path(exists=True, file_okay=False), required=True,
              help="folder with the extracted Debian icon themes (edgemeta/data/object_domains.py)")
@click.option("--omniglot", "omniglot_data", default=None, help="Omniglot folder (default: found as everywhere)")
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--size", default=96, show_default=True, help="S: the learner's input side")
@click.option("--views", default=4, show_default=True, help="camera views per instance")
@click.option("--seed", default=0, show_default=True)
def main(icons, omniglot_data, out, size, views, seed):
    cache_all(icons, omniglot_data, out, size, views, seed)


def cache_all(icons, omniglot_data, out, size: int = 96, views: int = 4, seed: int = 0, encode=None) -> None:
    """Every domain's views, the same for any `encode` with the same seed (the view RNG never sees `encode`)."""
    from edgemeta.data.object_domains import icon_classes, letter_classes, omniglot_classes
    from edgemeta.runtime.omniglot import split_classes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = split_classes()
    rng = np.random.default_rng(seed)
    chars = np.sort(np.concatenate([rng.choice(split["train"], OMNIGLOT_TRAIN, replace=False),
                                    rng.choice(split["test"], OMNIGLOT_TEST, replace=False)]))
    omniglot = omniglot_classes(chars, omniglot_data)
    cache_domain("icons", icon_classes(icons), out, size, views, seed, mask_only=False, instances=4,
                 encode=encode)
    cache_domain("letters", letter_classes(), out, size, views, seed, mask_only=True, instances=8, encode=encode)
    # Omniglot's own pinned split decides: its test characters are the evaluation alphabets
    cache_domain("omniglot", omniglot, out, size, 2, seed, mask_only=True, instances=10,
                 is_test=lambda name: name.startswith("images_evaluation"), encode=encode)


if __name__ == "__main__":
    main()
