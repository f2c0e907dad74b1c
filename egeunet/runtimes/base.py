"""The runtime interface: open a model file, ``predict(image)`` -> probabilities / mask.

Every back end follows the one preprocessing contract (:mod:`egeunet.preprocess`) and owns
its own tensor layout and dtype: NCHW float for PyTorch and ONNX, NHWC for TFLite, raw
uint8 pixels for an int8 model with a uint8 input. What the input values mean and what the
output is (logits or probabilities) comes from the artifact's ``manifest.json`` (or, for
PyTorch, the checkpoint's sidecar), so a runtime never guesses.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egeunet.preprocess import Preprocessing, as_rgb_uint8, normalize, probabilities_to_mask, resize_image, sigmoid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IOSpec:
    """What a model file takes and gives (the manifest's ``io`` entry)."""

    input_name: str
    input_shape: tuple[int, ...]
    input_dtype: str  # "float32" or "uint8"
    input_layout: str  # "NCHW" or "NHWC"
    input_values: str  # "normalized" ((x - mean) / std) or "pixels" (raw RGB 0..255)
    output_name: str
    output_shape: tuple[int, ...]
    output_dtype: str
    output_kind: str  # "logits" or "probs"
    input_quant: tuple[float, int] | None = None  # (scale, zero_point) for integer inputs
    output_quant: tuple[float, int] | None = None

    def to_dict(self) -> dict:
        return {
            "input": {"name": self.input_name, "shape": list(self.input_shape), "dtype": self.input_dtype,
                      "layout": self.input_layout, "values": self.input_values,
                      "quantization": _quant_dict(self.input_quant)},
            "output": {"name": self.output_name, "shape": list(self.output_shape), "dtype": self.output_dtype,
                       "kind": self.output_kind, "quantization": _quant_dict(self.output_quant)},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "IOSpec":
        i, o = d["input"], d["output"]
        return cls(i["name"], tuple(i["shape"]), i["dtype"], i["layout"], i["values"],
                   o["name"], tuple(o["shape"]), o["dtype"], o["kind"],
                   _quant_tuple(i.get("quantization")), _quant_tuple(o.get("quantization")))


def _quant_dict(q):
    return None if q is None else {"scale": float(q[0]), "zero_point": int(q[1])}


def _quant_tuple(d):
    return None if not d else (float(d["scale"]), int(d["zero_point"]))


def manifest_path(model_path: str | Path) -> Path:
    """Artifacts live one per folder beside a ``manifest.json``; a file may also carry its own
    ``<name>.manifest.json``."""
    model_path = Path(model_path)
    own = model_path.with_name(model_path.name + ".manifest.json")
    return own if own.is_file() else model_path.parent / "manifest.json"


MANIFEST_KEYS = ("file", "target", "precision", "io", "preprocessing")  # what every reader relies on


def load_manifest_file(path: str | Path) -> dict:
    """A ``manifest.json`` as written by egeunet-export: a JSON object with :data:`MANIFEST_KEYS`;
    anything else is a one-line error naming the file."""
    path = Path(path)
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(man, dict):
        raise ValueError(f"{path}: not a manifest (a JSON {type(man).__name__}, expected an object)")
    missing = [k for k in MANIFEST_KEYS if k not in man]
    if missing:
        raise ValueError(f"{path}: not a complete manifest (no {', '.join(map(repr, missing))} entry; "
                         "re-export with egeunet-export)")
    return man


def read_manifest(model_path: str | Path) -> dict:
    """The manifest of ``model_path``, checked to describe that very file: a folder that holds
    several exports has only the last one's manifest, and the wrong contract fails deep
    inside a runtime."""
    model_path = Path(model_path)
    path = manifest_path(model_path)
    if not path.is_file():
        raise ValueError(f"{model_path}: no manifest.json beside it; it holds the preprocessing contract "
                         "(re-export with egeunet-export, which writes one)")
    man = load_manifest_file(path)
    if man["file"] != model_path.name and not same_bytes(model_path, man.get("sha256")):
        raise ValueError(f"{path} describes {man['file']!r}, not {model_path.name}: export each variant to its "
                         "own --out folder (or re-export this one)")
    if man["file"] == model_path.name and model_path.is_file() and man.get("sha256") \
            and not same_bytes(model_path, man["sha256"]):
        # Same name, other bytes: a file replaced or edited after export. Its inputs and outputs
        # are checked when it is opened; its parity figures and provenance are the old file's.
        log.warning("%s: its bytes are not those %s was written for (sha256 %s...): the manifest's parity and "
                    "provenance describe another file; re-export to get a manifest of this one",
                    model_path, path.name, str(man["sha256"])[:12])
    return man


def same_bytes(model_path: Path, sha256: str | None) -> bool:
    """Whether ``model_path`` holds the bytes its manifest was written for (its ``sha256``); a
    renamed copy of the exported file still does."""
    if not sha256 or not model_path.is_file():
        return False
    from egeunet.model.checkpoint import file_sha256

    return file_sha256(model_path) == sha256


def manifest_contract(manifest: dict, where: str | Path) -> tuple[Preprocessing, IOSpec]:
    """(preprocessing, io spec) from a manifest's entries; a malformed entry is a one-line error."""
    try:
        return Preprocessing.from_dict(manifest["preprocessing"]), IOSpec.from_dict(manifest["io"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{where}: bad 'preprocessing' or 'io' entry in its manifest "
                         f"({e.__class__.__name__}: {e})") from None


def check_file_matches_spec(path: str | Path, spec: IOSpec, file_input: tuple, file_output: tuple) -> None:
    """The manifest's input and output (name, shape, dtype) against those the loaded file really
    has. A manifest left beside a replaced file (same name) otherwise drives the wrong
    preprocessing or output handling, silently or with a runtime error at the first image.
    ``file_*``: (name, shape, dtype name); a shape entry that is not an int is not compared."""
    problems = []
    for what, (name, shape, dtype), want in (
            ("input", file_input, (spec.input_name, spec.input_shape, spec.input_dtype)),
            ("output", file_output, (spec.output_name, spec.output_shape, spec.output_dtype))):
        same_shape = len(shape) == len(want[1]) and all(
            not isinstance(a, int) or a == b for a, b in zip(shape, want[1]))
        if name != want[0] or not same_shape or dtype != want[2]:
            problems.append(f"{what} {name!r} {list(shape)} {dtype} (manifest: {want[0]!r} {list(want[1])} {want[2]})")
    if problems:
        raise ValueError(f"{path}: the file does not match its manifest: {'; '.join(problems)}; the manifest was "
                         "written for another file (re-export, or keep each export beside its own manifest)")


class Runtime(ABC):
    """One loaded model file."""

    name: str = "runtime"

    def __init__(self, path: str | Path, pre: Preprocessing, spec: IOSpec) -> None:
        self.path = Path(path)
        self.pre = pre
        self.spec = spec

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run the graph on one input laid out as ``self.spec`` says; raw output."""

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 image of any size (or any image :func:`~egeunet.preprocess.as_rgb_uint8`
        takes) -> this model's input tensor (batch 1)."""
        img = resize_image(as_rgb_uint8(image), self.pre.size)
        if self.spec.input_values == "pixels":
            x = img.astype(self.spec.input_dtype)
        else:
            x = normalize(img, self.pre)
            if self.spec.input_quant is not None:  # int8 model with a quantised float input
                scale, zp = self.spec.input_quant
                info = np.iinfo(self.spec.input_dtype)
                x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(self.spec.input_dtype)
        if self.spec.input_layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])

    def logits_or_probs(self, image: np.ndarray) -> np.ndarray:
        """The raw output map (size, size) as float32, dequantised."""
        y = self._run(self.prepare(image))
        if self.spec.output_quant is not None:
            scale, zp = self.spec.output_quant
            y = (y.astype(np.float32) - zp) * scale
        return np.asarray(y, dtype=np.float32).reshape(self.pre.size, self.pre.size)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Probabilities (size, size) float32 for an RGB uint8 image (H, W, 3) of any size; grey,
        RGBA, other pixel dtypes and PIL images as :func:`~egeunet.preprocess.as_rgb_uint8`
        says (anything else is a ValueError naming the problem)."""
        y = self.logits_or_probs(image)
        return sigmoid(y) if self.spec.output_kind == "logits" else y

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Boolean lesion mask (H, W) at the image's own size (the same inputs as :meth:`predict`)."""
        image = as_rgb_uint8(image)
        return probabilities_to_mask(self.predict(image), image.shape[:2], self.pre)
