"""Keep TensorFlow's and LiteRT's start-up chatter off our users' terminals.

TensorFlow 2.19 writes lines such as ``E0000 … cuda_dnn.cc] Unable to register cuDNN factory``
from C++ while it is imported, before absl's logging is set up, so ``TF_CPP_MIN_LOG_LEVEL``
cannot silence them; its converter adds a few more, LiteRT announces its XNNPACK delegate, and
coremltools on Linux lists the eight macOS-only classes it cannot load.
They are harmless, but the headline ``egeunet-export --target tflite --int8`` printed fourteen
of them, "E" (error) lines among them, above its one result line.

:func:`quiet_native_logs` points file descriptor 2 at a temporary file around such a native
call and then replays every captured line that is *not* one of the known start-up messages
below: a real error or warning from TensorFlow, or a Python warning raised inside, still
appears (just after the call). ``EGEUNET_NATIVE_LOGS=all`` turns the filter off.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager

# Informational or duplicate-registration lines of the pinned TensorFlow / LiteRT (each seen on
# this project's machines); anything else passes through.
KNOWN_STARTUP_LINES = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    # coremltools on Linux: its native library is macOS-only, which the export already reports
    r"|Failed to load _\w+Proxy: No module named 'coremltools\.libcoremlpython'$"
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$"
    r"|[IWE]0000 00:00:\S+\s+\d+ (?:"
    r"cuda_(?:dnn|blas|fft)\.cc:\d+\] Unable to register cu\w+ factory: Attempting to register factory for plugin cu\w+"
    r" when one has already been registered"
    r"|computation_placer\.cc:\d+\] computation placer already registered\."
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU instructions"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|devices\.cc:\d+\] Number of eligible GPUs"
    r"|single_machine\.cc:\d+\] Starting new session"
    r"|tf_tfl_flatbuffer_helpers\.cc:\d+\] Ignored (?:output_format|drop_control_dependency)\."
    r"))")

_lock = threading.Lock()  # one redirection of the process's fd 2 at a time


@contextmanager
def quiet_native_logs():
    """Hold what is written to fd 2 during the block; afterwards (also after an exception)
    write it back without TensorFlow's and LiteRT's known start-up lines."""
    if os.environ.get("EGEUNET_NATIVE_LOGS") == "all" or not _lock.acquire(blocking=False):
        yield  # filter off, or another thread's block holds fd 2: it filters what is written while it lasts
        return
    try:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (a daemon): nothing to keep quiet
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not KNOWN_STARTUP_LINES.match(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
    finally:
        _lock.release()


def import_quietly(name: str):
    """``importlib.import_module(name)`` without the start-up lines its first import prints."""
    if name not in sys.modules:
        with quiet_native_logs():
            importlib.import_module(name)
    return sys.modules[name]


def import_tensorflow():
    """``import tensorflow`` (which imports its CUDA plugins, loudly, even on a CPU machine)."""
    return import_quietly("tensorflow")
