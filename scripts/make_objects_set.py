"""Build runtime/demo_set/objects-demo.npz, the pictures synthetic://objects shows.

    python scripts/make_objects_set.py ~/.cache/edgemeta/icon-themes/tango-icon-theme

Ten 32x32 icons of things from the Tango icon theme (Debian bookworm `tango-icon-theme` 0.8.90-11, public domain),
with their alpha channel, all of them icon classes held out of the objects learner's meta-training
(edgemeta/data/object_domains.py held_out). Arrays: `pictures` (10, 32, 32, 4) uint8 BGRA, `names`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ICONS = {"camera-photo": "devices", "camera-video": "devices", "audio-card": "devices", "folder": "places",
         "package-x-generic": "mimetypes", "face-monkey": "emotes", "utilities-terminal": "apps",
         "help-browser": "apps", "system-search": "actions", "emblem-favorite": "emblems"}
OUT = Path(__file__).resolve().parents[1] / "runtime" / "demo_set" / "objects-demo.npz"


def main(theme: str) -> None:
    folder = Path(theme).expanduser() / "icons" / "Tango" / "32x32"
    pictures = []
    for name, category in ICONS.items():
        path = folder / category / f"{name}.png"
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.shape != (32, 32, 4):
            sys.exit(f"{path}: not a 32x32 RGBA PNG")
        pictures.append(bgra)
    np.savez_compressed(OUT, pictures=np.stack(pictures), names=np.array(list(ICONS)))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
