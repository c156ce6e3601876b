"""The data a run meta-trains on: Omniglot (its pinned split) or an image folder (its own pinned split).

`training_task` picks one from --data: a folder holding Omniglot's zips (or none named: the lookup in
runtime/omniglot.py) is Omniglot; a folder of class folders is an image folder (data/image_folder.py).
Both give the loop the same things: meta-train and validation images, samplers, and a record of the
data set for the checkpoint (`describe`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemeta import EdgemetaError


class EpisodeTask:
    """Samplers over a split, sized for the model's input. Subclasses set train_images,
    validation_images and rotations (the default of the 90-degree class rotations)."""

    train_images: np.ndarray  # (classes, images, S, S) float32
    validation_images: np.ndarray
    rotations: bool
    train_drawings: np.ndarray | None = None  # (classes, images, 105, 105) paper masks, for camera views

    def _setup(self, model_cfg, cfg) -> None:
        from edgemeta.data.episodes import EpisodeSampler

        if cfg.ways[1] > model_cfg.num_classes:
            raise EdgemetaError(f"--ways {cfg.ways[1]} exceeds the model's {model_cfg.num_classes} classes")
        self.rotate = self.rotations if cfg.rotations is None else cfg.rotations
        self.train = EpisodeSampler(self.train_images, model_cfg.num_classes, cfg.ways, instances=cfg.instances,
                                    steps=cfg.episode_length, augment=cfg.augment, rotate=self.rotate,
                                    camera_views=cfg.camera_views, drawings=self.train_drawings)

    def device_sampler(self, model_cfg, cfg, device):
        import torch

        from edgemeta.data.device_sampler import DeviceEpisodeSampler

        return DeviceEpisodeSampler(torch.from_numpy(self.train_images).to(device), model_cfg.num_classes, cfg.ways,
                                    instances=cfg.instances, steps=cfg.episode_length, augment=cfg.augment,
                                    rotate=self.rotate)

    def describe(self) -> dict:
        raise NotImplementedError


class OmniglotTask(EpisodeTask):
    """Omniglot's pinned split (runtime/omniglot.py); rotations on by default (the paper's augmentation)."""

    rotations = True

    def __init__(self, model_cfg, cfg):
        from edgemeta.runtime.omniglot import load_omniglot, split_classes

        omniglot = load_omniglot(cfg.data)
        images = omniglot.images(model_cfg.image_size)
        split = split_classes()
        self.train_images = images[split["train"]]
        self.validation_images = images[split["validation"]]
        if cfg.camera_views:
            self.train_drawings = omniglot.drawings(split["train"])
        self._setup(model_cfg, cfg)

    def describe(self) -> dict:
        return {"kind": "omniglot"}


class FolderTask(EpisodeTask):
    """An image folder's pinned split (data/image_folder.py); rotations off by default (photos)."""

    rotations = False

    def __init__(self, model_cfg, cfg):
        from edgemeta.data.image_folder import load_image_folder

        if cfg.camera_views:
            raise EdgemetaError("--camera-views shows Omniglot drawings as the symbol camera would; an image folder "
                                "has no such drawings: drop it")
        per_class = cfg.instances or 1
        self.dataset = load_image_folder(cfg.data, ways=cfg.ways[1], instances=per_class)
        parts = self.dataset.split_images(model_cfg.image_size)
        self.train_images, self.validation_images = parts["train"], parts["validation"]
        self._setup(model_cfg, cfg)

    def describe(self) -> dict:
        return self.dataset.describe()


def is_omniglot(data) -> bool:
    """Whether --data names Omniglot: nothing named (the lookup finds it), or a folder with its zips."""
    from edgemeta.runtime.omniglot import has_omniglot

    if not data:
        return True
    root = Path(data).expanduser()
    if has_omniglot(root):
        return True
    # A folder with sub-folders is meant as an image folder (its reader says what it lacks); anything
    # else is left to Omniglot's loader, which says what it expected.
    return not (root.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()))


def training_task(model_cfg, cfg) -> EpisodeTask:
    return OmniglotTask(model_cfg, cfg) if is_omniglot(cfg.data) else FolderTask(model_cfg, cfg)


def meta_test_images(data, dataset: dict | None, size: int) -> tuple[np.ndarray, str]:
    """Meta-test images for evaluation -> (classes, images, S, S) and where they come from.

    dataset: what the checkpoint or export recorded of its training data (None: Omniglot). An image
    folder must have the class list it was trained on, else evaluation is refused.
    """
    from edgemeta.data.image_folder import KIND, load_image_folder

    folder = (dataset or {}).get("kind") == KIND
    data = data or (dataset["root"] if folder else None)
    if is_omniglot(data):
        if folder:
            raise EdgemetaError(f"this learner was trained on the image folder {dataset['root']}; pass --data with "
                                "that folder (Omniglot's classes are not its meta-test classes)")
        from edgemeta.runtime.omniglot import load_omniglot, split_classes

        return load_omniglot(data).images(size)[split_classes()["test"]], "Omniglot meta-test"
    images = load_image_folder(data)
    if folder and dataset["class_hash"] != images.class_hash:
        raise EdgemetaError(f"{data}: its class list changed since training (hash {images.class_hash}, the learner "
                            f"was trained on {dataset['class_hash']}: {dataset['classes']} classes); the pinned "
                            "split would put meta-train classes in the meta-test. Restore the folder, or re-train")
    return images.class_images(images.split()["test"], size), f"meta-test classes of {data}"
