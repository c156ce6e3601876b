"""Omniglot on disk: find it, check it, decode it once, cache it, split it (pinned); and the embedded demo set.

Numpy-only, so the synthetic camera (runtime) and training/evaluation (edgemeta) share one reader.

Accepted layouts in the data directory (official names):
  images_background.zip + images_evaluation.zip, or the folders
  images_background/ + images_evaluation/ unzipped, with <Alphabet>/characterNN/*.png inside.

Where the data directory is looked for, first match wins: the folder passed in (--data, a synthetic://
URI's data=), $EDGEMETA_DATA, then the places the project's conventions put it: ../shared/data/omniglot
beside the checkout and beside the current directory, and `edgemeta data download`'s default folder. A
folder named explicitly (argument or $EDGEMETA_DATA) must exist; a conventional one counts only if it
holds the data. Where none is found, the synthetic camera falls back on the embedded demo set (40 meta-test
characters, runtime/demo_set/); training and evaluation need the full set.
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass, replace
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
SHARED_DATA = Path("..") / "shared" / "data" / "omniglot"  # the convention: a shared folder beside the checkout
# The repository root when running from a checkout (runtime/ sits in it), else None (an installed wheel).
_ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = _ROOT if (_ROOT / "pyproject.toml").is_file() else None
# A few dozen meta-test characters shipped as package data, so the demo runs with no data folder.
DEMO_SET = Path(__file__).resolve().parent / "demo_set" / "omniglot-demo.npz"
_HINT = (
    "get the official Omniglot zips with `edgemeta data download DIR` (it verifies their checksums), then "
    f"pass --data DIR or set {DATA_ENV}=DIR"
)


def cache_root() -> Path:
    """edgemeta's per-user cache: $EDGEMETA_CACHE, else ~/.cache/edgemeta."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgemeta").expanduser()


def default_download_dir() -> Path:
    """Where `edgemeta data download` puts the zips when given no folder (the last place looked)."""
    return cache_root() / "omniglot"


def has_omniglot(path: Path) -> bool:
    """Whether `path` holds the background set (zip or folder): enough to call it the data folder."""
    return any((path / f"{SETS[0]}{ext}").exists() for ext in (".zip", ""))


def find_data_dir(data: str | os.PathLike | None = None) -> tuple[Path, str] | None:
    """(data directory, how it was found), or None when no place holds the data.

    A directory named by `data` or $EDGEMETA_DATA is returned even if it does not exist (load_omniglot then
    says so): a folder the user named never silently gives way to another.
    """
    if data:
        return Path(data).expanduser(), "given"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    for path, how in conventional_places():
        if has_omniglot(path):
            return path, how
    return None


def conventional_places() -> list[tuple[Path, str]]:
    """Where the project's conventions put the data, in the order find_data_dir looks."""
    places = [(CHECKOUT / SHARED_DATA, "beside the checkout")] if CHECKOUT is not None else []
    places += [(Path.cwd() / SHARED_DATA, "beside the current directory"),
               (default_download_dir(), "edgemeta data download's default folder")]
    return [(path.resolve(), how) for path, how in places]


def resolve_data_dir(data: str | os.PathLike | None = None) -> Path:
    """The data directory (see find_data_dir); a clear one-line error when there is none."""
    found = find_data_dir(data)
    if found is None:
        places = ", ".join(str(path) for path, _ in conventional_places())
        raise EdgemetaError(f"no Omniglot directory given or found (looked in ${DATA_ENV}, {places}): {_HINT}")
    path = found[0]
    if not path.is_dir():
        raise EdgemetaError(f"Omniglot directory {path} does not exist: {_HINT}")
    return path


