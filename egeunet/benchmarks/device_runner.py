"""Self-contained runner for a device (Raspberry Pi over SSH, the emulated Cortex-A lab).

Copied alone to the device: only the standard library, numpy and a TFLite interpreter
(``ai_edge_litert`` or ``tflite_runtime``), no egeunet imports. The host prepares the model
inputs with the runtime's own ``prepare()`` (one preprocessing contract), so the device needs
no image library; this script only feeds them, times the model call and keeps the raw outputs
so the host computes parity and Dice with its own code.

    python3 device_runner.py --model m.tflite --inputs x.npy --threads 1 --warmup 10 --runs 50 \
        --json out.json --outputs y.npy

``--inputs`` holds a batch (N, ...) of single-image inputs; each is cast to the model's input
dtype (the host sends integer-valued pixels as uint8 to save bytes, which casts back exactly).
Latency: ``--warmup`` untimed then ``--runs`` timed calls on the first input. Outputs: one
call per input, saved as an (N, ...) array in the model's output dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def load_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        raise SystemExit("device_runner: no TFLite interpreter on this device: "
                         "pip install ai-edge-litert (or tflite-runtime)") from None


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # no metadata (a system package): the version is unknown, not an error
        return "unknown"


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    parts = sorted({line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("CPU part")})
    return f"{platform.machine()} (CPU part {', '.join(parts)})" if parts else platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", required=True, help=".npy batch (N, ...) of prepared model inputs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=50, help="timed calls (0: none)")
    p.add_argument("--json", help="write timings and device facts here")
    p.add_argument("--outputs", help="write the raw outputs (N, ...) here as .npy")
    a = p.parse_args(argv)

    Interpreter, backend = load_interpreter_class()
    try:
        interp = Interpreter(model_path=a.model, num_threads=a.threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"device_runner: {a.model}: the interpreter cannot load it ({str(e).splitlines()[0]})")
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    xs = np.load(a.inputs)
    if xs.ndim == 0 or tuple(xs.shape[1:]) != tuple(inp["shape"]):
        raise SystemExit(f"device_runner: inputs {a.inputs} have shape {xs.shape}; the model wants "
                         f"(N, {', '.join(map(str, inp['shape']))})")
    xs = xs.astype(inp["dtype"], copy=False)

    def call(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    for _ in range(a.warmup):
        call(xs[0])
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        call(xs[0])
        times.append((time.perf_counter() - t0) * 1000.0)
    if a.outputs:
        ys = np.stack([call(x).copy() for x in xs])
        tmp = f"{a.outputs}.{os.getpid()}.tmp.npy"
        np.save(tmp, ys)
        os.replace(tmp, a.outputs)
    if a.json:
        facts = {"times_ms": times, "threads": a.threads, "warmup": a.warmup, "backend": backend,
                 "backend_version": _version(backend.replace("_", "-")),
                 "machine": platform.machine(), "cpu": _cpu_name(), "cores": os.cpu_count(),
                 "python": platform.python_version(), "numpy": np.__version__,
                 "system": platform.platform(), "input_dtype": np.dtype(inp["dtype"]).name,
                 "output_dtype": np.dtype(out["dtype"]).name}
        _write_atomic(a.json, (json.dumps(facts) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
