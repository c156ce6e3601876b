"""Image folders as data sets: layouts, the pinned split and its hash, defects in one line, the cache, rotations."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.data import image_folder as imf
from edgemeta.data.episodes import EpisodeSampler
from edgemeta.data.tasks import is_omniglot, meta_test_images

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "custom_learner"))
from make_folder import make_folder  # noqa: E402


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    return make_folder(tmp_path / "imgs", classes=16, images=6)


class Result:
    def __init__(self, exit_code, output):
        self.exit_code, self.output = exit_code, output


@pytest.fixture
def check(capsys):
    def run(path, *args):
        code = main(["data", "check", str(path), *args])
        out = capsys.readouterr()
        return Result(code, out.out + out.err)
    return run


def test_classes_split_hash_and_a_stray_file(folder, check):
    (folder / "class00" / "notes.txt").write_text("not an image")
    ds = imf.load_image_folder(folder)
    assert ds.layout == "classes" and len(ds.classes) == 16 and ds.counts == [6] * 16 and ds.ignored == 1
    split = ds.split()
    assert [len(split[p]) for p in ("train", "validation", "test")] == [6, 5, 5]
    assert sorted(sum(split.values(), [])) == list(ds.classes)  # disjoint and complete
    assert split == imf.pinned_split(list(reversed(ds.classes)))  # by sorted names, seeded: the same every time
    images = ds.split_images(20)
    assert images["train"].shape == (6, 6, 20, 20) and images["train"].dtype == np.float32
    assert 0.0 <= images["train"].min() and images["train"].max() <= 1.0
    # dark blocks on light paper come out as ink = 1 on paper = 0, the camera's convention
    assert images["train"].mean() < 0.5
    result = check(folder, "--instances", "5")
    assert result.exit_code == 0, result.output
    assert "16 classes" in result.output and "1 non-image files skipped" in result.output
    assert "split: train 6, validation 5, test 5" in result.output


def test_grouped_layout_names_classes_by_group(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    flat = make_folder(tmp_path / "flat", classes=12, images=3)
    for i, c in enumerate(sorted(flat.iterdir())):
        shutil.move(str(c), str(tmp_path / "grouped" / f"group{i % 2}" / c.name))
    ds = imf.load_image_folder(tmp_path / "grouped")
    assert ds.layout == "grouped" and ds.classes[0] == "group0/class00" and len(ds.classes) == 12


def test_each_defect_is_one_named_line(folder, check):
    (folder / "class01" / "broken.png").write_bytes(b"not a png at all")
    shutil.copy(folder / "class02" / "000.png", folder / "class03" / "copy.png")
    for f in sorted((folder / "class04").iterdir())[2:]:
        f.unlink()
    result = check(folder, "--ways", "6", "--instances", "3")
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 4, result.output
    assert any("class01/broken.png: unreadable or corrupt" in p for p in problems)
    assert any("fewer than --ways 6" in p for p in problems)
    assert any("class04: 2 readable images, fewer than --instances 3" in p for p in problems)
    assert any("same image is in 2 classes: class02/000.png, class03/copy.png" in p for p in problems)
    assert "Traceback" not in result.output
    with pytest.raises(EdgemetaError, match="broken.png.*and 3 more problems.*edgemeta data check"):
        imf.load_image_folder(folder, ways=6, instances=3)


def test_no_classes_is_one_line(tmp_path, check):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "readme.txt").write_text("x")
    result = check(tmp_path / "empty")
    assert result.exit_code == 1 and "holds no class folders with images" in result.output


def test_decoded_once_then_read_from_the_cache_keyed_by_content(folder, monkeypatch):
    first = imf.load_image_folder(folder)
    monkeypatch.setattr(imf, "_decode", lambda path: pytest.fail("decoded again despite the cache"))
    again = imf.load_image_folder(folder)
    assert all(np.array_equal(a, b) for a, b in zip(first.images, again.images))
    # new content, new key: the changed file is decoded
    cv2.imwrite(str(folder / "class00" / "000.png"), np.zeros((30, 30), np.uint8))
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        imf.load_image_folder(folder)


def test_folder_or_omniglot(folder, tmp_path):
    assert not is_omniglot(folder)
    assert is_omniglot(None)
    (tmp_path / "og").mkdir()
    (tmp_path / "og" / "images_background.zip").write_bytes(b"")
    assert is_omniglot(tmp_path / "og")


def test_eval_refuses_a_folder_whose_classes_changed(folder):
    record = imf.load_image_folder(folder).describe()
    images, where = meta_test_images(None, record, 20)  # the recorded folder, its meta-test classes
    assert images.shape == (5, 6, 20, 20) and "meta-test classes" in where
    (folder / "class07").rename(folder / "class99")
    with pytest.raises(EdgemetaError, match="class list changed since training"):
        meta_test_images(str(folder), record, 20)
    with pytest.raises(EdgemetaError, match="trained on the image folder"):
        meta_test_images(str(folder.parent / "nothing-here"), record, 20)


def test_rotations_are_a_separate_switch(monkeypatch):
    """rotate=False keeps the jitter and draws no rotations; Omniglot's default (rotate=True) is as before."""
    import edgemeta.data.episodes as episodes

    rng = np.random.default_rng(0)
    images = rng.random((8, 5, 12, 12)).astype(np.float32)
    monkeypatch.setattr(episodes, "jitter", lambda imgs, rng: imgs)
    plain = EpisodeSampler(images, 5, 5, instances=3).sample(4, np.random.default_rng(1))
    no_rot = EpisodeSampler(images, 5, 5, instances=3, augment=True, rotate=False).sample(4, np.random.default_rng(1))
    rot = EpisodeSampler(images, 5, 5, instances=3, augment=True).sample(4, np.random.default_rng(1))
    assert np.array_equal(plain.images, no_rot.images)
    assert not np.array_equal(plain.images, rot.images)
