"""backend="native": the shipped mann step as one compiled C function computes what ONNX Runtime
computes on learner.onnx (fp32: to float rounding over whole episodes; int8: the same predictions
almost always), keeps the live protocol, and refuses what it cannot run in one line."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner, contract
from edgemeta.runtime.learner import LEARNERS_DIR

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")

MANN = LEARNERS_DIR / "mann.onnx"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """One build cache for the session, away from the user's."""
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path_factory.getbasetemp() / "edgemeta-cache"))


def backend_step(learner):
    """A parity StepFn over a Learner's backend: state in, one run, state out."""
    be = learner._backend

    def step(feeds):
        np.copyto(be.image, feeds[contract.IMAGE])
        np.copyto(be.prev_label, feeds[contract.PREV_LABEL])
        be.write_state({n: feeds[n] for n in be.state_names})
        be.run()
        be.commit()
        out = {contract.LOGITS: be.logits.copy(), **{contract.state_out(n): v for n, v in be.read_state().items()}}
        if be.novelty is not None:
            out[contract.NOVELTY] = be.novelty.copy()
        return out

    return step


@pytest.fixture(scope="module")
def episodes(data_dir):
    from edgemeta.export.parity import episode_inputs

    return episode_inputs(5, 20, batch=8, steps=50, data=str(data_dir), seed=0)


@pytest.fixture(scope="module")
def reference(episodes, tmp_path_factory):
    from edgemeta.export.parity import run_episodes

    with Learner.load(MANN, backend="ort", providers=["cpu"], threads=1, batch=8) as ort:
        return run_episodes(backend_step(ort), ort.state_shapes, episodes)


def _native_trace(episodes, precision):
    from edgemeta.export.parity import run_episodes

    with Learner.load(MANN, backend="native", batch=8, precision=precision) as nat:
        assert "native C step" in nat.backend
        return run_episodes(backend_step(nat), nat.state_shapes, episodes)


def test_fp32_matches_onnxruntime_over_whole_episodes(episodes, reference):
    from edgemeta.export.parity import FP32, compare

    result = compare(reference, _native_trace(episodes, "fp32"), FP32)
    assert result["passed"], result["failures"]
    assert result["logits_max_abs"] <= 1e-4 and result["prediction_mismatches"] == 0


def test_int8_agrees_with_onnxruntime_fp32(episodes, reference):
    from edgemeta.export.parity import INT8, compare

    result = compare(reference, _native_trace(episodes, "int8"), INT8)
    agreement = 1 - result["prediction_mismatches"] / result["predictions"]
    assert agreement >= 0.97, f"{agreement:.1%} of predictions identical"


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_learns_held_out_classes_from_a_few_examples(omniglot, precision):
    """Teach 2 drawings each of 5 meta-test characters; other drawings of them are named well above chance."""
    from edgemeta.runtime.omniglot import split_classes

    from conftest import taught_accuracy

    images = omniglot.images(20)[split_classes()["test"]]
    with Learner.load("mann", backend="native", precision=precision) as learner:
        accuracy = taught_accuracy(learner, images, ways=5, rounds=10, queries=4)
    assert accuracy > 0.6, f"accuracy {accuracy:.2f} on held-out classes (chance 0.2)"


def test_predict_never_commits_and_streams_are_independent():
    rng = np.random.default_rng(2)
    images = (rng.random((6, 3, 1, 20, 20)) < 0.15).astype(np.float32)
    labels = rng.integers(-1, 5, (6, 3))
    with Learner.load("mann", backend="native", batch=3, precision="fp32") as multi:
        batched = [multi.teach(images[t], labels[t]).logits for t in range(6)]
        before = multi.state()
        for _ in range(5):
            multi.predict(rng.random((3, 1, 20, 20), dtype=np.float32))
        after = multi.state()
        assert all(np.array_equal(before[n], after[n]) for n in before)
    for s in range(3):
        with Learner.load("mann", backend="native", precision="fp32") as single:
            for t in range(6):
                out = (single.teach(images[t, s], int(labels[t, s])) if labels[t, s] >= 0 else single.predict(images[t, s]))
                np.testing.assert_allclose(batched[t][s], out.logits[0], atol=1e-5)
            for name, value in single.state().items():
                np.testing.assert_allclose(before[name][s], value[0], atol=1e-5)


