"""The runtime is what runs on a device without PyTorch: prove it in fresh interpreters with torch blocked."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

from runtime_toy import toy_learner

BLOCK = "import sys; sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=180)


def test_import_runtime_is_light():
    proc = run(
        "import edgemeta.runtime as rt\n"
        "heavy = [m for m in ('onnxruntime', 'cv2', 'tensorrt', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert rt.Learner.__name__ == 'Learner'\n"
    )
    assert proc.returncode == 0, proc.stderr


# What a device never needs: torch, and edgemeta's training side (which may import torch at any time).
BANNED = ("torch", "edgemeta.data", "edgemeta.models", "edgemeta.training", "edgemeta.evaluation", "edgemeta.export")


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def test_every_runtime_and_device_module_imports_without_training_code():
    import edgemeta.devices
    import edgemeta.runtime

    names = _modules(edgemeta.runtime) + _modules(edgemeta.devices)
    expected = {"learner", "backends.ort", "backends.trt", "backends.native.backend", "camera.frames",
                "camera.sources", "camera.synthetic", "camera.scoring", "demo.core", "demo.headless",
                "demo.window", "state_file", "bench"}
    assert {f"edgemeta.runtime.{n}" for n in expected} <= set(names)
    assert {"edgemeta.devices.profiles", "edgemeta.devices.doctor"} <= set(names)
    proc = run(
        "import importlib\n"
        + "".join(f"importlib.import_module({n!r})\n" for n in names)
        + f"banned = sorted(m for m in sys.modules if m.startswith({BANNED!r}) and sys.modules[m] is not None)\n"
        + "assert not banned, banned\n"
    )
    assert proc.returncode == 0, proc.stderr


def test_a_learner_runs_without_torch(tmp_path):
    path = toy_learner(tmp_path / "toy.onnx", novelty=True)
    state = tmp_path / "state.npz"
    proc = run(f"""
import numpy as np
from edgemeta.runtime import Learner
from edgemeta.runtime.camera.frames import frame_to_input
frame = np.full((240, 320, 3), 200, np.uint8)
frame[100:140, 150:153] = 30   # a stroke
frame[100:103, 140:180] = 30   # and a cross bar
found = frame_to_input(frame, 8)
assert found.found, found.reason
with Learner.load({str(path)!r}) as learner:
    learner.teach(found.image, 1)
    learner.teach(np.zeros((8, 8), np.float32), 2)
    p = learner.predict(found.image)
    learner.save_state({str(state)!r})
with Learner.load({str(path)!r}) as again:
    again.load_state({str(state)!r})
    assert again.counts.tolist() == [0, 1, 1]
print("ok", p.label[0])
""")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_bench_command_runs_without_torch(tmp_path):
    path = toy_learner(tmp_path / "toy.onnx")
    proc = run(f"from edgemeta.cli import main; sys.exit(main(['bench', {str(path)!r}, '--steps', '10', '--runs', '1']))")
    assert proc.returncode == 0, proc.stderr
    assert "naive session.run" in proc.stdout


def test_runtime_sources_never_import_torch():
    """A static guard too: no module of the runtime imports torch or the torch side of edgemeta,
    not even inside a function."""
    import ast

    import edgemeta.runtime

    banned = ("torch", "edgemeta.models", "edgemeta.training.loop", "edgemeta.training.checkpoint", "edgemeta.evaluation.accuracy")
    for source in Path(edgemeta.runtime.__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert not any(module == b or module.startswith(b + ".") for b in banned), f"{source.name} imports {module}"


def test_no_runtime_or_device_source_imports_training_code():
    """Imports inside functions count too: they run on the device the first time that path is taken."""
    import ast

    import edgemeta.devices
    import edgemeta.runtime

    offenders = []
    for package in (edgemeta.runtime, edgemeta.devices):
        for root in package.__path__:
            for path in sorted(Path(root).rglob("*.py")):
                for node in ast.walk(ast.parse(path.read_text())):
                    if isinstance(node, ast.Import):
                        names = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        names = [node.module]
                    else:
                        continue
                    offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.startswith(BANNED)]
    assert not offenders, offenders
