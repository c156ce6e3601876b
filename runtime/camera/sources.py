"""Video sources chosen by URI: the only runtime module that opens devices.

The grammar is jetson-inference's, which Jetson users already know:

  0, 1, /dev/video0, v4l2:///dev/video0   a V4L2 camera (on a Jetson a bare 0 is csi://0, as there)
  csi://0                                 a MIPI CSI camera through GStreamer's nvarguscamerasrc (Jetson)
  file://clip.mp4, clip.mp4               a video file
  file://frames/, frames/                 a folder of images, read in natural sort order (or one image)
  rtsp://host:8554/stream                 a network stream
  synthetic://omniglot?classes=5&seed=0   the synthetic camera (runtime/camera/synthetic.py)

`VideoSource.read()` returns a BGR uint8 frame, or None when no frame came in time. A live source that
fails is reopened with bounded exponential backoff; what was learned lives in the learner, not here, so a
reconnect loses nothing. A finite source (file, folder, synthetic session) that has no more frames returns
None with `.ended` set.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

from edgemeta import EdgemetaError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
SCHEMES = ("v4l2", "csi", "file", "rtsp", "synthetic")
# jetson-inference's --input-flip names, in nvvidconv's flip-method order (0-7).
FLIPS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal", "upper-right-diagonal", "vertical",
         "upper-left-diagonal")
# Present on every Jetson (L4T). There /dev/video0 is the CSI sensor's raw Bayer node, which OpenCV cannot use,
# so a bare camera index means the CSI camera through the ISP, as in jetson-inference.
L4T_RELEASE_FILE = Path("/etc/nv_tegra_release")
_URI_HELP = (
    "use a camera index (0), /dev/videoN, csi://N, file://PATH or a path to a video or a folder of images, "
    "rtsp://HOST/PATH, or synthetic://omniglot"
)


@dataclass(frozen=True)
class SourceSpec:
    """What a URI means: which kind of source, what to open, and how."""

    kind: str  # "v4l2", "csi", "file", "images", "rtsp", "synthetic"
    uri: str  # as the user wrote it
    target: object  # device path or index, file/folder path, stream URL, or the pipeline string (csi)
    api: int = cv2.CAP_ANY  # OpenCV capture backend
    live: bool = False  # live sources reconnect on failure; finite ones end
    params: dict = field(default_factory=dict)  # synthetic:// query parameters


def parse_uri(uri: str | int, width: int = 1280, height: int = 720, fps: int = 30, flip: str = "none") -> SourceSpec:
    """Turn a source URI into a SourceSpec without opening anything (so it is testable anywhere).

    width/height/fps shape the csi:// pipeline (the sensor mode) and are requested from V4L2 cameras.
    flip (one of FLIPS) turns a csi:// camera's frames in its pipeline; other sources refuse it.
    """
    text = str(uri).strip()
    if not text:
        raise EdgemetaError(f"empty video source: {_URI_HELP}")
    if flip not in FLIPS:
        raise EdgemetaError(f"unknown flip {flip!r}; valid: {', '.join(FLIPS)}")
    if text.isdigit() and on_l4t():
        text = f"csi://{text}"
    spec = _parse(text, width, height, fps, flip)
    if flip != "none" and spec.kind != "csi":
        raise EdgemetaError(f"--input-flip applies to csi:// cameras (nvvidconv turns their frames); {text!r} is a "
                            f"{spec.kind} source")
    return spec


def on_l4t() -> bool:
    """True on a Jetson (NVIDIA's L4T), where camera index N means csi://N."""
    return L4T_RELEASE_FILE.exists()


def _parse(text: str, width: int, height: int, fps: int, flip: str) -> SourceSpec:
    if text.isdigit():
        return SourceSpec("v4l2", text, int(text), cv2.CAP_V4L2, live=True)
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("v4l2", text, text, cv2.CAP_V4L2, live=True)
    if "://" not in text:
        return _path_spec(text, Path(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "v4l2":
        device = parts.netloc + parts.path  # v4l2:///dev/video0 -> /dev/video0; v4l2://0 -> 0
        if device.isdigit():
            return SourceSpec("v4l2", text, int(device), cv2.CAP_V4L2, live=True)
        if not re.fullmatch(r"/dev/video\d+", device):
            raise EdgemetaError(f"{text!r}: expected v4l2:///dev/videoN or v4l2://N")
        return SourceSpec("v4l2", text, device, cv2.CAP_V4L2, live=True)
    if scheme == "csi":
        sensor = parts.netloc or parts.path.strip("/")
        if not sensor.isdigit():
            raise EdgemetaError(f"{text!r}: expected csi://N with N the sensor id, e.g. csi://0")
        pipeline = csi_pipeline(int(sensor), width, height, fps, FLIPS.index(flip))
        return SourceSpec("csi", text, pipeline, cv2.CAP_GSTREAMER, live=True)
    if scheme == "file":
        # file:///abs/path and file://relative/path (jetson-inference accepts both)
        return _path_spec(text, Path(parts.netloc + parts.path))
    if scheme in ("rtsp", "rtsps"):
        return SourceSpec("rtsp", text, text, cv2.CAP_FFMPEG, live=True)
    if scheme == "synthetic":
        generator = parts.netloc or parts.path.strip("/")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        return SourceSpec("synthetic", text, generator, live=False, params=params)
    raise EdgemetaError(f"unknown video source scheme {scheme + '://'!r} in {text!r}: {_URI_HELP}")


def csi_pipeline(sensor: int, width: int, height: int, fps: int, flip: int = 0) -> str:
    """The GStreamer pipeline for a Jetson CSI camera, ending in BGR frames for OpenCV's appsink.

    flip is nvvidconv's flip-method (FLIPS.index(name)): a camera mounted upside down is rotate-180 (2).
    nvarguscamerasrc delivers NV12 in NVMM (GPU) memory; nvvidconv copies it out as BGRx and
    videoconvert drops the x. drop=1/max-buffers=1: the demo wants the newest frame, not a backlog.
    """
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
        f"framerate=(fraction){fps}/1, format=(string)NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=1 max-buffers=1"
    )


def _path_spec(uri: str, path: Path) -> SourceSpec:
    path = path.expanduser()
    if path.is_dir():
        return SourceSpec("images", uri, path)
    if not path.exists():
        raise EdgemetaError(f"video source {uri!r}: {path} does not exist; {_URI_HELP}")
    if not os.access(path, os.R_OK):
        raise EdgemetaError(f"video source {uri!r}: {path} is not readable; check its permissions")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return SourceSpec("images", uri, path)  # a single image: a one-frame video
    return SourceSpec("file", uri, path, cv2.CAP_FFMPEG)


# --- backends: each opens one kind of source; read() -> frame or None, live ones may fail ---------


class _CaptureBackend:
    """cv2.VideoCapture for cameras, CSI pipelines, files and streams."""

    def __init__(self, spec: SourceSpec, width: int | None, height: int | None, timeout_ms: int):
        self.spec = spec
        args = [spec.target if isinstance(spec.target, int) else str(spec.target), spec.api]
        if spec.kind in ("rtsp", "file"):
            # Bounded waits: without them a dead stream blocks read() for half a minute.
            args.append([cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
        with _quiet_opencv():  # our one-line error replaces OpenCV's own warnings about the failed open
            self.cap = cv2.VideoCapture(*args)
        if not self.cap.isOpened():
            self.cap.release()
            raise EdgemetaError(_cannot_open(spec))
        if spec.kind == "v4l2":
            if width:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a stale queue

    def read(self) -> Optional[np.ndarray]:
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return None
        return _as_bgr(frame)

    def close(self) -> None:
        self.cap.release()


class _ImageFolderBackend:
    """The images of a folder in natural order (img2 before img10), or one image, as a finite video."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        target = Path(spec.target)
        if target.is_file():
            files = [target]
        else:
            files = [p for p in target.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        if not files:
            raise EdgemetaError(
                f"video source {spec.uri!r}: no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {spec.target}"
            )
        self.files = sorted(files, key=_natural_key)
        self.next = 0

    def read(self) -> Optional[np.ndarray]:
        if self.next >= len(self.files):
            return None
        path = self.files[self.next]
        self.next += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise EdgemetaError(f"cannot decode image {path}: remove it from the folder or convert it to PNG/JPEG")
        return frame

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _quiet_opencv():
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _gstreamer_available() -> bool:
    return re.search(r"GStreamer:\s*YES", cv2.getBuildInformation()) is not None


def _cannot_open(spec: SourceSpec) -> str:
    if spec.kind == "v4l2":
        return (
            f"cannot open camera {spec.uri!r}: check that it is plugged in (ls /dev/video*), not used by another "
            "program, and that you are in the 'video' group"
        )
    if spec.kind == "csi":
        if not _gstreamer_available():
            return (
                f"cannot open {spec.uri!r}: this OpenCV was built without GStreamer; on a Jetson use the system "
                "OpenCV (sudo apt install python3-opencv; pip uninstall opencv-python) in a venv with "
                "--system-site-packages"
            )
        return f"cannot open {spec.uri!r}: check the ribbon cable and that nvargus-daemon runs (sudo systemctl restart nvargus-daemon)"
    if spec.kind == "rtsp":
        return f"cannot open stream {spec.uri!r}: check the address, the network and that the server is streaming"
    return f"cannot read video {spec.uri!r}: not a video OpenCV can decode; convert it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"


# --- the source the demo uses ----------------------------------------------------------------------


class VideoSource:
    """A frame source chosen by URI, with reconnection for live sources.

    read() -> BGR uint8 frame, or None (no frame this time; check .ended for the end of a finite source).
    `frame_index` is the 0-based index of the last frame returned (-1 before the first). `backend` is what
    delivers the frames; for synthetic:// it is the SyntheticCamera, whose `truth_of(frame_index)` is the
    ground truth of a frame.

    A live source that stops delivering is closed and reopened after a backoff that doubles from
    `backoff_s` up to `max_backoff_s`; after `reconnect_tries` failed reopenings in a row it raises
    EdgemetaError. `open_backend(spec)` and `sleep` can be replaced (a synthetic session with its data
    folder: runtime/camera/synthetic.py synthetic_opener; tests; other capture stacks).
    """

    def __init__(
        self,
        uri: str | int,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: int = 30,
        flip: str = "none",
        timeout_ms: int = 5000,
        reconnect_tries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        open_backend: Callable[[SourceSpec], object] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.spec = parse_uri(uri, width or 1280, height or 720, fps, flip)
        self.uri = self.spec.uri
        self.reconnect_tries = reconnect_tries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._open_backend = open_backend or (lambda spec: _default_backend(spec, width, height, timeout_ms))
        self.frame_index = -1
        self.ended = False
        self.reconnects = 0  # successful reopenings (for the overlay and the log)
        self._failed_reopens = 0
        self.backend = self._open_backend(self.spec)
        self._num_frames = self._count_frames()
        self.fps = self._native_fps(fps)

    @property
    def live(self) -> bool:
        return self.spec.live

    def __len__(self) -> int:
        """Frames in a finite source, when known (0 when unknown)."""
        return self._num_frames

    def _count_frames(self) -> int:
        n = getattr(self.backend, "num_frames", None)
        if n is not None:
            return int(n)
        if isinstance(self.backend, _ImageFolderBackend):
            return len(self.backend.files)
        if isinstance(self.backend, _CaptureBackend) and not self.live:
            return max(0, int(self.backend.cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        return 0

    def _native_fps(self, default: float) -> float:
        if isinstance(self.backend, _CaptureBackend):
            native = self.backend.cap.get(cv2.CAP_PROP_FPS)
            if 1.0 <= native <= 240.0:
                return float(native)
        return float(default)

    def read(self) -> Optional[np.ndarray]:
        """The next frame, or None: no frame this time (a live source reconnecting), or the end (.ended)."""
        if self.ended:
            return None
        if self.backend is None and not self._reopen():
            return None
        frame = self.backend.read()
        if frame is None:
            if self.live:
                self._drop()
            else:
                self.ended = True
            return None
        self._failed_reopens = 0
        self.frame_index += 1
        return frame

    def _drop(self) -> None:
        """A live source stopped delivering: close it; the next attempt reopens it after a backoff."""
        try:
            self.backend.close()
        finally:
            self.backend = None

    def _reopen(self) -> bool:
        if self._failed_reopens >= self.reconnect_tries:
            raise EdgemetaError(
                f"lost video source {self.uri!r} and could not reopen it after {self.reconnect_tries} tries; "
                "check the camera and its cable, or raise the retry count"
            )
        self._sleep(min(self.max_backoff_s, self.backoff_s * 2**self._failed_reopens))
        try:
            self.backend = self._open_backend(self.spec)
        except EdgemetaError:
            self._failed_reopens += 1
            return False
        self.reconnects += 1
        return True

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _default_backend(spec: SourceSpec, width: int | None, height: int | None, timeout_ms: int):
    if spec.kind == "images":
        return _ImageFolderBackend(spec)
    if spec.kind == "synthetic":
        from edgemeta.runtime.camera.synthetic import synthetic_opener

        return synthetic_opener()(spec)
    return _CaptureBackend(spec, width, height, timeout_ms)