def test_state_files_move_between_backends(tmp_path):
    rng = np.random.default_rng(5)
    images = (rng.random((4, 20, 20)) < 0.15).astype(np.float32)
    with Learner.load("mann", backend="native", precision="fp32") as nat:
        for i, x in enumerate(images):
            nat.teach(x, i % 5)
        nat.save_state(tmp_path / "state.npz")
        expected = nat.predict(images[0]).logits
    with Learner.load("mann", backend="ort", providers=["cpu"]) as ort:
        ort.load_state(tmp_path / "state.npz")
        np.testing.assert_allclose(ort.predict(images[0]).logits, expected, atol=1e-4)


def test_int8_file_uses_its_float32_sibling():
    with Learner.load("mann-int8", backend="native") as learner:
        assert "weights from mann.onnx" in learner.backend


def test_refuses_conv_encoders_and_wrong_arguments():
    with pytest.raises(EdgemetaError, match=r"^backend 'native' runs MANN learners with a flat encoder \(e.g. mann\); "
                                            r"this learner has a conv encoder: use backend='ort'$"):
        Learner.load("default", backend="native")
    with pytest.raises(EdgemetaError, match="unknown precision"):
        Learner.load("mann", backend="native", precision="fp16")
    with pytest.raises(EdgemetaError, match="one thread"):
        Learner.load("mann", backend="native", threads=2)
    with pytest.raises(EdgemetaError, match="applies to backend='native'"):
        Learner.load("mann", backend="ort", precision="int8")


def test_missing_compiler_is_one_line(monkeypatch):
    monkeypatch.setenv("EDGEMETA_CC", "/nonexistent/cc")
    with pytest.raises(EdgemetaError) as e:
        Learner.load("mann", backend="native")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("backend 'native' needs a C compiler (cc/gcc): install build-essential, or use backend='ort'")


def test_reader_equals_onnx_load():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from edgemeta.runtime.backends.native.onnx_reader import read_onnx

    for path in sorted(LEARNERS_DIR.glob("*.onnx")):
        got = read_onnx(path)
        model = onnx.load(path)
        want = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        assert got.initializers.keys() == want.keys(), path.name
        for name, value in want.items():
            assert got.initializers[name].dtype == value.dtype and np.array_equal(got.initializers[name], value), name
        assert got.metadata == {p.key: p.value for p in model.metadata_props}
        assert [v.name for v in got.inputs] == [i.name for i in model.graph.input]
        assert [v.name for v in got.outputs] == [o.name for o in model.graph.output]


def test_reader_refuses_external_data(tmp_path):
    onnx = pytest.importorskip("onnx")
    from edgemeta.runtime.backends.native.onnx_reader import OnnxReadError, read_onnx

    model = onnx.load(MANN)
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=1024)
    with pytest.raises(OnnxReadError, match="external file"):
        read_onnx(tmp_path / "ext.onnx")


