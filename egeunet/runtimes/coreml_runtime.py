"""Core ML (.mlpackage). Prediction needs macOS: the Core ML framework exists nowhere else.
On other systems opening one raises a clear error; the spec can still be inspected with
coremltools (see egeunet.export.coreml_export)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from egeunet.preprocess import as_rgb_uint8, resize_image
from egeunet.runtimes.base import Runtime, manifest_contract, read_manifest


class CoreMLRuntime(Runtime):
    name = "coreml"

    def __init__(self, path: str | Path, manifest: dict | None = None) -> None:
        if platform.system() != "Darwin":
            raise ImportError(f"Core ML prediction needs macOS (this is {platform.system()}); "
                              "on Linux the .mlpackage can be converted and inspected but not run")
        import coremltools as ct

        pre, spec = manifest_contract(manifest or read_manifest(path), path)
        self.model = ct.models.MLModel(str(path))
        super().__init__(path, pre, spec)

    def prepare(self, image: np.ndarray):
        from PIL import Image

        return Image.fromarray(resize_image(as_rgb_uint8(image), self.pre.size))

    def _run(self, x) -> np.ndarray:  # macOS only
        return np.asarray(self.model.predict({self.spec.input_name: x})[self.spec.output_name])
