"""Make the embedded demo set (runtime/demo_set/omniglot-demo.npz) from the full Omniglot data set.

    python scripts/make_demo_set.py [--data DIR] [--characters 40]

It holds `--characters` of the 423 pinned meta-test characters (chosen by a fixed seed, so the same ones every
time; the shipped learners never trained on them), all 20 drawings of each, bit-packed as in the decode cache
and compressed: about 140 KB for 40. synthetic://omniglot draws from it when no data folder is configured.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgemeta.runtime.atomic import atomic_write_with
from edgemeta.runtime.omniglot import DEMO_SET, load_demo_set, load_omniglot, split_classes

SEED = 22


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="Omniglot directory (else the usual lookup)")
    ap.add_argument("--characters", type=int, default=40, help="meta-test characters to keep")
    ap.add_argument("--out", type=Path, default=DEMO_SET)
    args = ap.parse_args()

    full = load_omniglot(args.data)
    test = split_classes()["test"]
    classes = np.sort(np.random.default_rng(SEED).choice(test, size=args.characters, replace=False))
    names = np.array([full.names[c] for c in classes])

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, packed=full.packed[classes], names=names, classes=classes)

    atomic_write_with(args.out, write)
    demo = load_demo_set(args.out)
    assert np.array_equal(demo.drawings(classes), full.drawings(classes))
    alphabets = sorted({n.split("/")[1] for n in names})
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {len(classes)} meta-test characters from "
          f"{len(alphabets)} alphabets ({', '.join(alphabets)})")


if __name__ == "__main__":
    main()
