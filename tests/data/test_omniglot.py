"""The dataset reader, the pinned split and the pinned preprocessing."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import omniglot as og
from edgemeta.runtime.preprocess import omniglot_to_input


def test_counts_and_pinned_order(omniglot):
    assert omniglot.packed.shape[:2] == (1623, 20)
    names = list(omniglot.names)
    assert names == og.pinned_order(names)
    assert names[0] == "images_background/Alphabet_of_the_Magi/character01"
    assert names[963].startswith("images_background/Tifinagh/")
    assert names[964] == "images_evaluation/Angelic/character01"
    # plain string sort: character10 comes before character2 where an alphabet has both
    magi = [n for n in names if "/Alphabet_of_the_Magi/" in n]
    assert magi.index("images_background/Alphabet_of_the_Magi/character10") == 9


def test_split_is_pinned_and_disjoint():
    s = og.split_classes()
    assert len(s["train"]) == 1100 and len(s["validation"]) == 100 and len(s["test"]) == 423
    assert set(s["test"]) == set(range(1200, 1623))
    assert not set(s["train"]) & set(s["validation"])
    assert set(s["train"]) | set(s["validation"]) == set(range(1200))
    # the same every time (seeded, never global random)
    assert np.array_equal(og.split_classes()["validation"], s["validation"])


def test_preprocessing_is_ink_one_area_resize(omniglot):
    paper = omniglot.drawings(np.array([0]))[0, 0]  # (105, 105), 1 = paper
    img = omniglot_to_input(paper, 20)
    assert img.shape == (20, 20) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    # mostly paper (0) with some ink (1): an inverted image would be mostly 1
    assert img.mean() < 0.3 and img.max() > 0.5
    # area interpolation keeps the ink mass: mean ink is preserved by averaging
    assert abs(img.mean() - (1 - paper.mean())) < 0.02
    cached = omniglot.images(20)[0, 0]
    np.testing.assert_allclose(cached, img)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(EdgemetaError, match="not found"):
        og.load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(EdgemetaError, match="does not exist"):
        og.load_omniglot(tmp_path / "nope", cache_dir=tmp_path / "cache")


def test_bad_zip_and_wrong_counts_are_clear_errors(tmp_path):
    (tmp_path / "images_background.zip").write_bytes(b"not a zip")
    (tmp_path / "images_evaluation.zip").write_bytes(b"not a zip")
    with pytest.raises(EdgemetaError, match="not a valid zip"):
        og.load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    for name in og.SETS:
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as z:
            z.writestr(f"{name}/Alpha/character01/0001_01.png", b"")
    with pytest.raises(EdgemetaError, match="found 1 characters, expected"):
        og.load_omniglot(tmp_path, cache_dir=tmp_path / "cache")


# --- where the data folder is found ---


def _omniglot_folder(path):
    (path / "images_background").mkdir(parents=True)
    return path


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A checkout, a working directory and a cache, each with a ../shared/data/omniglot slot, none filled."""
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(og, "CHECKOUT", tmp_path / "a" / "repo")
    (tmp_path / "b" / "cwd").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "b" / "cwd")
    return {"checkout": tmp_path / "a" / "shared" / "data" / "omniglot",
            "cwd": tmp_path / "b" / "shared" / "data" / "omniglot",
            "download": tmp_path / "cache" / "omniglot"}


def test_data_folder_lookup_order(places, tmp_path, monkeypatch):
    assert og.find_data_dir() is None
    assert og.default_download_dir() == places["download"]
    _omniglot_folder(places["download"])
    assert og.find_data_dir() == (places["download"], "edgemeta data download's default folder")
    _omniglot_folder(places["cwd"])
    assert og.find_data_dir() == (places["cwd"], "beside the current directory")
    places["checkout"].mkdir(parents=True)  # an empty folder is not the data
    assert og.find_data_dir()[0] == places["cwd"]
    monkeypatch.setenv("EDGEMETA_DATA", str(tmp_path / "env"))
    assert og.find_data_dir() == (tmp_path / "env", "$EDGEMETA_DATA")  # named folders win, existing or not
    assert og.find_data_dir(tmp_path / "given") == (tmp_path / "given", "given")
    with pytest.raises(EdgemetaError, match="env does not exist"):
        og.resolve_data_dir()


def test_the_checkout_convention_comes_first(places):
    for where in ("download", "cwd", "checkout"):
        _omniglot_folder(places[where])
    assert og.find_data_dir() == (places["checkout"], "beside the checkout")
    assert og.resolve_data_dir() == places["checkout"]


def test_no_data_anywhere_names_the_places_and_the_download(places):
    with pytest.raises(EdgemetaError) as e:
        og.resolve_data_dir()
    message = str(e.value)
    assert "no Omniglot directory given or found" in message and "\n" not in message
    assert str(places["checkout"]) in message and str(places["download"]) in message
    assert "edgemeta data download DIR" in message


@pytest.mark.parametrize("args", [["data", "check"], ["train", "--model", "mann", "--out", "RUN", "--episodes", "1"]])
def test_commands_that_need_the_full_set_say_how_to_get_it(places, tmp_path, capsys, args):
    from edgemeta.cli import main

    if args[0] == "train":
        pytest.importorskip("torch")
    assert main([a.replace("RUN", str(tmp_path / "run")) for a in args]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no Omniglot directory given or found" in err and "edgemeta data download DIR" in err
