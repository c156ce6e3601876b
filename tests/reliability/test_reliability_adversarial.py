"""What an adversarial round found (issue 20), each case as it was reported: a hostile or careless user, a
full disk, a signal, two processes or two threads at once. Every test here failed before its fix;
docs/reliability.md lists them with the rest.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
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
