"""``manifest.json``: what an app or a runtime needs to use an artifact correctly."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from egeunet.export.common import Format, sha256_of, size_of
from egeunet.preprocess import Preprocessing
from egeunet.runtimes.base import IOSpec

TOOLS = ("egeunet", "torch", "onnx", "onnxruntime", "onnxsim", "onnx2tf", "tensorflow", "ai-edge-litert", "coremltools")


def tool_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(fmt: Format, artifact: Path, io: IOSpec, pre: Preprocessing, weights_sha256: str,
                   parity: dict, **extra) -> dict:
    return {
        "file": artifact.name,
        "sha256": sha256_of(artifact),
        "bytes": size_of(artifact),
        "target": fmt.target,
        "precision": fmt.precision,
        "io": io.to_dict(),
        "preprocessing": pre.to_dict(),
        "threshold": {"probability": pre.threshold,
                      "on_output": pre.threshold_on(io.output_kind),
                      "meaning": "lesion where output >= on_output"},
        "weights_sha256": weights_sha256,
        "tools": tool_versions(),
        "parity": parity,
        **extra,
    }