def test_runs_without_torch_and_compiles_only_when_opened(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import edgemeta.runtime, edgemeta.runtime.backends.native.backend\n"
        "import os; assert not os.path.isdir(os.path.join(os.environ['EDGEMETA_CACHE'], 'native'))\n"
        "from edgemeta.runtime import Learner\n"
        "import numpy as np\n"
        "with Learner.load('mann', backend='native') as l:\n"
        "    l.teach(np.zeros((20, 20), np.float32), 1)\n"
        "    print('ok', l.predict(np.zeros((20, 20), np.float32)).label[0])\n"
    )
    env = {**__import__("os").environ, "EDGEMETA_CACHE": str(tmp_path / "fresh")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_other_shapes_and_novelty_match_onnxruntime(tmp_path):
    """An untrained MANN of other dimensions (odd C, 2 heads, 12x12 images, a novelty head) through
    ONNX Runtime and native fp32."""
    torch = pytest.importorskip("torch")
    from edgemeta.export.onnx_export import export_step
    from edgemeta.export.parity import FP32, compare, episode_inputs, run_episodes
    from edgemeta.models import ModelConfig, build_learner
    from edgemeta.runtime.preprocess import PREPROCESS_ID

    torch.manual_seed(0)
    cfg = ModelConfig(arch="mann", image_size=12, num_classes=3, encoder="flat", controller=24, memory_slots=20,
                      memory_width=12, read_heads=2, novelty=True)
    meta = dict(name="odd", task="omniglot", preprocess=PREPROCESS_ID, config={"model": dataclasses.asdict(cfg), "train": {}},
                eval={}, episode_steps=15)
    path = export_step(build_learner(cfg), tmp_path / "learner.onnx", meta)
    inputs = episode_inputs(3, 12, batch=3, steps=15, data="", seed=1)
    with Learner.load(path, backend="ort", providers=["cpu"], batch=3) as ort, \
            Learner.load(path, backend="native", batch=3, precision="fp32") as nat:
        result = compare(run_episodes(backend_step(ort), ort.state_shapes, inputs),
                         run_episodes(backend_step(nat), nat.state_shapes, inputs), FP32)
    assert result["passed"], result["failures"]
    assert result["novelty_max_abs"] is not None and result["novelty_max_abs"] <= 1e-4


def test_bench_command_runs_native(tmp_path):
    from click.testing import CliRunner

    from edgemeta.cli import cli

    result = CliRunner().invoke(cli, ["bench", "mann", "--backend", "native", "--baseline", "mann", "--steps", "10",
                                       "--runs", "1"])
    assert result.exit_code == 0, result.output
    assert "native C step" in result.output and "naive session.run" in result.output
    result = CliRunner().invoke(cli, ["bench", "mann", "--precision", "fp32"])
    assert result.exit_code != 0 and "--precision applies to --backend native" in result.output


def test_eval_runs_the_native_step(tmp_path, data_dir, capsys):
    import json

    from edgemeta.cli import main

    args = ["--data", str(data_dir), "--episodes", "40", "--no-plot"]
    tables = {}
    for name, extra in (("ort", []), ("fp32", ["--backend", "native", "--precision", "fp32"]),
                        ("int8", ["--backend", "native"])):
        assert main(["eval", "mann", "--out", str(tmp_path / name), *args, *extra]) == 0
        tables[name] = json.loads((tmp_path / name / "eval.json").read_text())
    # 40 episodes, 200 predictions per instance: float rounding may flip at most one of them
    assert np.abs(np.subtract(tables["fp32"]["accuracy"], tables["ort"]["accuracy"])).max() <= 0.5
    assert tables["int8"]["backend"] == "native" and tables["int8"]["precision"] == "int8"
    assert np.mean(tables["int8"]["accuracy"][1:]) > np.mean(tables["ort"]["accuracy"][1:]) - 2
    assert tables["int8"]["accuracy"][-1] > 90  # the shipped mann, learning through the C step
    capsys.readouterr()
    assert main(["eval", "mann", "--precision", "int8", *args]) != 0
    assert "--precision applies to --backend native" in capsys.readouterr().err


def test_demo_runs_on_the_native_step(data_dir, capsys, monkeypatch):
    from edgemeta.cli import main

    monkeypatch.setenv("EDGEMETA_DATA", str(data_dir))
    session = "synthetic://omniglot?classes=3&shots=6&frames_per_shot=6&gap=1&width=320&height=240&seed=5"
    code = main(["demo", "--model", "mann", "--backend", "native", "--source", session, "--headless",
                 "--shots-to-teach", "2", "--max-frames", "80"])
    out = capsys.readouterr().out
    assert code == 0, out
    curve = {int(line.split()[0]): line.split() for line in out.splitlines() if line.strip()[:1].isdigit()
             and len(line.split()) == 6}
    assert float(curve[2][3].rstrip("%")) > 60, out  # 3 classes (chance 33%), two examples taught each
