"""Your own images as a meta-learning data set: one folder per class, an optional grouping level above.

Layouts of DIR (the first image-holding level decides):
  DIR/<class>/*.png|jpg|...            classes named "<class>"
  DIR/<group>/<class>/*.png|jpg|...    classes named "<group>/<class>" (as Omniglot has alphabets)
Files of other types are skipped (and counted); a file with an image extension that does not decode is
a defect, named. Images may be any size, gray or RGB: each is decoded once to gray, squeezed to
STORED_SIZE x STORED_SIZE (area resize) and cached, keyed by the files' content. The learner's input is
then the pinned preprocessing (runtime/preprocess.py): ink = 1 - brightness, area resize to S x S, so a
dark mark on a light background is what the camera demo sees too.

The split is pinned: class names sorted, permuted with SPLIT_SEED, the first ones validation, the next
meta-test, the rest meta-train (`split_sizes`). A hash of the class list travels with every checkpoint
and export, so that evaluating on a folder whose classes changed is refused instead of silently
mixing meta-train classes into the meta-test.
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import atomic_write_with

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
STORED_SIZE = 105  # decoded images are cached at this size (Omniglot's), then area-resized to the learner's S
SPLIT_SEED = 20160519  # the same seed as Omniglot's validation classes: fixed, so every run splits alike
MIN_SPLIT = 5  # validation and meta-test hold at least this many classes (5-way episodes)
CACHE_FORMAT = "image-folder-v1"  # part of the cache key: a new decoder gives new cache files
KIND = "image-folder"


def split_sizes(n: int) -> dict[str, int]:
    """Classes in each part of the pinned split of `n` classes: 10% validation and 20% meta-test, each
    at least MIN_SPLIT, the rest meta-train (which may come out empty: `problems` then says so)."""
    validation = max(MIN_SPLIT, round(0.1 * n))
    test = max(MIN_SPLIT, round(0.2 * n))
    return {"train": max(0, n - validation - test), "validation": validation, "test": test}


def pinned_split(classes: list[str]) -> dict[str, list[str]]:
    """Class names of each part (each sorted): sorted names permuted by SPLIT_SEED, then cut."""
    names = sorted(classes)
    order = [names[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))]
    sizes = split_sizes(len(names))
    v, t = sizes["validation"], sizes["test"]
    return {"train": sorted(order[v + t:]), "validation": sorted(order[:v]), "test": sorted(order[v:v + t])}


def class_list_hash(classes: list[str]) -> str:
    """sha256 (16 hex digits) of the sorted class names and the split rule: what a checkpoint pins."""
    text = f"{CACHE_FORMAT}:{SPLIT_SEED}:" + "\n".join(sorted(classes))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_image_folder(root: Path) -> bool:
    """Whether `root` holds a class folder with at least one image file (at depth 1 or 2)."""
    return any(_is_image(p) for pattern in ("*/*", "*/*/*") for p in root.glob(pattern))


@dataclass
class FolderScan:
    """What is in DIR, before any decoding."""

    root: Path
    layout: str  # "classes" or "grouped"
    files: dict[str, list[Path]]  # class name -> its image files, sorted
    ignored: list[Path] = field(default_factory=list)  # files that are not images (skipped)

    @property
    def classes(self) -> list[str]:
        return sorted(self.files)


def scan(root: str | Path) -> FolderScan:
    """The classes of an image folder and their files; one-line errors for a folder with no classes."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise EdgemetaError(f"image folder {root} does not exist")
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    direct = {d: sorted(f for f in d.iterdir() if f.is_file()) for d in top}
    flat = [d for d in top if any(_is_image(f) for f in direct[d])]
    if flat:
        layout, folders = "classes", {d.name: d for d in flat}
        mixed = [d.name for d in top if d not in flat and any(_is_image(f) for f in d.rglob("*"))]
        if mixed:
            raise EdgemetaError(f"{root}: mixes class folders ({flat[0].name}/ holds images) with grouped ones "
                                f"({mixed[0]}/ holds class folders); use DIR/<class>/* or DIR/<group>/<class>/*")
    else:
        layout = "grouped"
        folders = {f"{g.name}/{c.name}": c for g in top for c in sorted(g.iterdir())
                   if c.is_dir() and not c.name.startswith(".")}
        folders = {n: d for n, d in folders.items() if any(_is_image(f) for f in d.iterdir())}
    if not folders:
        raise EdgemetaError(f"{root} holds no class folders with images; expected DIR/<class>/*.png (or .jpg, ...) or "
                            "DIR/<group>/<class>/*.png, or Omniglot's zips")
    files, ignored = {}, []
    for name, folder in folders.items():
        entries = sorted(f for f in folder.iterdir() if f.is_file())
        files[name] = [f for f in entries if _is_image(f)]
        ignored += [f for f in entries if not _is_image(f)]
    return FolderScan(root=root, layout=layout, files=files, ignored=ignored)