@dataclass(frozen=True)
class Omniglot:
    """Omniglot characters, drawings as raw 105x105 paper masks (packed bits): all 1623 in the pinned order,
    or a subset of them (the embedded demo set) whose rows are the pinned indices in `classes`."""

    packed: np.ndarray  # (rows, 20, 105*105/8 rounded up) uint8, np.packbits of paper==1
    names: tuple[str, ...]  # "images_background/Alphabet/characterNN", one per row
    classes: np.ndarray | None = None  # sorted pinned index of each row; None: all 1623 (row = pinned index)
    source: str = ""  # where the drawings come from, for messages and logs

    def rows(self, classes: np.ndarray) -> np.ndarray:
        """Row indices of the given pinned class indices (an error for a class this set does not hold)."""
        classes = np.asarray(classes)
        if self.classes is None:
            return classes
        rows = np.searchsorted(self.classes, classes).clip(0, len(self.classes) - 1)
        if not np.array_equal(self.classes[rows], classes):
            raise EdgemetaError(f"{self.source} does not hold classes {sorted(set(classes.tolist()) - set(self.classes.tolist()))}")
        return rows

    def drawings(self, classes: np.ndarray | None = None) -> np.ndarray:
        """Paper masks (n, 20, 105, 105) uint8 (1 = paper, 0 = ink) for the given pinned class indices."""
        packed = self.packed if classes is None else self.packed[self.rows(classes)]
        bits = np.unpackbits(packed, axis=-1, count=RAW_SIZE * RAW_SIZE)
        return bits.reshape(packed.shape[0], DRAWINGS, RAW_SIZE, RAW_SIZE)

    def name(self, c: int) -> str:
        return self.names[int(self.rows(np.array([c]))[0])]

    def meta_test_classes(self) -> np.ndarray:
        """The pinned meta-test classes this set holds (all 423, or the demo set's)."""
        test = split_classes()["test"]
        return test if self.classes is None else np.intersect1d(test, self.classes)

    def images(self, size: int) -> np.ndarray:
        """Pinned preprocessing of every drawing: (rows, 20, size, size) float32, ink = 1.0 (cached)."""
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


class CacheWarning(UserWarning):
    """The decoded data set could not be cached: everything works, only slower next time."""


def load_omniglot(data: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Omniglot:
    """Decode the dataset once (a few seconds) and reuse the cache afterwards (well under a second)."""
    root = resolve_data_dir(data)
    sources = {name: _find_source(root, name) for name in SETS}
    fingerprint = _fingerprint(sources)
    cache = _cache_dir(cache_dir) / f"omniglot-{fingerprint}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return Omniglot(packed=z["packed"], names=tuple(str(n) for n in z["names"]), source=f"Omniglot in {root}")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt, never trusted
    dataset = replace(_decode(sources), source=f"Omniglot in {root}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a path
            np.savez(f, packed=dataset.packed, names=np.array(dataset.names))

    try:
        atomic_write_with(cache, write)
    except OSError as e:  # a read-only cache, a regular file where the folder belongs, a full disk
        warnings.warn(f"cannot cache the decoded Omniglot in {cache.parent} ({e.strerror or e}); continuing "
                      f"without a cache, so the next run decodes it again: set {CACHE_ENV} to a folder you can write",
                      CacheWarning, stacklevel=2)
    return dataset


def load_demo_set(path: str | os.PathLike = DEMO_SET) -> Omniglot:
    """The embedded demo set: a few dozen meta-test characters, 20 drawings each (runtime/demo_set/README.md)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            packed, names, classes = z["packed"], tuple(str(n) for n in z["names"]), z["classes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise EdgemetaError(f"cannot read the embedded demo set {path} ({e}): reinstall edgemeta, or {_HINT}") from None
    return Omniglot(packed=packed, names=names, classes=classes,
                    source=f"the embedded demo set ({len(names)} meta-test characters)")


def load_omniglot_or_demo_set(data: str | os.PathLike | None = None) -> Omniglot:
    """The full data set when one is named or found (see find_data_dir), else the embedded demo set."""
    return load_omniglot(data) if find_data_dir(data) is not None else load_demo_set()


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    return cache_root() if cache_dir is None else Path(cache_dir)


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
    # disable=None: no bar when stderr is not a terminal, so a log or an error that follows stays one line
    for ci, name in enumerate(tqdm(names, desc="decoding Omniglot (once)", unit="char", leave=False, disable=None)):
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
