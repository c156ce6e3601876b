"""`edgemeta export --trt`: engine build and episode parity through TensorRT (needs TensorRT and a CUDA GPU)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorrt")

from edgemeta.export.checkpoint_export import export_checkpoint  # noqa: E402
from edgemeta.export.tensorrt_engine import EngineStep  # noqa: E402
from edgemeta.runtime import contract  # noqa: E402
from toy_checkpoint import CONV, FLAT, make_checkpoint  # noqa: E402

pytestmark = [pytest.mark.trt, pytest.mark.gpu]


@pytest.fixture(autouse=True)
def _synthetic_parity(monkeypatch):
    monkeypatch.delenv("EDGEMETA_DATA", raising=False)


@pytest.mark.parametrize("cfg", [FLAT, CONV], ids=["flat", "conv"])
def test_fp32_engine_keeps_episode_parity(tmp_path, cfg):
    make_checkpoint(tmp_path / "c.pt", cfg, model="mann", ways=(cfg.num_classes,) * 2, instances=13)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out", trt=True, max_batch=4, log=lambda s: None)
    result = report["parity"]["tensorrt"]
    assert result["passed"] and result["precision"] == "fp32"
    assert result["episodes"] == 4 and result["steps"] >= 50
    assert result["logits_max_abs"] <= 1e-4 and result["prediction_mismatches"] == 0
    engine = (tmp_path / "out" / contract.ENGINE_FILE).read_bytes()
    assert (tmp_path / "out" / contract.ENGINE_LOG_FILE).read_text().strip()
    step = EngineStep(engine, [])
    for batch in (1, 4):  # the optimization profile covers 1..max_batch
        feeds = {contract.IMAGE: np.zeros((batch, 1, cfg.image_size, cfg.image_size), np.float32),
                 contract.PREV_LABEL: np.zeros((batch, cfg.num_classes), np.float32)}
        feeds.update({s["name"]: np.zeros((batch, *s["shape"]), np.float32) for s in report["metadata"]["state"]})
        assert step(feeds)[contract.LOGITS].shape == (batch, cfg.num_classes)


def test_fp16_engine_reports_its_precision(tmp_path):
    make_checkpoint(tmp_path / "c.pt", CONV, model="default", ways=(4, 4), instances=None, episode_length=50)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out", trt=True, fp16=True, max_batch=8, log=lambda s: None)
    result = report["parity"]["tensorrt"]
    assert result["passed"] and result["precision"] in ("fp16", "fp16-front")
    assert (tmp_path / "out" / contract.ENGINE_FILE).stat().st_size > 0
