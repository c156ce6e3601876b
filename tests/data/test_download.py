"""The official-zip downloader verifies checksums and never leaves a bad file behind."""
from __future__ import annotations

import hashlib

import pytest

from edgemeta import EdgemetaError
from edgemeta.data.download import download_omniglot


def test_download_verifies_and_is_atomic(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "images_background.zip").write_bytes(b"background bytes")
    good = {"images_background.zip": hashlib.md5(b"background bytes").hexdigest()}
    dest = tmp_path / "data"
    paths = download_omniglot(dest, base_url=server.as_uri(), checksums=good, progress=False)
    assert paths == [dest / "images_background.zip"]
    assert paths[0].read_bytes() == b"background bytes"

    bad = {"images_background.zip": "0" * 32}
    (dest / "images_background.zip").write_bytes(b"old")
    with pytest.raises(EdgemetaError, match="expected 0000"):
        download_omniglot(dest, base_url=server.as_uri(), checksums=bad, progress=False)
    assert (dest / "images_background.zip").read_bytes() == b"old"  # the old file survives
    assert [p.name for p in dest.iterdir()] == ["images_background.zip"]  # no temp files left


def test_unreachable_source_is_a_clear_error(tmp_path):
    with pytest.raises(EdgemetaError, match="cannot download"):
        download_omniglot(tmp_path, base_url=(tmp_path / "nowhere").as_uri(), progress=False)


def test_download_without_a_folder_goes_where_every_command_looks_last(tmp_path, monkeypatch, capsys):
    from edgemeta.cli import main
    from edgemeta.data import download
    from edgemeta.runtime import omniglot as og

    monkeypatch.delenv("EDGEMETA_DATA", raising=False)
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(og, "CHECKOUT", None)
    monkeypatch.chdir(tmp_path)

    def fake_download(dest):  # what the official download leaves behind, without the network
        (dest / "images_background").mkdir(parents=True)
        return [dest / "images_background"]

    monkeypatch.setattr(download, "download_omniglot", fake_download)
    assert main(["data", "download"]) == 0
    assert "every edgemeta command finds it there" in capsys.readouterr().out
    assert og.find_data_dir() == (tmp_path / "cache" / "omniglot", "edgemeta data download's default folder")
