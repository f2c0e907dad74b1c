"""ONNX Runtime (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egeunet.runtimes.base import Runtime, check_file_matches_spec, manifest_contract, read_manifest


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, manifest: dict | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("ONNX Runtime is not installed: pip install 'egeunet[export]'") from None
        pre, spec = manifest_contract(manifest or read_manifest(path), path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None
        # ONNX Runtime names element types "tensor(float)"; numpy's names are the manifest's
        dtypes = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
                  "tensor(int8)": "int8", "tensor(double)": "float64"}
        check_file_matches_spec(path, spec, *((a.name, tuple(a.shape), dtypes.get(a.type, a.type))
                                              for a in (self.session.get_inputs()[0], self.session.get_outputs()[0])))
        super().__init__(path, pre, spec)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.spec.output_name], {self.spec.input_name: x})[0]
