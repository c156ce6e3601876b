"""Device profiles: what a board runs with (execution providers, threads, precision, camera, state folder).

Profiles are TOML data in the repository's `devices/` folder, installed as the package `edgemeta.devices`.
`load_profile(name_or_path)` reads one and validates it against the schema below, so a typo in a profile is
a one-line error naming the key, never a silently ignored setting. Torch-free and light: only the standard
library (tomllib; `tomli` on Python 3.10).

    p = load_profile("jetson-orin-nano")          # or load_profile("my-board.toml")
    learner = Learner.load(path, **p.learner_kwargs())
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemeta import EdgemetaError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, published as `tomli`
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

SCHEMA = 1
CPU = "CPUExecutionProvider"
TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
PRECISIONS = ("fp32", "fp16")
ARCHES = ("x86_64", "aarch64")
# Placeholders a provider option may use; filled in on load.
PLACEHOLDERS = ("{state_dir}",)
# TensorRT EP options that profiles set through `runtime.precision` and `runtime.trt_workspace_mb` instead,
# so one setting cannot contradict another.
DERIVED_TRT_OPTIONS = {"trt_fp16_enable": "runtime.precision", "trt_max_workspace_size": "runtime.trt_workspace_mb"}

# table path -> {key: (type, required)}. float accepts int; int never accepts bool.
_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "": {
        "schema": (int, True), "name": (str, True), "description": (str, True), "arch": (str, True),
        "state_dir": (str, True), "notes": (list, False),
        "runtime": (dict, True), "camera": (dict, True), "reference": (dict, False),
    },
    "runtime": {
        "providers": (list, True), "threads": (int, True), "precision": (str, True),
        "trt_workspace_mb": (int, False), "tensorrt": (str, False),
    },
    "runtime.providers": {"name": (str, True), "options": (dict, False)},
    "camera": {"uri": (str, True), "width": (int, True), "height": (int, True), "fps": (int, True)},
    "reference": {
        "measured": (bool, True), "step_us_median": (float, False), "step_us_p90": (float, False),
        "backend": (str, False), "batch": (int, False), "threads": (int, False), "command": (str, False),
        "date": (str, False), "edgemeta": (str, False), "notes": (str, False),
    },
}
# A measured reference must say what was measured and how; an unmeasured one may hold no numbers at all.
MEASURED_REQUIRED = ("step_us_median", "backend", "batch", "threads", "command", "date")
MEASURED_ONLY = ("step_us_median", "step_us_p90", "backend", "batch", "threads", "command", "date", "edgemeta")


class ProfileError(EdgemetaError, ValueError):
    """A device profile that is missing, unreadable or does not follow the schema (one-line message)."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    arch: str
    providers: list  # ORT execution provider names, most preferred first; CPUExecutionProvider last
    provider_options: list  # one dict per provider, placeholders filled in
    threads: int  # ORT intra-op threads (0: ONNX Runtime's default)
    precision: str  # "fp32" or "fp16" (TensorRT)
    camera: str  # default video source URI (runtime/camera/sources.py grammar)
    resolution: tuple  # (width, height) asked of the camera
    fps: int
    state_dir: Path  # where learned state (and TensorRT engine caches) live
    trt_workspace_mb: int | None  # TensorRT builder workspace; None when the profile has no TensorRT
    tensorrt: str | None = None  # the oldest TensorRT the board's stack ships ("8.6"): readiness checks its parser
    reference: dict = field(default_factory=dict)  # learner -> {"measured": bool, ...}
    notes: list = field(default_factory=list)
    source: str = ""  # where the profile came from

    def available_providers(self, ort_providers) -> list:
        """This profile's providers that `ort_providers` offers, in the profile's order; CPU always last."""
        offered = set(ort_providers)
        return [p for p in self.providers if p in offered or p == CPU]

    def learner_kwargs(self, available=None) -> dict:
        """Keyword arguments for `Learner.load(path, **kwargs)`: providers with their options, and threads.

        Without `available` this is the profile's full request, and Learner.load refuses providers the
        installed onnxruntime lacks; pass `available` (onnxruntime.get_available_providers()) to drop
        those and fall back in the profile's order, CPU last.
        """
        names = list(self.providers) if available is None else self.available_providers(available)
        options = dict(zip(self.providers, self.provider_options))
        # threads = 0 means "ONNX Runtime's default", which Learner.load spells None.
        return {"providers": [(n, dict(options[n])) for n in names], "threads": self.threads or None}

    @property
    def state_file(self) -> Path:
        """The default learned-state file (the demo's --state)."""
        return self.state_dir / "state.npz"

    def uses(self, provider: str) -> bool:
        return provider in self.providers


# --- finding profiles --------------------------------------------------------------------------------


