"""The int8 file's storage floor again, now that the compaction shares vectors: float32 weights of
at least N elements stored int8 + DEQUANTIZE, N = 256 / 128 / 64 / 16, without and with the
export's error rule (no channel slice may lose more than 5 %), for both shipped models. Bytes and the export's own parity check (mask IoU vs PyTorch, 64 test images).

    python docs/experiments/2026-11-27b/int8_storage_floor.py
"""
import functools
import json
import tempfile
from pathlib import Path

from egeunet.export import api, tflite_export

orig = tflite_export.float_weights_to_int8
print("| model | int8 storage floor | max slice error | bytes | ops | parity IoU (64) |\n|---|---|---|---:|---:|---:|")
for weights in ("egeunet", "egeunet-bn"):
    for n, err in ((256, 1.0), (128, 1.0), (64, 1.0), (16, 1.0), (256, 0.05), (64, 0.05), (16, 0.05)):
        tflite_export.float_weights_to_int8 = functools.partial(orig, min_elements=n, max_slice_error=err)
        out = Path(tempfile.mkdtemp()) / f"n{n}"
        api.export("tflite", "int8", weights=weights, out=out, min_iou=0.5)
        man = json.loads((out / "manifest.json").read_text())
        print(f"| {weights} | {n} | {'none' if err == 1.0 else f'{err:.0%}'} | {man['bytes']:,} | {man['graph']['n_ops']} | {man['parity']['iou']:.4f} |", flush=True)
