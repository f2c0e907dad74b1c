"""What every exporter shares: the result type, the format table, staging and atomic
publication of an artifact with its manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """An export that could not be completed; nothing was written."""


class ParityError(ExportError):
    """The artifact disagrees with PyTorch beyond the allowed threshold; nothing was written."""


@dataclass(frozen=True)
class Format:
    """One exportable variant. ``min_iou`` / ``max_abs`` are the default parity gates against
    PyTorch fp32: mask IoU over the verification images, and max |difference| of the
    probabilities (logits of large magnitude make an absolute logit gate meaningless)."""

    target: str
    precision: str
    suffix: str
    runtime: str  # which egeunet.runtimes back end runs it on this machine ("" = none on Linux)
    min_iou: float
    max_abs: float | None = None

    @property
    def key(self) -> str:
        return f"{self.target}-{self.precision}"


FORMATS: tuple[Format, ...] = (
    Format("onnx", "fp32", ".onnx", "onnxruntime", min_iou=0.999, max_abs=1e-4),
    Format("tflite", "fp32", ".tflite", "litert", min_iou=0.999, max_abs=1e-3),
    Format("tflite", "fp16", ".tflite", "litert", min_iou=0.998),
    Format("tflite", "int8", ".tflite", "litert", min_iou=0.99),
    Format("tflite", "int8-full", ".tflite", "litert", min_iou=0.90),
    Format("coreml", "fp16", ".mlpackage", "", min_iou=0.998),
    Format("coreml", "int8", ".mlpackage", "", min_iou=0.98),
)
TARGETS = tuple(dict.fromkeys(f.target for f in FORMATS))


def find_format(target: str, precision: str) -> Format:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    for f in FORMATS:
        if f.target == target and f.precision == precision:
            return f
    have = ", ".join(f.precision for f in FORMATS if f.target == target)
    raise ValueError(f"--target {target} has no {precision} variant (it has: {have})")


@dataclass
class ExportResult:
    """Uniform result of every exporter."""

    format: Format
    path: Path
    manifest_path: Path
    size_bytes: int
    seconds: float
    parity: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        p = self.parity
        par = (f"IoU {p['iou']:.4f}, Dice {p['dice']:.4f}, max|diff| {p['max_abs']:.2e} on {p['n_images']} images"
               if p.get("iou") is not None else p.get("skipped", "not verified"))
        return f"{self.format.key:12s} {self.path}  {self.size_bytes:,} bytes  parity: {par}  {self.seconds:.1f}s"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in paths:  # an .mlpackage is a folder: hash its files in a fixed order
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def check_writable_dir(out: Path) -> Path:
    out = Path(out).absolute()  # converters run in child processes with another working directory
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{out}: cannot create the output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: output folder is not writable")
    return out


@contextlib.contextmanager
def staging_dir(out: Path):
    """A scratch folder inside ``out`` (same file system, so publishing is a rename),
    removed whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix=".egeunet-export-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Set by egeunet-export's SIGTERM handler, which also raises SystemExit. A signal that lands
# while a __del__ runs (TensorFlow's function destructors, during garbage collection) has its
# SystemExit printed as "Exception ignored" and dropped, and the export went on to publish its
# file and exit 0; publish() checks this flag so a terminated export never publishes.
TERMINATION_REQUESTED = threading.Event()


def publish(staged: Path, manifest: dict, out: Path) -> tuple[Path, Path]:
    """Move a verified artifact and its manifest from staging into ``out``.

    The old manifest goes first and the new one comes last, so an interruption in between
    leaves at most an artifact without a manifest, never a manifest that describes a file
    that is not (or no longer) there. An earlier artifact of the same name is moved aside
    into staging with one rename (removed with it), not deleted in place: an .mlpackage
    is a folder, and a half-deleted one would be a half-written artifact."""
    if TERMINATION_REQUESTED.is_set():
        raise SystemExit(128 + signal.SIGTERM)
    final = out / staged.name
    man = out / "manifest.json"
    man_tmp = staged.parent / "manifest.json"
    man_tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    man.unlink(missing_ok=True)
    if final.exists() or final.is_symlink():
        os.replace(final, staged.parent / f".replaced-{final.name}")
    os.replace(staged, final)
    os.replace(man_tmp, man)
    return final, man


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
