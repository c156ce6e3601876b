"""The TensorRT backend computes what the ONNX Runtime backend computes (needs TensorRT, a CUDA GPU and
cuda-python; skips cleanly elsewhere)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = [pytest.mark.trt, pytest.mark.gpu]


@pytest.fixture(scope="module")
def engine_dir(tiny_onnx, tmp_path_factory):
    pytest.importorskip("tensorrt")
    pytest.importorskip("cuda")  # cuda-python: device memory for the runtime's engine runner
    from edgemeta.runtime.backends.trt_build import build_engine_file

    out = tmp_path_factory.mktemp("engine")
    shutil.copy(tiny_onnx, out / "learner.onnx")
    report = build_engine_file(out / "learner.onnx", max_batch=4, batch=1, log=lambda s: None)  # torch-free, as on a Jetson
    assert report["parity"]["passed"]
    return out


def test_engine_steps_match_onnxruntime(engine_dir, tmp_path):
    from edgemeta.runtime import Learner

    rng = np.random.default_rng(0)
    images = (rng.random((10, 3, 1, 12, 12)) < 0.15).astype(np.float32)
    labels = rng.integers(-1, 3, (10, 3))  # -1: that stream is not taught (a partial commit on the device)
    with Learner.load(engine_dir / "learner.engine", backend="trt", batch=3) as trt, \
            Learner.load(engine_dir / "learner.onnx", backend="ort", batch=3, providers=["cpu"]) as ort:
        assert "TensorRT" in trt.backend
        for t in range(10):
            np.testing.assert_allclose(trt.predict(images[t]).logits, ort.predict(images[t]).logits, atol=1e-4)
            np.testing.assert_allclose(trt.teach(images[t], labels[t]).logits, ort.teach(images[t], labels[t]).logits, atol=1e-4)
        for name, value in ort.state().items():
            np.testing.assert_allclose(trt.state()[name], value, atol=1e-4)
        # State is portable between backends: same model, same file.
        trt.save_state(tmp_path / "s.npz")
        ort.reset()
        ort.load_state(tmp_path / "s.npz")
        np.testing.assert_allclose(ort.predict(images[0]).logits, trt.predict(images[0]).logits, atol=1e-4)
        trt.reset()
        assert all(np.all(v == 0) for v in trt.state().values())


def test_engine_batch_outside_its_profile(engine_dir):
    from edgemeta import EdgemetaError
    from edgemeta.runtime import Learner

    with pytest.raises(EdgemetaError, match="built for batch 1..4"):
        Learner.load(engine_dir / "learner.engine", backend="trt", batch=8)
