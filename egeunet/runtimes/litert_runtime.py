"""LiteRT (TFLite) with XNNPACK: ``ai_edge_litert`` where installed, else ``tflite_runtime``
(what a Raspberry Pi usually has), else TensorFlow's own interpreter."""

from __future__ import annotations

import importlib
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from egeunet.native_logs import import_tensorflow, quiet_native_logs
from egeunet.runtimes.base import Runtime, check_file_matches_spec, manifest_contract, read_manifest, same_bytes


def load_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                Interpreter = import_tensorflow().lite.Interpreter
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


# One inference on zeros, the way LiteRTRuntime loads a file, in a process of its own.
_PROBE = """
import sys
import numpy as np
from egeunet.runtimes.litert_runtime import load_interpreter_class
interpreter = load_interpreter_class()(model_path=sys.argv[1], num_threads=1)
interpreter.allocate_tensors()
for d in interpreter.get_input_details():
    interpreter.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
interpreter.invoke()
"""


def probe_in_child(path: str | Path, timeout_s: float = 600) -> None:
    """A ValueError naming ``path`` unless a separate Python process can load it in LiteRT and
    run one inference. A complete flatbuffer can still crash LiteRT: a SPLIT with 0 splits, or a
    page of the file zeroed on a bad disk, ends the whole process with SIGSEGV (no exception to
    catch). Run for files whose bytes are not those their manifest was written for; an exported
    file, already run by its export's parity check, is opened directly (~0.2 s saved)."""
    if not sys.executable or not Path(path).is_file():  # embedded Python; a missing file LiteRT names itself
        return
    package_root = str(Path(__file__).resolve().parents[2])  # the child imports this egeunet
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True,
                              env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{path}: LiteRT did not finish one inference on it within {timeout_s:.0f} s") from None
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        raise ValueError(f"{path}: LiteRT crashes on this file ({how} in a separate process that loaded it and ran "
                         "one inference): a damaged or hand-edited file; copy or export it again")
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        raise ValueError(f"{path}: LiteRT cannot run it ({lines[-1] if lines else f'exit code {done.returncode}'})")


class LiteRTRuntime(Runtime):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None, manifest: dict | None = None) -> None:
        manifest = manifest or read_manifest(path)
        pre, spec = manifest_contract(manifest, path)
        Interpreter = load_interpreter_class()
        check_complete(path)
        if not same_bytes(Path(path), manifest.get("sha256")):  # edited, replaced or hand-made: may crash LiteRT
            probe_in_child(path)
        try:
            with quiet_native_logs():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
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
