"""`edgemeta export` on bad input: one line naming the problem and the fix, exit 1, nothing half-written."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from edgemeta.training.checkpoint import save_checkpoint
from edgemeta.cli import main
from edgemeta.export import parity
from toy_checkpoint import FLAT, make_checkpoint


@pytest.fixture(autouse=True)
def _synthetic_parity(monkeypatch):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["export", *map(str, args)])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, *needles: str) -> None:
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err


def test_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint\n")
    code, err = run_cli(capsys, tmp_path / "junk.pt", "--out", tmp_path / "out")
    assert code == 1
    assert_one_line(err, "junk.pt", "not a readable edgemeta checkpoint")
    assert not (tmp_path / "out").exists()


def test_unknown_architecture(tmp_path, capsys):
    save_checkpoint(tmp_path / "foo.pt", {"task": "omniglot", "model_config": {**FLAT.to_dict(), "arch": "foo"},
                                          "train_config": {}, "model": {}, "step": 0, "metrics": {}})
    code, err = run_cli(capsys, tmp_path / "foo.pt", "--out", tmp_path / "out")
    assert code == 1
    assert_one_line(err, "foo.pt", "unknown model arch 'foo'")
    assert not (tmp_path / "out").exists()


def test_unwritable_output_directory(tmp_path, capsys):
    make_checkpoint(tmp_path / "c.pt", FLAT)
    (tmp_path / "a_file").write_text("x")
    code, err = run_cli(capsys, tmp_path / "c.pt", "--out", tmp_path / "a_file" / "sub")
    assert code == 1
    assert_one_line(err, "cannot write to", "is a file, not a directory")
    assert (tmp_path / "a_file").read_text() == "x"


def test_output_directory_with_foreign_files_is_refused(tmp_path, capsys):
    make_checkpoint(tmp_path / "c.pt", FLAT)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    code, err = run_cli(capsys, tmp_path / "c.pt", "--out", tmp_path / "photos")
    assert code == 1
    assert_one_line(err, "holds other files", "new or empty directory")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.jpg"]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available(),
                    reason="TensorRT and a CUDA GPU are present here")
def test_trt_without_tensorrt_or_gpu(tmp_path, capsys):
    make_checkpoint(tmp_path / "c.pt", FLAT)
    code, err = run_cli(capsys, tmp_path / "c.pt", "--out", tmp_path / "out", "--trt")
    assert code == 1
    assert_one_line(err, "--trt needs", "pip install 'edgemeta[trt]'", "target device")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_check_keeps_the_previous_export(tmp_path, capsys, monkeypatch):
    """A parity failure (forced with an impossible tolerance) must leave the old export untouched."""
    make_checkpoint(tmp_path / "c.pt", FLAT)
    assert main(["export", str(tmp_path / "c.pt"), "--out", str(tmp_path / "out")]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    capsys.readouterr()
    make_checkpoint(tmp_path / "c.pt", FLAT, seed=9)
    monkeypatch.setattr(parity, "FP32", parity.Tolerance(logits=-1.0, probabilities=None, state=None, exact_predictions=True))
    code, err = run_cli(capsys, tmp_path / "c.pt", "--out", tmp_path / "out")
    assert code == 1
    assert_one_line(err, "parity check failed", "nothing was written")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "out"]  # no staging folder left


def test_a_checkpoint_of_another_task_is_refused(tmp_path, capsys):
    save_checkpoint(tmp_path / "q.pt", {"task": "quadratic", "model_config": {"hidden": 8}, "train_config": {},
                                        "model": {}, "step": 0, "metrics": {}})
    code, err = run_cli(capsys, tmp_path / "q.pt", "--out", tmp_path / "out")
    assert code == 1
    assert_one_line(err, "unknown task 'quadratic'", "edgemeta exports omniglot learners")
    assert not (tmp_path / "out").exists()
