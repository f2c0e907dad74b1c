"""LiteRT (TFLite) with XNNPACK: ``ai_edge_litert`` where installed, else ``tflite_runtime``
(what a Raspberry Pi usually has), else TensorFlow's own interpreter."""

from __future__ import annotations

import importlib
import struct
import threading
from pathlib import Path

import numpy as np

from egeunet.runtimes.base import Runtime, check_file_matches_spec, manifest_contract, read_manifest


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


def _tflite_schema():
    """The .tflite flatbuffer schema's Python reader, where the installed LiteRT ships one."""
    for module in ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    return None


def check_complete(path: str | Path) -> None:
    """A ValueError naming ``path`` unless its whole flatbuffer can be read. LiteRT reads the
    file without bounds checks: one cut short (an interrupted copy or download) crashes the
    process (SIGSEGV) or opens as another, silently wrong model. Python's reader raises on any
    offset beyond the end instead (~0.1 s for our models). Skipped where no schema is installed
    (tflite_runtime ships none)."""
    if not Path(path).is_file():  # missing: the interpreter says so (open_runtime already has)
        return
    data = Path(path).read_bytes()
    if data[4:8] != b"TFL3":  # the flatbuffer's file identifier: another kind of file renamed
        raise ValueError(f"{path}: not a .tflite file (no TFL3 identifier in its first 8 bytes)")
    schema = _tflite_schema()
    if schema is None:
        return
    try:
        schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except (struct.error, ValueError, IndexError, TypeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a complete .tflite file (cut short or corrupt: {e.__class__.__name__}: {e}); "
                         "copy or export it again") from None


class LiteRTRuntime(Runtime):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, manifest: dict | None = None) -> None:
        pre, spec = manifest_contract(manifest or read_manifest(path), path)
        Interpreter = load_interpreter_class()
        check_complete(path)
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{path}: LiteRT cannot load it ({str(e).splitlines()[0]})") from None
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        check_file_matches_spec(path, spec, *((d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name)
                                              for d in (self._in, self._out)))
        # One interpreter has one set of input / output buffers: calls from several threads
        # (a web server sharing one runtime) take turns, else they fail or swap outputs.
        self._lock = threading.Lock()
        super().__init__(path, pre, spec)

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            self.interpreter.set_tensor(self._in["index"], x.astype(self._in["dtype"], copy=False))
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._out["index"])  # a copy, not a view of the buffer
