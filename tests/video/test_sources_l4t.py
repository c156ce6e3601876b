"""A bare camera index on a Jetson is its CSI camera (jetson-inference's grammar), and --input-flip turns
a csi:// camera's frames in its pipeline. L4T is faked with a stand-in /etc/nv_tegra_release."""
from __future__ import annotations

import pytest

from edgemeta import EdgemetaError
from edgemeta.cli import main
from edgemeta.runtime.camera import sources
from edgemeta.runtime.camera.sources import FLIPS, parse_uri


@pytest.fixture
def jetson(tmp_path, monkeypatch):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    monkeypatch.setattr(sources, "L4T_RELEASE_FILE", release)


@pytest.fixture
def pc(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "L4T_RELEASE_FILE", tmp_path / "absent")


def test_a_bare_index_is_the_csi_camera_on_a_jetson(jetson):
    spec = parse_uri("0", 1280, 720, 30)
    assert spec.kind == "csi" and spec.uri == "csi://0" and "nvarguscamerasrc sensor-id=0 " in spec.target
    assert parse_uri("1").target.startswith("nvarguscamerasrc sensor-id=1 ")
    # A device node is still what it says: the user asked for V4L2 (a USB camera is /dev/video1 beside a CSI one).
    assert parse_uri("/dev/video1").kind == "v4l2"


def test_a_bare_index_is_a_v4l2_camera_elsewhere(pc):
    spec = parse_uri("0")
    assert spec.kind == "v4l2" and spec.target == 0


@pytest.mark.parametrize("flip, method", [("none", 0), ("rotate-180", 2), ("horizontal", 4), ("upper-left-diagonal", 7)])
def test_input_flip_reaches_nvvidconv(pc, flip, method):
    assert f"nvvidconv flip-method={method} !" in parse_uri("csi://0", flip=flip).target


def test_input_flip_is_refused_where_it_cannot_apply(pc, tmp_path):
    with pytest.raises(EdgemetaError, match="--input-flip applies to csi:// cameras"):
        parse_uri("0", flip="rotate-180")
    with pytest.raises(EdgemetaError, match="unknown flip 'upside-down'; valid: none, counterclockwise"):
        parse_uri("csi://0", flip="upside-down")


def test_demo_passes_input_flip_to_the_csi_pipeline(jetson, monkeypatch, tmp_path, capsys):
    opened = []

    def refuse(spec, *args):
        opened.append(spec)
        raise EdgemetaError(f"cannot open {spec.uri!r}: no camera in this test")

    monkeypatch.setattr(sources, "_default_backend", refuse)
    rc = main(["demo", "--headless", "--source", "0", "--input-flip", "rotate-180", "--max-frames", "1"])
    err = capsys.readouterr().err
    assert rc != 0 and "cannot open 'csi://0'" in err and "Traceback" not in err
    assert opened[0].kind == "csi" and "flip-method=2" in opened[0].target


def test_demo_refuses_input_flip_on_other_sources(pc, capsys):
    rc = main(["demo", "--headless", "--source", "synthetic://omniglot", "--input-flip", "clockwise"])
    err = capsys.readouterr().err
    assert rc != 0 and "--input-flip applies to csi:// cameras" in err and "Traceback" not in err


def test_demo_offers_exactly_the_flips_sources_knows():
    from edgemeta.cli.demo import command

    option = next(p for p in command.params if p.name == "input_flip")
    assert tuple(option.type.choices) == FLIPS