@dataclass(frozen=True)
class ImageFolder:
    """A decoded image folder: every class's images as gray STORED_SIZE squares, uint8."""

    root: Path
    layout: str
    classes: tuple[str, ...]  # sorted class names
    images: tuple[np.ndarray, ...]  # per class: (n_c, STORED_SIZE, STORED_SIZE) uint8 gray, 255 = white
    sizes: tuple[tuple[int, int, int], ...]  # per class: (height, width, channels) of its first image
    ignored: int  # non-image files skipped

    @property
    def counts(self) -> list[int]:
        return [len(x) for x in self.images]

    @property
    def class_hash(self) -> str:
        return class_list_hash(list(self.classes))

    def split(self) -> dict[str, list[str]]:
        return pinned_split(list(self.classes))

    def class_images(self, names: list[str], size: int, per_class: int | None = None) -> np.ndarray:
        """(len(names), per_class, size, size) float32 through the pinned preprocessing (ink = 1). Every
        class gives its first `per_class` images in file-name order (default: the fewest any class has),
        as episodes need the same number of images per class."""
        from edgemeta.runtime.preprocess import ink_to_input

        index = {n: i for i, n in enumerate(self.classes)}
        missing = [n for n in names if n not in index]
        if missing:
            raise EdgemetaError(f"{self.root} has no class {missing[0]!r}")
        per_class = per_class or min(len(self.images[index[n]]) for n in names)
        out = np.empty((len(names), per_class, size, size), np.float32)
        for i, name in enumerate(names):
            for j, img in enumerate(self.images[index[name]][:per_class]):
                out[i, j] = ink_to_input(1.0 - img.astype(np.float32) / 255.0, size)
        return out

    def split_images(self, size: int) -> dict[str, np.ndarray]:
        """The pinned split's parts as arrays for the episode samplers (see class_images)."""
        parts = self.split()
        per_class = min(self.counts)
        return {part: self.class_images(names, size, per_class) for part, names in parts.items()}

    def describe(self) -> dict:
        """What a checkpoint records of the data set: enough for `eval` to refuse a changed folder."""
        return {"kind": KIND, "root": str(self.root.resolve()), "layout": self.layout, "classes": len(self.classes),
                "class_hash": self.class_hash, "images_per_class": min(self.counts), "split": self.split()}


def problems(folder: FolderScan, decoded: dict[str, list], bad: list[tuple[Path, str]], ways: int,
             instances: int) -> list[str]:
    """Every defect, one line each: too few classes for the ways, too few images for the instances,
    unreadable files, the same image in two classes."""
    lines = [f"{path}: {why}" for path, why in bad]
    sizes = split_sizes(len(folder.files))
    for part in ("train", "validation", "test"):
        if sizes[part] < ways:
            lines.append(f"{folder.root}: {len(folder.files)} classes give {sizes[part]} {part} classes, fewer than "
                         f"--ways {ways} (the split needs at least {MIN_SPLIT + MIN_SPLIT + ways} classes)")
            break
    for name, images in decoded.items():
        if len(images) < instances:
            lines.append(f"{folder.root / name}: {len(images)} readable images, fewer than --instances {instances}")
    owners: dict[str, list[str]] = {}
    for name, images in decoded.items():
        for path, digest in images:
            owners.setdefault(digest, []).append(str(path.relative_to(folder.root)))
    for paths in owners.values():
        classes = {str(Path(p).parent) for p in paths}
        if len(classes) > 1:
            lines.append(f"{folder.root}: the same image is in {len(classes)} classes: {', '.join(sorted(paths))}")
    return lines


