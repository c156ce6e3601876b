"""The native step on ARM: the NEON int8 kernel gives the same int32 sums as the plain-C loop, so whole
episodes come out bit-identical; checked on x86 by cross-compiling for aarch64 and running under
qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; .ci/run does).
The aarch64 results also agree with the x86 backend's (AVX2 and FMA round differently, so to a
tolerance, with the same predictions)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgemeta.runtime import Learner
from edgemeta.runtime.backends.native.backend import STATE
from edgemeta.runtime.learner import LEARNERS_DIR

CROSS_CC = "aarch64-linux-gnu-gcc"
SYSROOT = Path("/usr/aarch64-linux-gnu")
HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(__file__).resolve().parents[2] / "runtime" / "backends" / "native"
FLAGS = ["-O3", "-funroll-loops", "-ffp-contract=fast", "-fno-math-errno", "-march=armv8.2-a+dotprod"]
BATCH, STEPS = 2, 40

pytestmark = pytest.mark.skipif(
    shutil.which(CROSS_CC) is None or shutil.which("qemu-aarch64") is None or not SYSROOT.is_dir(),
    reason="no aarch64 cross tools (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)",
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path_factory.getbasetemp() / "edgemeta-cache"))


def write_args(backend, path: Path) -> None:
    d = backend.dims
    head = np.array([backend.batch, d["F"], d["C"], d["Hd"], d["N"], d["W"], d["H"], d["row"],
                     int(bool(backend.cfg["novelty"])), int(backend.precision == "int8"),
                     d["K"], d["Gp"], d["Pp"], d["Op"]], np.int32)
    with open(path, "wb") as f:
        f.write(head.tobytes() + np.float32(backend.cfg["gamma"]).tobytes())
        for name in ("w_lstm", "s_lstm", "b_lstm", "w_heads", "s_heads", "b_heads", "w_out", "b_out"):
            data = np.ascontiguousarray(backend._weights[name]).tobytes()
            f.write(np.int64(len(data)).tobytes() + data)


def episode(num_classes: int, size: int, seed: int = 0):
    """Sparse ink images and the previous step's one-hot label (zeros at the first step)."""
    rng = np.random.default_rng(seed)
    images = (rng.random((STEPS, BATCH, 1, size, size)) < 0.12).astype(np.float32)
    labels = rng.integers(0, num_classes, (STEPS, BATCH))
    prev = np.zeros((STEPS, BATCH, num_classes), np.float32)
    for t in range(1, STEPS):
        prev[t, np.arange(BATCH), labels[t - 1]] = 1.0
    return images, prev


def run_qemu(args: Path, steps: Path, out: Path, tmp: Path, extra: list) -> tuple[bytes, str]:
    exe = tmp / ("driver" + "".join(extra))
    subprocess.run([CROSS_CC, *FLAGS, *extra, f"-I{SOURCE_DIR}", "-o", str(exe), str(HERE / "native" / "mann_step_driver.c"), "-lm"],
                   check=True, capture_output=True, timeout=300)
    proc = subprocess.run(["qemu-aarch64", "-L", str(SYSROOT), str(exe), str(args), str(steps), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes(), proc.stdout.strip()


def test_neon_int8_kernel_is_bit_identical_to_plain_c_under_qemu(tmp_path):
    with Learner.load(LEARNERS_DIR / "mann.onnx", backend="native", precision="int8", batch=BATCH) as learner:
        backend = learner._backend
        images, prev = episode(backend.dims["C"], learner.input_size)
        write_args(backend, tmp_path / "args.bin")
        x86 = []
        for t in range(STEPS):  # the x86 backend over the same episode, every step committed
            np.copyto(backend.image, images[t])
            np.copyto(backend.prev_label, prev[t])
            backend.run()
            backend.commit()
            x86.append((backend.logits.copy(), backend.read_state()))
        names = [n for n in STATE if n in backend.state_names]
        assert names == list(STATE)
        has_novelty = backend.novelty is not None
    with open(tmp_path / "steps.bin", "wb") as f:
        f.write(np.int32(STEPS).tobytes())
        for t in range(STEPS):
            f.write(images[t].tobytes() + prev[t].tobytes())

    neon, kernel = run_qemu(tmp_path / "args.bin", tmp_path / "steps.bin", tmp_path / "neon.out", tmp_path, [])
    plain, plain_kernel = run_qemu(tmp_path / "args.bin", tmp_path / "steps.bin", tmp_path / "plain.out", tmp_path,
                                   ["-DMANN_PLAIN_INT8"])
    assert (kernel, plain_kernel) == ("neon", "plain C")
    assert neon == plain  # every logit and every state value of every step, bit for bit

    values = np.frombuffer(neon, np.float32)
    C = len(x86[0][0][0])
    per_step = values.size // STEPS
    for t, (logits, state) in enumerate(x86):
        row = values[t * per_step:(t + 1) * per_step]
        arm_logits = row[:BATCH * C].reshape(BATCH, C)
        np.testing.assert_allclose(arm_logits, logits, atol=1e-3)
        assert (arm_logits.argmax(1) == logits.argmax(1)).all()
        offset = BATCH * C + (BATCH if has_novelty else 0)
        for n in STATE:
            size = state[n].size
            np.testing.assert_allclose(row[offset:offset + size].reshape(state[n].shape), state[n], atol=1e-3)
            offset += size
        assert offset == per_step
