"""The int8 file's storage floor again, now that the compaction shares vectors: float32 weights of
at least N elements stored int8 + DEQUANTIZE, N = 256 (the export) / 64 / 16 / 1. Bytes, parity
(the export's own 64-image check) and interleaved p50 (1 thread).

    python docs/experiments/2026-11-27b/int8_storage_floor.py
"""
import functools
import json
import tempfile
from pathlib import Path

from egeunet.benchmarks.tflite_levers import interleaved_p50
from egeunet.export import api, tflite_export

orig = tflite_export.float_weights_to_int8
files, rows = {}, []
tmp = Path(tempfile.mkdtemp())
for n in (256, 64, 16, 1):
    tflite_export.float_weights_to_int8 = functools.partial(orig, min_elements=n)
    out = tmp / f"n{n}"
    api.export("tflite", "int8", out=out)
    man = json.loads((out / "manifest.json").read_text())
    files[f"floor {n}"] = out / man["file"]
    rows.append((f"floor {n}", man["bytes"], man["graph"]["n_ops"], man["parity"]["iou"]))
ms = interleaved_p50(files, rounds=5)
print("| int8 storage floor | bytes | ops | parity IoU (64) | ms p50 |\n|---|---:|---:|---:|---:|")
for name, b, ops, iou in rows:
    print(f"| {name} | {b:,} | {ops} | {iou:.4f} | {ms[name]:.2f} |")
