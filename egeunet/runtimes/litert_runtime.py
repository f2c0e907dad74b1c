"""LiteRT (TFLite) with XNNPACK: ``ai_edge_litert`` where installed, else ``tflite_runtime``
(what a Raspberry Pi usually has), else TensorFlow's own interpreter."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from egeunet.runtimes.base import Runtime, manifest_contract, read_manifest


def load_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                from tensorflow.lite import Interpreter
            except ImportError:
                raise ImportError("no TFLite interpreter installed: pip install ai-edge-litert "
                                  "(or tflite-runtime on a Raspberry Pi)") from None
    return Interpreter


class LiteRTRuntime(Runtime):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, manifest: dict | None = None) -> None:
        pre, spec = manifest_contract(manifest or read_manifest(path), path)
        Interpreter = load_interpreter_class()
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: LiteRT cannot load it ({str(e).splitlines()[0]})") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        # One interpreter has one set of input / output buffers: calls from several threads
        # (a web server sharing one runtime) take turns, else they fail or swap outputs.
        self._lock = threading.Lock()
        super().__init__(path, pre, spec)

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self.interpreter.set_tensor(self._in["index"], x.astype(self._in["dtype"], copy=False))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._out["index"])  # a copy, not a view of the buffer