def check_folder(root: str | Path, ways: int, instances: int, cache_dir=None) -> tuple[ImageFolder | None, list[str]]:
    """(the data set, or None where a file is unreadable; every defect as one line)."""
    folder = scan(root)
    digests = {name: [(f, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files] for name, files in folder.files.items()}
    dataset, bad = _load(folder, digests, cache_dir)
    readable = {n: [(f, d) for f, d in items if f not in {p for p, _ in bad}] for n, items in digests.items()}
    return dataset, problems(folder, readable, bad, ways, instances)


def load_image_folder(root: str | Path, ways: int = 1, instances: int = 1, cache_dir=None) -> ImageFolder:
    """The decoded folder (cached by content); an EdgemetaError naming the first defect when there is one."""
    dataset, lines = check_folder(root, ways, instances, cache_dir)
    if lines:
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        raise EdgemetaError(f"{lines[0]}{more}; `edgemeta data check {root}` lists them all")
    return dataset


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _load(folder: FolderScan, digests: dict[str, list[tuple[Path, str]]], cache_dir) -> tuple[ImageFolder | None, list]:
    """Decode every image once; a cache file keyed by the files' names and bytes serves later calls."""
    from edgemeta.runtime.omniglot import cache_root

    key = hashlib.sha256(CACHE_FORMAT.encode())
    for name in folder.classes:
        for path, digest in digests[name]:
            key.update(f"{name}/{path.name}:{digest}\n".encode())
    cache = (Path(cache_dir) if cache_dir else cache_root() / "folders") / f"{key.hexdigest()[:24]}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                counts, sizes = z["counts"], z["sizes"]
                bounds = np.cumsum(counts)[:-1]
                images = tuple(np.split(z["images"], bounds))
            return ImageFolder(folder.root, folder.layout, tuple(folder.classes), images,
                               tuple(tuple(int(v) for v in s) for s in sizes), len(folder.ignored)), []
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt, never trusted
    images, sizes, bad = [], [], []
    for name in folder.classes:
        decoded, first = [], (0, 0, 0)
        for path, _ in digests[name]:
            gray, shape = _decode(path)
            if gray is None:
                bad.append((path, "unreadable or corrupt image (it does not decode)"))
                continue
            first = first if decoded else shape
            decoded.append(gray)
        images.append(np.stack(decoded) if decoded else np.zeros((0, STORED_SIZE, STORED_SIZE), np.uint8))
        sizes.append(first)
    if bad:
        return None, bad
    dataset = ImageFolder(folder.root, folder.layout, tuple(folder.classes), tuple(images), tuple(sizes),
                          len(folder.ignored))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a path
            np.savez(f, images=np.concatenate(images), counts=np.array(dataset.counts), sizes=np.array(sizes))

    atomic_write_with(cache, write)
    return dataset, []


def _decode(path: Path) -> tuple[np.ndarray | None, tuple[int, int, int]]:
    """-> (gray STORED_SIZE square uint8, (height, width, channels)), or (None, ...) for a file that does not decode."""
    import cv2

    data = np.frombuffer(path.read_bytes(), np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        return None, (0, 0, 0)
    channels = 1 if img.ndim == 2 else img.shape[2]
    if img.dtype != np.uint8:  # 16-bit PNG or TIFF
        img = (img.astype(np.float32) / max(1.0, float(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1.0))
               * 255).clip(0, 255).astype(np.uint8)
    if channels == 4:  # transparent pixels over white paper
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    gray = img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    shape = (img.shape[0], img.shape[1], channels)
    return cv2.resize(gray, (STORED_SIZE, STORED_SIZE), interpolation=cv2.INTER_AREA), shape
