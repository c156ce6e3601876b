"""`edgemeta bench` and the timing helpers behind it (numbers are printed, never asserted as speeds)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from runtime_toy import toy_learner

from edgemeta.cli import main
from edgemeta.runtime import Learner
from edgemeta.runtime.bench import bench_learner, format_report, naive_ort_loop, runtime_step_loop, inputs_for


@pytest.fixture
def toy(tmp_path):
    return toy_learner(tmp_path / "toy.onnx", novelty=True)


def test_runtime_loop_computes_what_the_naive_loop_computes(tiny_onnx):
    """The timed fast path is the same computation as the baseline it is compared with."""
    with Learner.load(tiny_onnx, threads=1, batch=2) as learner:
        images, _, onehots = inputs_for(learner, count=8)
        fast = runtime_step_loop(learner, images, onehots)
        naive = naive_ort_loop(tiny_onnx, 1, images, onehots)
        for i in range(20):
            fast(i)
            naive(i)
        import onnxruntime as ort

        sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
        state = {k: np.zeros((2, *s), np.float32) for k, s in learner.state_shapes.items()}
        for i in range(20):
            outs = sess.run(None, {"image": images[i % 8], "prev_label": onehots[i % 8], **state})
            state = dict(zip(learner.state_shapes, outs[1 : 1 + len(state)]))
        for name, value in learner.state().items():
            np.testing.assert_allclose(value, state[name], atol=1e-5)


def test_bench_report(toy):
    with Learner.load(toy, threads=1) as learner:
        report = bench_learner(learner, steps=30, runs=2, threads=1)
        assert learner.num_taught == 0  # the bench leaves a fresh learner behind
    assert set(report["timings"]) == {"runtime step", "Learner.teach", "naive session.run"}
    for t in report["timings"].values():
        assert 0 < t["median_us"] <= t["p99_us"] and len(t["run_medians_us"]) == 2
    assert report["speedup_vs_naive"] > 0 and report["state_bytes"] == 16
    text = format_report(report)
    assert "naive session.run" in text and "steps/s" in text and "state: 16 bytes" in text and "peak memory" in text


def test_bench_command(toy, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(toy), "--steps", "20", "--runs", "2", "--batch", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "runtime step" in printed and "vs naive session.run" in printed and "stream-steps/s" in printed
    report = json.loads(out.read_text())
    assert report["batch"] == 2 and report["threads"] == 1 and report["timings"]["runtime step"]["median_us"] > 0


def test_bench_command_errors(toy, capsys):
    assert main(["bench", "nonesuch"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no shipped learner named 'nonesuch'") and "\n" not in err
    assert main(["bench", str(toy), "--backend", "torch"]) == 1
    assert "not toy.onnx" in capsys.readouterr().err
    assert main(["bench", str(toy), "--backend", "trt"]) == 1
    assert "backend 'trt' runs TensorRT engines" in capsys.readouterr().err
    if importlib.util.find_spec("tensorrt") is None:
        engine = toy.with_suffix(".engine")
        engine.write_bytes(toy.read_bytes())
        assert main(["bench", str(engine), "--backend", "trt"]) == 1
        assert "TensorRT is not installed" in capsys.readouterr().err
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert main(["bench", str(toy), "--provider", "cuda"]) == 1
        assert "execution provider CUDAExecutionProvider is not available" in capsys.readouterr().err


def test_bench_torch_backend(capsys):
    pytest.importorskip("torch")
    assert main(["bench", "lstm", "--backend", "torch", "--steps", "10", "--runs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "torch learner.step" in printed and "untrained" in printed
