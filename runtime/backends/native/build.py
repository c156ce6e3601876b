"""Compile runtime/backends/native/mann_step.c once per machine and load it with ctypes.

The library is built on first use (never at import), with the system C compiler, into a per-user
cache: $EDGEMETA_CACHE/native, else $XDG_CACHE_HOME/edgemeta/native, else ~/.cache/edgemeta/native.
Its file name is a hash of the source, the compiler (path, size, mtime), the flags and the machine
(OS, architecture and, on Linux, the CPU's model and feature flags: -march=native code must never
be loaded on another CPU from a shared home directory). It is compiled to a temporary name and
renamed into place, so two processes starting at once both end up with a whole library.

The library is loaded into this process, so whoever can write it runs code as the user: the cache
directory is private (0700, owned by the user; made so when it is the user's, refused when it is someone
else's), and a library is loaded only when it is the user's, writable by no one else, and its content
matches the SHA-256 written beside it, in the same private directory, when it was built.

The compiler is $EDGEMETA_CC, else $CC, else the first of cc, gcc, clang on PATH. Flags are tried
in order until one set compiles: -march=native (x86, most compilers), -mcpu=native (some ARM
compilers reject -march=native), then neither. $EDGEMETA_NATIVE_CFLAGS adds flags (e.g. "-g" to
profile the step with perf); they are part of the cache key.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from edgemeta import EdgemetaError
from edgemeta.runtime.atomic import PendingFile, atomic_path
from edgemeta.runtime.file_digest import file_sha256

SOURCE = Path(__file__).resolve().parent / "mann_step.c"
# -funroll-loops: the panel and memory loops have small constant trip counts; 6% off a step here
BASE_FLAGS = ("-O3", "-funroll-loops", "-ffp-contract=fast", "-fno-math-errno", "-fPIC", "-shared")
CPU_FLAGS = (("-march=native",), ("-mcpu=native",), ())
NO_COMPILER = "backend 'native' needs a C compiler (cc/gcc): install build-essential, or use backend='ort'"


def cache_dir() -> Path:
    if os.environ.get("EDGEMETA_CACHE"):
        return Path(os.environ["EDGEMETA_CACHE"]).expanduser() / "native"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "edgemeta" / "native"


def find_compiler() -> list[str]:
    """The compiler command (a list: $CC may carry arguments, e.g. "ccache gcc")."""
    for var in ("EDGEMETA_CC", "CC"):
        value = os.environ.get(var)
        if value:
            cmd = shlex.split(value)
            exe = shutil.which(cmd[0]) if cmd else None
            if not exe:
                raise EdgemetaError(f"{NO_COMPILER} (${var}={value!r} is not an executable)")
            return [exe, *cmd[1:]]
    for name in ("cc", "gcc", "clang"):
        exe = shutil.which(name)
        if exe:
            return [exe]
    raise EdgemetaError(NO_COMPILER)


def _machine_id() -> str:
    parts = [sys.platform, platform.machine()]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    parts.append(line.strip())
                if line.strip() == "":  # the first CPU is enough
                    break
    except OSError:
        parts.append(platform.processor())
    return "\n".join(parts)


def _key(compiler: list[str], flags: list[str], source: bytes) -> str:
    h = hashlib.sha256(source)
    for exe in compiler[:1]:
        st = os.stat(os.path.realpath(exe))
        h.update(f"{os.path.realpath(exe)}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(" ".join(compiler[1:] + flags).encode())
    h.update(_machine_id().encode())
    return h.hexdigest()[:20]


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing; refused unless it is a real directory owned by this user, whose mode
    then becomes 0700 (a cache someone else can write is a way to run code as this user)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as e:
        raise EdgemetaError(f"backend 'native': cannot create its build cache {path} ({e.strerror}); "
                            "set EDGEMETA_CACHE to a directory of your own") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise EdgemetaError(f"backend 'native': its build cache {path} is not a directory of yours (owner uid "
                            f"{st.st_uid}); set EDGEMETA_CACHE to a directory only you can write")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _digest_path(lib: Path) -> Path:
    return lib.with_suffix(".sha256")


def _owned_private_file(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def verify(lib: Path) -> None:
    """Refuse, in one line, a library that is not this user's, that others may write, or whose content is not
    the one built here."""
    digest = _digest_path(lib)
    try:
        trusted = _owned_private_file(lib) and _owned_private_file(digest)
        matches = trusted and digest.read_text().strip() == file_sha256(lib)
    except OSError:
        trusted = matches = False
    if not trusted:
        raise EdgemetaError(f"backend 'native': refusing to load {lib}: it or its digest is not yours or is writable "
                            "by others; delete it to rebuild")
    if not matches:
        raise EdgemetaError(f"backend 'native': refusing to load {lib}: its content differs from the digest written "
                            "when it was built; delete it to rebuild")


def _disk_full(out_dir: Path) -> EdgemetaError:
    return EdgemetaError(f"backend 'native': no space left on the disk of its build cache {out_dir}; "
                         "free some space or set EDGEMETA_CACHE to another disk")


def build(source: Path = SOURCE, defines: dict | None = None) -> tuple[Path, list[str]]:
    """The compiled library for this machine (built now if not cached) and the flags it was built with.
    defines: -D macros (the learner's dimensions), part of the cache key."""
    compiler = find_compiler()
    macros = [f"-D{k}={int(v)}" for k, v in sorted((defines or {}).items())]
    text = source.read_bytes()
    out_dir = private_dir(cache_dir())
    errors = []
    for cpu in CPU_FLAGS:
        flags = [*BASE_FLAGS, *cpu, *shlex.split(os.environ.get("EDGEMETA_NATIVE_CFLAGS", "")), *macros]
        lib = out_dir / f"mann_step-{_key(compiler, flags, text)}.so"
        if os.path.lexists(lib) and os.path.lexists(_digest_path(lib)):
            return lib, flags
        try:
            pending = PendingFile(lib, suffix=".so")
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise _disk_full(out_dir) from None
            raise EdgemetaError(f"backend 'native': cannot write to its build cache {out_dir} ({e.strerror})") from None
        try:
            proc = subprocess.run([*compiler, *flags, "-o", str(pending.tmp), str(source), "-lm"], capture_output=True,
                                  text=True, timeout=120)
            if proc.returncode == 0:
                os.chmod(pending.tmp, 0o700)
                digest = file_sha256(pending.tmp)
                pending.publish()
                with atomic_path(_digest_path(lib)) as tmp:  # after the library: a reader never pairs it with an old one
                    tmp.write_text(digest + "\n")
                    os.chmod(tmp, 0o600)
                return lib, flags
            errors.append((proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0])
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise _disk_full(out_dir) from None
            errors.append(str(e))
        except subprocess.TimeoutExpired as e:
            errors.append(str(e))
        finally:
            pending.discard()  # nothing left to remove once published
        if any("No space left on device" in line for line in errors):
            raise _disk_full(out_dir)
    raise EdgemetaError(f"backend 'native': {' '.join(compiler)} could not compile {source.name} "
                        f"({errors[-1][:200]}); use backend='ort'")


def load_library(defines: dict | None = None) -> tuple[ctypes.CDLL, list[str]]:
    lib_path, flags = build(defines=defines)
    verify(lib_path)
    try:
        return ctypes.CDLL(str(lib_path)), flags
    except OSError as e:
        raise EdgemetaError(f"backend 'native': cannot load {lib_path} ({e}); delete it to rebuild, or use backend='ort'") from None
