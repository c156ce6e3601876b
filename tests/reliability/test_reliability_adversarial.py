"""What an adversarial round found (issue 20), each case as it was reported: a hostile or careless user, a
full disk, a signal, two processes or two threads at once. Every test here failed before its fix;
docs/reliability.md lists them with the rest.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgemeta import EdgemetaError
from edgemeta.runtime import Learner
from edgemeta.runtime.learner import LEARNERS_DIR

HAS_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler")

EVIL_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w"); if (f) { fputs("ran", f); fclose(f); }
}
int mann_abi(void) { return 2; }
"""


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A native build cache holding the shipped mann's library, built once for this module."""
    cache = tmp_path_factory.mktemp("native-cache")
    env = {**os.environ, "EDGEMETA_CACHE": str(cache)}
    subprocess.run([os.sys.executable, "-c", "from edgemeta.runtime import Learner; Learner.load('mann', backend='native')"],
                   env=env, check=True, timeout=300)
    return cache


@pytest.fixture
def cache(built_cache, tmp_path, monkeypatch):
    copy = tmp_path / "cache"
    shutil.copytree(built_cache, copy)
    monkeypatch.setenv("EDGEMETA_CACHE", str(copy))
    return copy


def _library(cache: Path) -> Path:
    (lib,) = (cache / "native").glob("mann_step-*.so")
    return lib


def _plant(lib: Path, marker: Path) -> None:
    src = lib.parent / "evil.c"
    src.write_text(EVIL_C)
    subprocess.run(["cc", f'-DMARKER="{marker}"', "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    src.unlink()


# --- 1. the native backend runs only a library this user built ------------------------------------------

@needs_cc
def test_native_cache_is_private(cache):
    assert (cache / "native").stat().st_mode & 0o777 == 0o700
    lib = _library(cache)
    assert lib.stat().st_mode & 0o077 == 0
    assert lib.with_suffix(".sha256").read_text().strip()


@needs_cc
def test_a_library_planted_in_the_cache_is_refused_and_never_run(cache, tmp_path):
    marker = tmp_path / "planted-code-ran"
    _plant(_library(cache), marker)
    with pytest.raises(EdgemetaError, match="content differs from the digest") as e:
        Learner.load("mann", backend="native")
    assert "\n" not in str(e.value)
    assert not marker.exists()


@needs_cc
def test_a_library_others_may_write_is_refused(cache):
    _library(cache).chmod(0o666)
    with pytest.raises(EdgemetaError, match="writable by others"):
        Learner.load("mann", backend="native")


@needs_cc
def test_a_cache_owned_by_another_user_is_refused(cache, monkeypatch):
    (cache / "native").chmod(0o777)  # world-writable, as in the report
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(cache).st_uid + 1)  # we are someone else now
    with pytest.raises(EdgemetaError, match="not a directory of yours") as e:
        Learner.load("mann", backend="native")
    assert "only you can write" in str(e.value)


@needs_cc
def test_an_old_cache_is_made_private(cache):
    (cache / "native").chmod(0o755)
    Learner.load("mann", backend="native").close()
    assert (cache / "native").stat().st_mode & 0o777 == 0o700


def _crafted_mann(tmp_path: Path, **model) -> Path:
    onnx = pytest.importorskip("onnx")
    from edgemeta.runtime import contract

    m = onnx.load(LEARNERS_DIR / "mann.onnx")
    for prop in m.metadata_props:
        if prop.key == contract.METADATA_KEY:
            meta = json.loads(prop.value)
            meta["config"]["model"].update(model)
            prop.value = json.dumps(meta)
    out = tmp_path / "crafted.onnx"
    onnx.save(m, out)
    return out


@needs_cc
@pytest.mark.parametrize("model", [{"memory_slots": 129}, {"memory_slots": "128"}, {"gamma": "x"}])
def test_a_crafted_config_is_refused_before_anything_is_compiled(model, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "fresh"))
    with pytest.raises(EdgemetaError) as e:
        Learner.load(_crafted_mann(tmp_path, **model), backend="native")
    assert "\n" not in str(e.value) and "re-export" in str(e.value)
    assert not (tmp_path / "fresh" / "native").exists()


# --- 6. one learner, several threads --------------------------------------------------------------------

def _images(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 20, 20)) < 0.3).astype(np.float32)


