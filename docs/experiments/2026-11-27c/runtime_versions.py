"""p50 latency (1 thread, interleaved) of .tflite files under whichever ai-edge-litert this Python
has, and the first 4,096 outputs of each file so two versions' outputs can be compared. Needs
only numpy and ai-edge-litert, so it runs in a bare venv per runtime version:

    for v in 2.1.6 2.2.0 2.3.0; do python3 -m venv /tmp/lrt$v && /tmp/lrt$v/bin/pip install -q ai-edge-litert==$v; done
    F="exports/tflite-fp32/egeunet_fp32.tflite exports/tflite-int8/egeunet_int8.tflite exports/tflite-int8-full/egeunet_int8-full.tflite exports_bn/tflite-fp32/egeunet_fp32.tflite exports_bn/tflite-int8/egeunet_int8.tflite"
    for py in /tmp/vtf/bin/python /tmp/lrt2.3.0/bin/python /tmp/lrt2.2.0/bin/python /tmp/lrt2.1.6/bin/python; do $py docs/experiments/2026-11-27c/runtime_versions.py $F; done

(/tmp/vtf: the project's pinned environment, ai-edge-litert 2.1.0.) Processes run one after the
other, so compare rows of one version, and versions only by differences well above the
run-to-run spread (run the loop twice).
"""
import importlib.metadata as md
import sys
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

files = sys.argv[1:]
rng = np.random.default_rng(0)
its = {}
for f in files:
    it = Interpreter(model_path=f, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], (rng.random(d["shape"]) * 255).astype(d["dtype"]))
    for _ in range(3):
        it.invoke()
    its[f] = it
times = {f: [] for f in files}
for _ in range(7):
    for f, it in its.items():
        ts = []
        for _ in range(20):
            t0 = time.perf_counter()
            it.invoke()
            ts.append(time.perf_counter() - t0)
        times[f].append(np.median(ts))
version = md.version("ai-edge-litert")
outs = {f: it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float32).ravel()[:4096] for f, it in its.items()}
np.savez(f"/tmp/litert_outputs_{version}.npz", **{str(i): v for i, v in enumerate(outs.values())})
print(f"| {version} | " + " | ".join(f"{1000 * float(np.median(v)):.2f}" for v in times.values()) + " |")
print("  files:", ", ".join(str(Path(f)) for f in files), file=sys.stderr)
