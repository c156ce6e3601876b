"""Fetch the official Omniglot zips and verify them before they are used.

The checksums are those of the official files (the same ones torchvision checks). A download that
does not match is deleted, never left where the loader would pick it up.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_path

OFFICIAL_BASE = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_omniglot(dest: str | os.PathLike, base_url: str = OFFICIAL_BASE, checksums: dict[str, str] | None = None,
                      progress: bool = True) -> list[Path]:
    """Download both zips into `dest` (skipping ones already there and verified); returns their paths."""
    from tqdm import tqdm

    checksums = OFFICIAL_MD5 if checksums is None else checksums
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for name, md5 in checksums.items():
        target = dest / name
        if target.exists() and md5sum(target) == md5:
            done.append(target)
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with atomic_path(target) as tmp:
                with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                        while block := resp.read(1 << 16):
                            out.write(block)
                            bar.update(len(block))
                got = md5sum(tmp)
                if got != md5:
                    raise EdgemetaError(f"{name} from {url} has md5 {got}, expected {md5}; not saved, try again later")
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise EdgemetaError(f"cannot download {url} ({reason}); check the network or copy the zips into {dest} by hand") from None
        done.append(target)
    return done
