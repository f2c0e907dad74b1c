"""Runtimes: one small interface (:class:`Runtime`: ``predict(image)``, ``spec``), one module
per back end. :func:`open_runtime` picks the back end from the file's extension."""

from __future__ import annotations

import numbers
from pathlib import Path

from egeunet.runtimes.base import IOSpec, Runtime, read_manifest

BY_SUFFIX = {".safetensors": "torch", ".onnx": "onnxruntime", ".tflite": "litert", ".mlpackage": "coreml"}


def open_runtime(path: str | Path | None = None, runtime: str | None = None, threads: int | None = None,
                 manifest: dict | None = None) -> Runtime:
    """Open a model file. ``path=None`` is the shipped PyTorch weights. ``threads``: the
    runtime's intra-op threads (for the PyTorch runtime that is PyTorch's process-wide setting,
    ``torch.set_num_threads``; ONNX Runtime and LiteRT keep theirs per session)."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
            # "2" failed with a TypeError, 2.5 with LiteRT blaming the model file
            raise ValueError(f"threads must be an integer, not {threads!r}")
        threads = int(threads)  # numpy integers too: LiteRT takes a Python int only
    if threads is not None and threads < 1:  # else torch fails deep inside, and LiteRT blames the model
        raise ValueError(f"threads must be >= 1, not {threads}")
    if path is None:
        runtime = runtime or "torch"
    else:
        from egeunet.model.checkpoint import resolve_weights

        path = resolve_weights(path)
        if not path.exists():
            raise ValueError(f"{path}: no such model file")
        if path.is_dir() and path.suffix != ".mlpackage":  # Core ML packages are folders; nothing else is
            raise ValueError(f"{path}: a folder, not a model file")
        runtime = runtime or BY_SUFFIX.get(path.suffix)
        if runtime is None:
            raise ValueError(f"{path}: unknown model type {path.suffix!r}; expected one of {', '.join(BY_SUFFIX)}")
    if runtime == "torch":
        from egeunet.runtimes.torch_runtime import TorchRuntime

        return TorchRuntime(path, threads)
    if runtime == "onnxruntime":
        from egeunet.runtimes.onnx_runtime import OnnxRuntime

        return OnnxRuntime(path, threads, manifest)
    if runtime == "litert":
        from egeunet.runtimes.litert_runtime import LiteRTRuntime

        return LiteRTRuntime(path, threads, manifest)
    if runtime == "coreml":
        from egeunet.runtimes.coreml_runtime import CoreMLRuntime

        return CoreMLRuntime(path, manifest)
    raise ValueError(f"unknown runtime {runtime!r}: choose torch, onnxruntime, litert or coreml")


__all__ = ["IOSpec", "Runtime", "open_runtime", "read_manifest"]