def _shipped_dir() -> Path:
    """The shipped profiles: devices/boards/, beside this file in a checkout and in an install."""
    return Path(__file__).resolve().parent / "boards"


def profiles_dir() -> Path:
    """Where the shipped profiles are (for messages and docs)."""
    return Path(str(_shipped_dir()))


def _shipped() -> dict:
    root = _shipped_dir()
    if not root.is_dir():
        raise ProfileError(f"shipped device profiles not found at {root}: reinstall edgemeta")
    return {p.name[: -len(".toml")]: p for p in root.iterdir() if p.name.endswith(".toml")}


def list_profiles() -> list:
    """Names of the shipped profiles, sorted."""
    return sorted(_shipped())


def load_profile(name_or_path) -> Profile:
    """A shipped profile by name ("jetson-orin-nano") or any profile by path ("boards/mine.toml")."""
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or os.sep in text or (os.altsep and os.altsep in text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ProfileError(f"device profile {text!r} not found: give a shipped name ({', '.join(list_profiles())}) or an existing .toml file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ProfileError(f"cannot read device profile {path}: {e.strerror}") from None
        return parse_profile(data, str(path))
    shipped = _shipped()
    if text not in shipped:
        raise ProfileError(
            f"unknown device profile {text!r}: known profiles are {', '.join(sorted(shipped))} "
            "(`edgemeta devices` lists them), or give a path to a .toml file"
        )
    return parse_profile(shipped[text].read_bytes(), f"devices/{text}.toml", expect_name=text)


# --- parsing and validation --------------------------------------------------------------------------


def parse_profile(data: bytes | str, source: str = "<profile>", expect_name: str | None = None) -> Profile:
    """Parse and validate profile TOML; every error is one line that names the offending key."""
    if tomllib is None:
        raise ProfileError("reading device profiles needs Python >= 3.11 or the 'tomli' package: pip install tomli")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: not valid TOML: {_one_line(str(e))}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ProfileError(f"{source}: arrays or tables nested too deeply to be a device profile") from None
    v = _Validator(source)
    v.table(doc, "")
    if doc["schema"] != SCHEMA:
        v.fail("schema", f"is {doc['schema']}, but this edgemeta reads schema {SCHEMA}: upgrade edgemeta or fix the profile")
    name = v.nonempty(doc, "name")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        v.fail("name", f"must be lower-case letters, digits, '.', '_' or '-', got {name!r}")
    if expect_name is not None and name != expect_name:
        v.fail("name", f"is {name!r} but the file is {expect_name}.toml: make them match")
    v.choice(doc, "arch", ARCHES)
    state_dir = Path(os.path.expanduser(v.nonempty(doc, "state_dir")))
    notes = doc.get("notes", [])
    for i, note in enumerate(notes):
        if not isinstance(note, str):
            v.fail(f"notes[{i}]", f"must be a string, got {_show(note)}")

    runtime = doc["runtime"]
    v.table(runtime, "runtime")
    v.choice(runtime, "precision", PRECISIONS, where="runtime.precision")
    threads = runtime["threads"]
    if threads < 0:
        v.fail("runtime.threads", f"must be >= 0 (0: ONNX Runtime's default), got {threads}")
    providers, options = _providers(v, runtime, state_dir)
    workspace = runtime.get("trt_workspace_mb")
    if TRT in providers:
        if workspace is None:
            v.fail("runtime.trt_workspace_mb", f"is required when runtime.providers includes {TRT}", missing=True)
        if workspace <= 0:
            v.fail("runtime.trt_workspace_mb", f"must be > 0, got {workspace}")
        trt = options[providers.index(TRT)]
        trt["trt_fp16_enable"] = runtime["precision"] == "fp16"
        trt["trt_max_workspace_size"] = workspace * 2**20
        if "tensorrt" not in runtime:
            v.fail("runtime.tensorrt", f"is required when runtime.providers includes {TRT}: the oldest TensorRT this "
                   "board may have, e.g. \"8.6\" (export checks the graph against its ONNX parser)", missing=True)
    tensorrt = runtime.get("tensorrt")
    if tensorrt is not None and not re.fullmatch(r"\d+\.\d+(\.\d+)*", tensorrt):
        v.fail("runtime.tensorrt", f"must be a version like \"8.6\" or \"10.3\", got {tensorrt!r}")

    camera = doc["camera"]
    v.table(camera, "camera")
    v.nonempty(camera, "uri", where="camera.uri")
    for key in ("width", "height", "fps"):
        if not 0 < camera[key] <= 16384:
            v.fail(f"camera.{key}", f"must be between 1 and 16384, got {camera[key]}")

    reference = doc.get("reference", {})
    for learner, ref in reference.items():
        where = f"reference.{learner}"
        if not isinstance(ref, dict):
            v.fail(where, f"must be a table like [reference.{learner}] with measured = true/false, got {_show(ref)}")
        v.table(ref, "reference", where=where)
        _check_reference(v, ref, where)

    return Profile(
        name=name, description=v.nonempty(doc, "description"), arch=doc["arch"], providers=providers,
        provider_options=options, threads=threads, precision=runtime["precision"], camera=camera["uri"],
        resolution=(camera["width"], camera["height"]), fps=camera["fps"], state_dir=state_dir,
        trt_workspace_mb=workspace if TRT in providers else None, tensorrt=tensorrt, reference={k: dict(r) for k, r in reference.items()},
        notes=list(notes), source=source,
    )


def _providers(v: "_Validator", runtime: dict, state_dir: Path) -> tuple[list, list]:
    entries = runtime["providers"]
    if not entries:
        v.fail("runtime.providers", f"must list at least {CPU}")
    names, options = [], []
    for i, entry in enumerate(entries):
        where = f"runtime.providers[{i}]"
        if not isinstance(entry, dict):
            v.fail(where, f"must be a table ([[runtime.providers]] with name = ...), got {_show(entry)}")
        v.table(entry, "runtime.providers", where=where)
        name = entry["name"]
        if not re.fullmatch(r"[A-Za-z0-9]+ExecutionProvider", name):
            v.fail(f"{where}.name", f"must be an ONNX Runtime provider name like {CUDA}, got {name!r}")
        if name in names:
            v.fail(f"{where}.name", f"lists {name} twice")
        opts = {}
        for key, value in entry.get("options", {}).items():
            okey = f"{where}.options.{key}"
            if isinstance(value, (dict, list)) or value is None:
                v.fail(okey, f"must be a string, number or boolean, got {_show(value)}")
            if name == TRT and key in DERIVED_TRT_OPTIONS:
                v.fail(okey, f"is set from {DERIVED_TRT_OPTIONS[key]}: remove it and set that instead")
            if isinstance(value, str):
                for ph in re.findall(r"\{[^}]*\}", value):
                    if ph not in PLACEHOLDERS:
                        v.fail(okey, f"uses unknown placeholder {ph} (known: {', '.join(PLACEHOLDERS)})")
                value = value.replace("{state_dir}", str(state_dir))
            opts[key] = value
        names.append(name)
        options.append(opts)
    if names[-1] != CPU:
        v.fail("runtime.providers", f"must end with {CPU}, the last resort on every machine (got {names[-1]} last)")
    return names, options


def _check_reference(v: "_Validator", ref: dict, where: str) -> None:
    if ref["measured"]:
        for key in MEASURED_REQUIRED:
            if key not in ref:
                v.fail(f"{where}.{key}", "is required when measured = true (say what was measured and how)", missing=True)
        for key in ("step_us_median", "step_us_p90"):
            if key in ref and not ref[key] > 0:
                v.fail(f"{where}.{key}", f"must be > 0, got {ref[key]}")
    else:
        for key in MEASURED_ONLY:
            if key in ref:
                v.fail(f"{where}.{key}", "is set but measured = false: record only numbers that were measured, with measured = true")


class _Validator:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str, missing: bool = False):
        if missing:
            raise ProfileError(f"{self.source}: missing required key '{key}': {problem}")
        raise ProfileError(f"{self.source}: '{key}' {problem}")

    def table(self, data: dict, schema: str, where: str | None = None) -> None:
        """Unknown keys, then missing required keys, then types: the first problem found is reported."""
        where = schema if where is None else where
        spec = _SCHEMA[schema]
        prefix = f"{where}." if where else ""
        for key in data:
            if key not in spec:
                raise ProfileError(
                    f"{self.source}: unknown key '{prefix}{key}' (allowed{' in [' + where + ']' if where else ''}: "
                    f"{', '.join(spec)})"
                )
        for key, (kind, required) in spec.items():
            if required and key not in data:
                raise ProfileError(f"{self.source}: missing required key '{prefix}{key}'")
        for key, value in data.items():
            kind = spec[key][0]
            if not _is(value, kind):
                raise ProfileError(f"{self.source}: '{prefix}{key}' must be {_TYPE_NAMES[kind]}, got {_show(value)}")

    def nonempty(self, data: dict, key: str, where: str | None = None) -> str:
        value = data[key]
        if not value.strip():
            self.fail(where or key, "must not be empty")
        return value

    def choice(self, data: dict, key: str, choices, where: str | None = None) -> str:
        value = data[key]
        if value not in choices:
            self.fail(where or key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "an array", dict: "a table"}


def _is(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _show(value: Any) -> str:
    text = _one_line(repr(value))
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _one_line(text: str) -> str:
    return " ".join(text.split())
