"""Omniglot on disk: find it, check it, decode it once, cache it, split it (pinned).

Accepted layouts in the data directory (official names):
  images_background.zip + images_evaluation.zip, or the folders
  images_background/ + images_evaluation/ unzipped, with <Alphabet>/characterNN/*.png inside.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_write_with

SETS = ("images_background", "images_evaluation")
EXPECTED_CHARACTERS = {"images_background": 964, "images_evaluation": 659}
DRAWINGS = 20
RAW_SIZE = 105
NUM_CLASSES = 1623
NUM_META_TRAIN = 1200  # pinned: first 1200 characters in the pinned order are meta-train
NUM_VALIDATION = 100  # carved out of the 1200 (never the 423 meta-test) for model selection
VALIDATION_SEED = 20160519  # fixed so every run validates on the same classes

DATA_ENV = "EDGEMETA_DATA"
CACHE_ENV = "EDGEMETA_CACHE"
_HINT = (
    "put images_background.zip and images_evaluation.zip (official Omniglot) in one folder and pass it "
    f"with --data DIR or {DATA_ENV}=DIR, or fetch them with `edgemeta data download DIR`"
)


def resolve_data_dir(data: str | os.PathLike | None) -> Path:
    """The data directory from the argument, else $EDGEMETA_DATA; a clear error if neither is usable."""
    if data is None:
        data = os.environ.get(DATA_ENV)
    if not data:
        raise EdgemetaError(f"no Omniglot directory given: {_HINT}")
    path = Path(data).expanduser()
    if not path.is_dir():
        raise EdgemetaError(f"Omniglot directory {path} does not exist: {_HINT}")
    return path


@dataclass(frozen=True)
class Omniglot:
    """All 1623 characters in the pinned order, drawings as raw 105x105 paper masks (packed bits)."""

    packed: np.ndarray  # (1623, 20, 105*105/8 rounded up) uint8, np.packbits of paper==1
    names: tuple[str, ...]  # "images_background/Alphabet/characterNN", pinned order

    def drawings(self, classes: np.ndarray | None = None) -> np.ndarray:
        """Paper masks (n, 20, 105, 105) uint8 (1 = paper, 0 = ink) for the given class indices."""
        packed = self.packed if classes is None else self.packed[classes]
        bits = np.unpackbits(packed, axis=-1, count=RAW_SIZE * RAW_SIZE)
        return bits.reshape(packed.shape[0], DRAWINGS, RAW_SIZE, RAW_SIZE)

    def images(self, size: int) -> np.ndarray:
        """Pinned preprocessing of every drawing: (1623, 20, size, size) float32, ink = 1.0 (cached)."""
        return _preprocessed(self, size)


def pinned_order(names: list[str]) -> list[str]:
    """Background first, then evaluation; within each by alphabet then character folder (string sort)."""
    def key(name: str) -> tuple[int, str, str]:
        top, alphabet, character = name.split("/")
        return (SETS.index(top), alphabet, character)

    return sorted(names, key=key)


def split_classes() -> dict[str, np.ndarray]:
    """The pinned class split: indices into the pinned order for train / validation / test."""
    rng = np.random.default_rng(VALIDATION_SEED)
    first = rng.permutation(NUM_META_TRAIN)
    return {
        "train": np.sort(first[NUM_VALIDATION:]),
        "validation": np.sort(first[:NUM_VALIDATION]),
        "test": np.arange(NUM_META_TRAIN, NUM_CLASSES),
    }


def load_omniglot(data: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Omniglot:
    """Decode the dataset once (a few seconds) and reuse the cache afterwards (well under a second)."""
    root = resolve_data_dir(data)
    sources = {name: _find_source(root, name) for name in SETS}
    fingerprint = _fingerprint(sources)
    cache = _cache_dir(cache_dir) / f"omniglot-{fingerprint}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return Omniglot(packed=z["packed"], names=tuple(str(n) for n in z["names"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt, never trusted
    dataset = _decode(sources)
    atomic_write_with(
        cache,
        lambda tmp: np.savez(open(tmp, "wb"), packed=dataset.packed, names=np.array(dataset.names)),
    )
    return dataset


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgemeta"
    return Path(cache_dir)


def _find_source(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.zip", root / name):
        if candidate.exists():
            return candidate
    raise EdgemetaError(f"{name}.zip (or folder {name}/) not found in {root}: {_HINT}")


def _fingerprint(sources: dict[str, Path]) -> str:
    h = hashlib.sha256()
    for name, path in sorted(sources.items()):
        st = path.stat()
        h.update(f"{name}:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _list_pngs(source: Path, top: str) -> dict[str, list[tuple[str, object]]]:
    """character name -> [(file name, opener)], for a zip or a folder."""
    chars: dict[str, list[tuple[str, object]]] = {}
    if source.is_file():
        try:
            zf = zipfile.ZipFile(source)
        except zipfile.BadZipFile as e:
            raise EdgemetaError(f"{source} is not a valid zip ({e}): download it again; {_HINT}") from None
        for info in zf.infolist():
            parts = info.filename.strip("/").split("/")
            if info.is_dir() or not parts[-1].endswith(".png"):
                continue
            if len(parts) != 4 or parts[0] != top:
                raise EdgemetaError(
                    f"{source}: unexpected entry {info.filename!r}; expected {top}/<Alphabet>/<character>/*.png"
                )
            chars.setdefault("/".join(parts[:3]), []).append((parts[3], lambda i=info, z=zf: z.read(i)))
    else:
        for png in source.glob("*/*/*.png"):
            rel = png.relative_to(source).parts
            chars.setdefault("/".join((top,) + rel[:2]), []).append((png.name, png.read_bytes))
    return chars


def _decode(sources: dict[str, Path]) -> Omniglot:
    import cv2
    from tqdm import tqdm

    chars: dict[str, list[tuple[str, object]]] = {}
    for name, source in sources.items():
        found = _list_pngs(source, name)
        if len(found) != EXPECTED_CHARACTERS[name]:
            raise EdgemetaError(
                f"{source}: found {len(found)} characters, expected {EXPECTED_CHARACTERS[name]}; "
                f"is it the full official {name}? {_HINT}"
            )
        chars.update(found)
    names = pinned_order(list(chars))
    row_bytes = (RAW_SIZE * RAW_SIZE + 7) // 8
    packed = np.zeros((len(names), DRAWINGS, row_bytes), dtype=np.uint8)
    for ci, name in enumerate(tqdm(names, desc="decoding Omniglot (once)", unit="char", leave=False)):
        files = sorted(chars[name])
        if len(files) != DRAWINGS:
            raise EdgemetaError(f"{name}: {len(files)} drawings, expected {DRAWINGS}; the dataset is damaged")
        for di, (fname, read) in enumerate(files):
            img = cv2.imdecode(np.frombuffer(read(), np.uint8), cv2.IMREAD_GRAYSCALE)
            if img is None or img.shape != (RAW_SIZE, RAW_SIZE):
                raise EdgemetaError(f"{name}/{fname}: not a {RAW_SIZE}x{RAW_SIZE} image; the dataset is damaged")
            packed[ci, di] = np.packbits((img > 127).reshape(-1))
    return Omniglot(packed=packed, names=tuple(names))


_PREPROCESSED: dict[tuple[int, int], np.ndarray] = {}


def _preprocessed(dataset: Omniglot, size: int) -> np.ndarray:
    from edgemeta.runtime.preprocess import omniglot_batch_to_input

    key = (id(dataset.packed), size)
    if key not in _PREPROCESSED:
        paper = dataset.drawings().reshape(-1, RAW_SIZE, RAW_SIZE)
        _PREPROCESSED[key] = omniglot_batch_to_input(paper, size).reshape(len(dataset.names), DRAWINGS, size, size)
    return _PREPROCESSED[key]
