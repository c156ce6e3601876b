"""An exported objects learner in the runtime: Learner.load binds its RGB image, teaches and predicts; the native
backend refuses it in one line; the demo picks the region front end from the metadata and shows the region.
A small RGB learner with random weights is exported once (no weights wheel needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from edgemeta import EdgemetaError  # noqa: E402
from edgemeta.models import ModelConfig, build_learner  # noqa: E402
from edgemeta.runtime.learner import Learner  # noqa: E402

SIZE = 32
CLASSES = 5


@pytest.fixture(scope="module")
def objects_export(tmp_path_factory):
    from edgemeta.export import export_checkpoint
    from edgemeta.training.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("objects")
    cfg = ModelConfig(arch="mann", image_size=SIZE, num_classes=CLASSES, encoder="efficientnet_lite0", embedding=16,
                      embedding_norm=True, memory_width=16, key_init="embedding", novelty=True, controller=16,
                      memory_slots=16, read_heads=2)
    torch.manual_seed(0)
    save_checkpoint(tmp / "best.pt", {
        "task": "objects", "model_config": cfg.to_dict(), "train_config": {"model": "objects", "episode_length": 20},
        "model": build_learner(cfg).state_dict(), "step": 1, "metrics": {}, "preprocess": "rgb01-area-v1",
        "front_end": "region", "provenance": [{"what": "weights", "source": "random", "licence": "CC0"}]})
    export_checkpoint(tmp / "best.pt", tmp / "export", log=lambda _: None)
    return tmp / "export" / "learner.onnx"


def _colour(bgr) -> np.ndarray:
    frame = np.full((120, 160, 3), 90, np.uint8)
    frame[30:90, 50:110] = bgr
    return frame


def test_an_objects_learner_loads_teaches_and_predicts_rgb_images(objects_export):
    learner = Learner.load(objects_export, backend="ort", threads=1)
    try:
        assert learner.channels == 3 and learner._backend.image.shape == (1, 3, SIZE, SIZE)
        rng = np.random.default_rng(0)
        shots = rng.random((CLASSES, 3, SIZE, SIZE), dtype=np.float32)
        for k in range(CLASSES):
            learner.teach(shots[k], k)
        p = learner.predict(shots[2])
        assert p.probs.shape == (1, CLASSES) and np.isclose(p.probs.sum(), 1.0) and np.isfinite(p.novelty).all()
        with pytest.raises(EdgemetaError, match=r"expected .*3, 32, 32"):
            learner.predict(np.zeros((1, SIZE, SIZE), np.float32))  # an ink map is not an RGB image
    finally:
        learner.close()


def test_the_native_backend_refuses_an_objects_learner_in_one_line(objects_export):
    with pytest.raises(EdgemetaError) as e:
        Learner.load(objects_export, backend="native")
    assert "\n" not in str(e.value) and "native" in str(e.value)


def test_the_demo_uses_the_region_front_end_its_metadata_names_and_shows_the_region(objects_export):
    from edgemeta.runtime.camera import overlay
    from edgemeta.runtime.camera.frames import frame_to_input
    from edgemeta.runtime.camera.region_front import region_to_input
    from edgemeta.runtime.demo.core import DemoCore

    learner = Learner.load(objects_export, backend="ort", threads=1)
    try:
        core = DemoCore(learner)
        assert core.front_end is region_to_input
        obs = core.process(_colour((0, 0, 255)), 0, teach=0)  # a plain red card: no ink, still taught
        assert obs.found and obs.symbol.image.shape == (3, SIZE, SIZE) and obs.taught is not None
        shown = overlay.draw(obs.frame, obs, core.hud())
        x, y, w, h = obs.symbol.roi
        assert (w, h) != obs.frame.shape[1::-1] and tuple(shown[y, x + w // 2]) == overlay.GREEN
    finally:
        learner.close()
    default = Learner.load("default")
    try:
        assert DemoCore(default).front_end is frame_to_input
    finally:
        default.close()


def test_demo_runs_headless_on_an_objects_learner_with_the_script_and_log_contract(objects_export, tmp_path):
    from click.testing import CliRunner

    from edgemeta.cli import cli

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, bgr in enumerate([(0, 0, 255), (0, 255, 0), (0, 0, 255), (0, 255, 0)]):
        cv2.imwrite(str(frames / f"{i:02d}.png"), _colour(bgr))
    script, log = tmp_path / "EVENTS.csv", tmp_path / "log.jsonl"
    script.write_text("frame,label\n0,0\n1,1\n")
    result = CliRunner().invoke(cli, ["demo", "--model", str(objects_export), "--headless", "--source", str(frames),
                                       "--script", str(script), "--log", str(log)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert "header" in rows[0]
    rows = rows[1:]
    assert len(rows) == 4 and [r["taught"] for r in rows] == [0, 1, None, None]
    assert all(r["found"] for r in rows) and all(r["pred"] is not None for r in rows[2:])