@pytest.mark.filterwarnings("ignore::edgemeta.runtime.EpisodeLengthWarning")
@pytest.mark.parametrize("backend", ["ort", pytest.param("native", marks=needs_cc)])
def test_teaching_while_two_threads_predict_learns_what_one_thread_learns(backend, tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("EDGEMETA_CACHE", str(tmp_path / "cache"))
    taught, labels = _images(60, 0), np.arange(60) % 5
    with Learner.load("mann", backend=backend, threads=1) as alone:
        for image, label in zip(taught, labels):
            alone.teach(image, int(label))
        want = alone.state()
    with Learner.load("mann", backend=backend, threads=1) as shared:
        done = threading.Event()

        def watch(seed):
            frames = _images(50, seed)
            while not done.is_set():
                for frame in frames:
                    shared.predict(frame)

        watchers = [threading.Thread(target=watch, args=(s,)) for s in (1, 2)]
        for t in watchers:
            t.start()
        try:
            for image, label in zip(taught, labels):
                shared.teach(image, int(label))
        finally:
            done.set()
            for t in watchers:
                t.join()
        got = shared.state()
        shared.save_state(tmp_path / "s.npz")
        shared.load_state(tmp_path / "s.npz")
    for name in want:
        assert np.array_equal(got[name], want[name]), name


def test_a_non_finite_state_is_never_written(tmp_path):
    from edgemeta.runtime.state_file import RuntimeStateError

    path = tmp_path / "s.npz"
    with Learner.load("mann") as learner:
        learner.teach(_images(1, 0)[0], 1)
        learner.save_state(path)
        old = path.read_bytes()
        state = learner.state()
        state["memory"][0, 0, 0] = np.nan
        learner._backend.write_state(state)  # what a diverged step leaves behind
        with pytest.raises(RuntimeStateError, match="NaN or infinite") as e:
            learner.save_state(path)
    assert "previous file was kept" in str(e.value)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


# --- 8. hostile state files -----------------------------------------------------------------------------

def _npz_with(path: Path, base: Path, **members: bytes) -> None:
    """`base`'s members plus raw .npy members (a crafted archive: headers that lie, members that inflate)."""
    import zipfile

    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename[:-4] not in members:
                dst.writestr(info.filename, src.read(info))
        for name, raw in members.items():
            dst.writestr(name + ".npy", raw)


def _npy_header(shape, dtype="<f4") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.npz"
    with Learner.load("mann") as learner:
        learner.teach(_images(1, 0)[0], 1)
        learner.save_state(path)
    return path


def test_a_member_declaring_a_terabyte_is_refused_without_allocating(saved, tmp_path):
    bad = tmp_path / "tera.npz"
    _npz_with(bad, saved, **{"state.memory": _npy_header((1, 10**12)) + b"\0" * 64})
    with Learner.load("mann") as learner, pytest.raises(EdgemetaError, match="declares shape") as e:
        learner.load_state(bad)
    assert "\n" not in str(e.value)


def test_a_member_that_inflates_to_gigabytes_is_refused_before_inflating(saved, tmp_path):
    import time
    import tracemalloc

    bomb = tmp_path / "bomb.npz"
    n = 1 << 27  # 512 MiB of zeros: a few hundred kB deflated
    import zipfile

    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open("state.extra.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((n,)))
            zeros = bytes(1 << 24)
            for _ in range(n * 4 // len(zeros)):
                f.write(zeros)
    assert bomb.stat().st_size < 4 << 20
    tracemalloc.start()
    start = time.perf_counter()
    with Learner.load("mann") as learner, pytest.raises(EdgemetaError, match="holds state"):
        learner.load_state(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20 and time.perf_counter() - start < 2.0


def test_an_unknown_member_is_refused(saved, tmp_path):
    bad = tmp_path / "extra.npz"
    _npz_with(bad, saved, notes=_npy_header((1,)) + b"\0" * 4)
    with Learner.load("mann") as learner, pytest.raises(EdgemetaError, match="unknown member 'notes.npy'"):
        learner.load_state(bad)


# --- 3. a run directory: refused without --resume, locked while trained, metrics not repeated -------------

@pytest.fixture
def tiny(data_dir):
    from conftest import TINY_MODEL, TINY_TRAIN

    from edgemeta.models import ModelConfig
    from edgemeta.training.config import TrainConfig

    kw = {**TINY_TRAIN, "episodes": 2 * 16, "val_every": 1, "val_episodes": 2, "ckpt_every": 1, "data": str(data_dir)}
    return ModelConfig(**TINY_MODEL), TrainConfig(**kw)


def _quiet(*args, **kwargs):
    pass


def test_training_into_an_existing_run_without_resume_is_refused_and_keeps_it(tiny, tmp_path, capsys):
    from edgemeta.cli import main
    from edgemeta.training.loop import train

    run = tmp_path / "run"
    train(*tiny, run, progress=False, log=_quiet)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(EdgemetaError, match="already holds a run .*--resume.*--overwrite"):
        train(*tiny, run, progress=False, log=_quiet)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert main(["train", "--out", str(run), "--episodes", "16"]) != 0
    assert "already holds a run" in capsys.readouterr().err
    train(*tiny, run, progress=False, log=_quiet, overwrite=True)  # an explicit start over
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def test_a_run_directory_being_trained_is_refused(tiny, tmp_path):
    from edgemeta.training.loop import train
    from edgemeta.training.run_dir import RunLock

    run = tmp_path / "run"
    run.mkdir()
    held = RunLock(run)  # another training holds it
    try:
        with pytest.raises(EdgemetaError, match="being trained by another process"):
            train(*tiny, run, progress=False, log=_quiet)
        assert list(run.iterdir()) == []
    finally:
        held.release()
    train(*tiny, run, progress=False, log=_quiet)  # free again once that run ends


def test_resume_after_a_kill_logs_each_step_once(tiny, tmp_path):
    from edgemeta.training.checkpoint import load_checkpoint, save_checkpoint
    from edgemeta.training.loop import train

    run = tmp_path / "run"
    model_cfg, cfg = tiny
    train(model_cfg, cfg, run, progress=False, log=_quiet)
    # SIGKILL after step 2 was logged but before its checkpoint: last.pt is still step 1's, plus half a line
    ckpt = load_checkpoint(run / "last.pt")
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    save_checkpoint(run / "last.pt", {**{k: v for k, v in ckpt.items() if k not in ("kind", "format", "path")},
                                      "step": 1, "metrics": first})
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')
    train(model_cfg, cfg, run, resume=True, progress=False, log=_quiet)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


# --- 7. a full disk -------------------------------------------------------------------------------------

def test_a_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    import torch

    from edgemeta.training.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"task": "t", "model_config": {}, "train_config": {}, "model": {}, "step": 1, "metrics": {}})
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):  # what torch raises when the file's write hits ENOSPC
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as e:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from e

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(EdgemetaError, match="No space left on device; the previous file was kept"):
        save_checkpoint(path, {"task": "t", "model_config": {}, "train_config": {}, "model": {}, "step": 2, "metrics": {}})
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


# --- 2. every stop signal saves what was learned ----------------------------------------------------------

def _demo_until(signum, tmp_path: Path, ignore_sigint: bool = False):
    import signal
    import sys
    import time

    log, record, state = tmp_path / "log.jsonl", tmp_path / "run.mp4", tmp_path / "state.npz"
    argv = [sys.executable, "-m", "edgemeta", "demo", "--headless", "--source", "synthetic://omniglot?seed=3",
            "--log", str(log), "--record", str(record), "--state", str(state), "--max-frames", "100000"]

    def inherit_ignored_sigint():  # a demo started with `&` from a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=inherit_ignored_sigint if ignore_sigint else None)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".log.jsonl.*")) and time.monotonic() < deadline:  # the session is under way
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the demo ignored signal {signum}: {err[-2000:]}")
    return proc.returncode, out, err, log, record, state


@pytest.mark.parametrize("signum, ignore_sigint", [("SIGTERM", False), ("SIGHUP", False), ("SIGINT", True)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT-inherited-ignored"])
def test_a_stop_signal_ends_the_demo_saving_state_log_and_video(signum, ignore_sigint, tmp_path):
    import signal

    import cv2

    rc, out, err, log, record, state = _demo_until(getattr(signal, signum), tmp_path, ignore_sigint)
    assert "Traceback" not in err, err[-2000:]
    assert "stopped by Ctrl-C or a stop signal" in out, (rc, out, err[-2000:])  # not the source's end
    assert "saved learned state" in out and state.is_file(), (rc, out, err[-2000:])
    with Learner.load("default") as learner:  # the demo's learner
        learner.load_state(state)
        assert learner.num_taught > 0
    lines = log.read_text().splitlines()
    assert len(lines) > 2 and all(json.loads(line) is not None for line in lines)
    video = cv2.VideoCapture(str(record))
    assert video.isOpened() and video.read()[0]
    video.release()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stranded temporary files


def test_the_containers_stop_with_a_signal_the_demo_saves_on():
    from edgemeta.runtime.stop_signals import STOP_SIGNALS

    deploy = Path(__file__).resolve().parents[2] / "devices" / "deploy"
    for dockerfile in sorted(deploy.glob("Dockerfile.*")):
        lines = [line.split() for line in dockerfile.read_text().splitlines() if line.startswith("STOPSIGNAL")]
        assert lines, f"{dockerfile.name} sets no STOPSIGNAL"
        import signal

        assert getattr(signal, lines[-1][1]) in STOP_SIGNALS, dockerfile.name


# --- 4. re-export: the other files of --out stay, and a swap cut short is finished ------------------------

def _fake_export(tmp: Path, version: str) -> None:
    (tmp / "learner.onnx").write_text(version)
    (tmp / "export.json").write_text(json.dumps({"files": {"learner.onnx": {}}}))


def test_re_export_keeps_the_other_files_of_out(tmp_path):
    from edgemeta.export.staging import staged_directory

    out = tmp_path / "out"
    with staged_directory(out) as tmp:
        _fake_export(tmp, "v1")
    (out / "state.npz").write_text("what the device learned")
    (out / "recordings").mkdir()
    (out / "recordings" / "a.mp4").write_text("video")
    with staged_directory(out) as tmp:
        _fake_export(tmp, "v2")
    assert (out / "learner.onnx").read_text() == "v2"
    assert (out / "state.npz").read_text() == "what the device learned"
    assert (out / "recordings" / "a.mp4").read_text() == "video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("died_after", ["the first rename", "the second rename"])
def test_an_export_that_died_mid_swap_is_recovered_by_the_next(died_after, tmp_path, monkeypatch):
    from edgemeta.export import staging
    from edgemeta.export.staging import staged_directory

    out = tmp_path / "out"
    with staged_directory(out) as tmp:
        _fake_export(tmp, "v1")
    (out / "state.npz").write_text("learned")
    real_rename, calls = os.rename, []

    def dies(src, dst):
        calls.append(src)
        if len(calls) == (1 if died_after == "the first rename" else 2):
            real_rename(src, dst)
            raise SystemExit("killed")
        real_rename(src, dst)

    monkeypatch.setattr(staging.os, "rename", dies)
    with pytest.raises(SystemExit), staged_directory(out) as tmp:
        _fake_export(tmp, "v2")
    monkeypatch.setattr(staging.os, "rename", real_rename)
    with staged_directory(out) as tmp:
        _fake_export(tmp, "v3")
    assert (out / "learner.onnx").read_text() == "v3"
    assert (out / "state.npz").read_text() == "learned"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- 5. an output that is also an input -------------------------------------------------------------------

@pytest.mark.parametrize("case", ["record onto source", "log onto script", "log onto state", "log via a link onto state",
                                  "log onto a run's metrics", "log onto record"])
def test_an_output_that_is_also_an_input_is_refused(case, tmp_path, capsys):
    from edgemeta.cli import main

    video, script, state = tmp_path / "in.mp4", tmp_path / "events.txt", tmp_path / "state.npz"
    video.write_bytes(b"the only copy")
    script.write_text("0 0\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "link.npz").symlink_to(state)
    argv = {"record onto source": ["--source", str(video), "--record", str(video)],
            "log onto script": ["--source", str(video), "--script", str(script), "--log", str(script)],
            "log onto state": ["--state", str(state), "--log", str(state)],
            "log via a link onto state": ["--state", str(state), "--log", str(tmp_path / "link.npz")],
            "log onto a run's metrics": ["--log", str(run / "metrics.jsonl")],
            "log onto record": ["--log", str(tmp_path / "o.mp4"), "--record", str(tmp_path / "o.mp4")]}[case]
    before = {p: p.read_bytes() for p in (video, script, run / "metrics.jsonl")}
    assert main(["demo", "--headless", "--max-frames", "3", *argv]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and ("replace" in err or "metrics" in err), err
    assert {p: p.read_bytes() for p in before} == before


# --- 7. a full disk under the demo's --log and --record ---------------------------------------------------

def _demo_outputs(tmp_path: Path, folder: Path) -> dict:
    """An old log and an old recording in `folder` (what a previous session left), and a state file beside."""
    folder.mkdir(exist_ok=True)
    log, record = folder / "log.jsonl", folder / "run.mp4"
    log.write_text('{"header": {}}\n{"frame": 0}\n')
    record.write_bytes(b"the previous recording")
    return {"log": log, "record": record, "state": tmp_path / "state.npz",
            "before": {log: log.read_bytes(), record: record.read_bytes()}}


def _assert_full_disk_kept_everything(rc, err, out, folder: Path):
    assert rc != 0 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert f"the disk holding {folder} is full" in err and "previous file was kept" in err, err
    for path, data in out["before"].items():
        assert path.read_bytes() == data, path
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert out["state"].is_file()  # what was learned is still saved (on another disk)


def test_a_full_disk_under_the_demo_log_is_one_line_and_keeps_the_old_files(tmp_path, monkeypatch, capsys):
    import builtins
    import errno

    from edgemeta.cli import main
    from edgemeta.runtime.demo import events

    folder = tmp_path / "out"
    out = _demo_outputs(tmp_path, folder)

    class FillingFile:  # the disk fills up after a few records
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, text):
            self.written += len(text)
            if self.written > 600:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(text)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(events, "open", lambda *a, **k: FillingFile(builtins.open(*a, **k)), raising=False)
    rc = main(["demo", "--headless", "--max-frames", "40", "--log", str(out["log"]), "--record", str(out["record"]),
               "--state", str(out["state"])])
    _assert_full_disk_kept_everything(rc, capsys.readouterr().err.strip(), out, folder)


@contextlib.contextmanager
def _tmpfs(options: str):
    """A tmpfs mounted for the test (root only; skipped elsewhere). Outside pytest's tmp_path, which another
    pytest session may move away while it is mounted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="edgemeta-tmpfs-"))
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


@pytest.fixture
def tiny_disk():
    """A 192 KiB file system."""
    with _tmpfs("size=192k") as mount:
        yield mount


def test_a_really_full_disk_under_the_demo_record_is_one_line_and_keeps_the_old_files(tiny_disk, tmp_path, capsys):
    from edgemeta.cli import main

    out = _demo_outputs(tmp_path, tiny_disk)
    rc = main(["demo", "--headless", "--max-frames", "60", "--log", str(out["log"]), "--record", str(out["record"]),
               "--state", str(out["state"])])
    _assert_full_disk_kept_everything(rc, capsys.readouterr().err.strip(), out, tiny_disk)


# --- 9. an unwritable EDGEMETA_CACHE ---------------------------------------------------------------------

@pytest.fixture(params=["a regular file", "read-only"])
def unwritable_cache(request, tmp_path):
    cache = tmp_path / "cache"
    if request.param == "a regular file":
        cache.write_text("not a folder")
        yield cache
        return
    if os.geteuid() != 0:
        cache.mkdir()
        cache.chmod(0o555)
        yield cache
        cache.chmod(0o755)
        return
    with _tmpfs("ro,size=64k") as mount:  # root writes through file modes: a read-only mount refuses it
        yield mount


def test_an_unwritable_cache_decodes_omniglot_without_one_and_warns(unwritable_cache, data_dir, monkeypatch):
    from edgemeta.runtime.omniglot import load_omniglot

    monkeypatch.setenv("EDGEMETA_CACHE", str(unwritable_cache))
    with pytest.warns(UserWarning, match=f"cannot cache the decoded Omniglot in {unwritable_cache}.*without a cache"):
        dataset = load_omniglot(data_dir)
    assert len(dataset.names) > 0


# --- 2. a stop signal during training's setup, before pretraining's own handler ----------------------------

SETUP_STOPPED = r"""
import os, signal, sys
from edgemeta.training import pretrain

real_init = pretrain.EncoderPretraining.__init__

def stopped_in_setup(self, *args, **kwargs):  # the signal arrives while pretraining is being set up
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    real_init(self, *args, **kwargs)

pretrain.EncoderPretraining.__init__ = stopped_in_setup
from edgemeta.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_a_stop_signal_during_training_setup_exits_cleanly_leaving_no_empty_run(signum, data_dir, tmp_path):
    import sys

    out = tmp_path / "run"
    argv = ["train", "--model", "default", "--model-option", "image_size=16", "--model-option", "conv_channels=8,16",
            "--model-option", "embedding=32", "--model-option", "memory_width=32", "--model-option", "controller=32",
            "--model-option", "memory_slots=16", "--model-option", "read_heads=1", "--episodes", "16",
            "--batch-size", "16", "--pretrain-epochs", "1", "--threads", "1", "--device", "cpu",
            "--data", str(data_dir), "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", SETUP_STOPPED, signum, *argv], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 130, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "interrupted before anything was trained" in proc.stdout, proc.stdout
    assert not out.exists()
