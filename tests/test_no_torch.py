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


def test_every_runtime_module_imports_without_torch():
    import edgemeta.runtime

    names = [m.name for m in pkgutil.iter_modules(edgemeta.runtime.__path__)]
    assert {"learner", "ort_backend", "trt_backend", "state_file", "frames", "bench"} <= set(names)
    proc = run("import importlib\n" + "".join(f"importlib.import_module('edgemeta.runtime.{n}')\n" for n in names))
    assert proc.returncode == 0, proc.stderr


def test_a_learner_runs_without_torch(tmp_path):
    path = toy_learner(tmp_path / "toy.onnx", novelty=True)
    state = tmp_path / "state.npz"
    proc = run(f"""
import numpy as np
from edgemeta.runtime import Learner
from edgemeta.runtime.frames import frame_to_input
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

    banned = ("torch", "edgemeta.models", "edgemeta.train", "edgemeta.checkpoint", "edgemeta.evaluate")
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
