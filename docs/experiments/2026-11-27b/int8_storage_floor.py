"""The int8 file's storage floor again, now that the compaction shares vectors: float32 weights of
at least N elements stored int8 + DEQUANTIZE, N = 256 / 128 / 64 / 16 for every weight, and the
export's rule (64 for depthwise kernels and maps, 256 for conv kernels), for both shipped models. Bytes and the export's own parity check (mask IoU vs PyTorch, 64 test images).

    python docs/experiments/2026-11-27b/int8_storage_floor.py
"""
import functools
import json
import tempfile
from pathlib import Path

from egeunet.export import api, tflite_export

orig = tflite_export.float_weights_to_int8
print("| model | int8 storage floor | bytes | ops | parity IoU (64) |\n|---|---|---:|---:|---:|")
for weights in ("egeunet", "egeunet-bn"):
    for n in (256, 128, 64, 16, "64 / 256 (the export)"):
        kw = {} if isinstance(n, str) else dict(min_elements=n, min_kernel_elements=n)
        tflite_export.float_weights_to_int8 = functools.partial(orig, **kw)
        out = Path(tempfile.mkdtemp()) / f"n{n}"
        api.export("tflite", "int8", weights=weights, out=out, min_iou=0.5)
        man = json.loads((out / "manifest.json").read_text())
        print(f"| {weights} | {n} | {man['bytes']:,} | {man['graph']['n_ops']} | {man['parity']['iou']:.4f} |", flush=True)
