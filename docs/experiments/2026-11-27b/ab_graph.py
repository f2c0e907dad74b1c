"""A/B of the NHWC graph: egeunet/export/tf_graph.py at a git revision against the working tree,
fp32 files converted in one process (not compacted), interleaved p50 (1 thread), ops, bytes,
XNNPACK partitions, max |logit diff|; WEIGHTS: egeunet (default) or egeunet-bn.

    python docs/experiments/2026-11-27b/ab_graph.py REV [rounds] [WEIGHTS]
"""
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from egeunet.benchmarks.tflite_levers import interleaved_p50, iou_vs_torch, partitions
from egeunet.export import tflite_convert as tc
from egeunet.export.tf_graph import TFEGEUNet as Current


def at_revision(rev):
    src = subprocess.run(["git", "show", f"{rev}:egeunet/export/tf_graph.py"], capture_output=True, text=True,
                         check=True).stdout
    path = Path(tempfile.mkdtemp()) / "tf_graph_rev.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("tf_graph_rev", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TFEGEUNet


def main():
    rev = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    weights = sys.argv[3] if len(sys.argv) > 3 else None
    from egeunet.data import resolve_data_root
    from egeunet.export.calibration import parity_images
    from egeunet.export.verify import reference_logits
    from egeunet.model.checkpoint import load_checkpoint

    model, pre, _ = load_checkpoint(weights)
    images, _ = parity_images(16, pre.size, resolve_data_root(None))
    ref = reference_logits(model, images, pre)
    files = {f"{rev}": tc.float_model(at_revision(rev)(model, pre)), "working tree": tc.float_model(Current(model, pre))}
    ms = interleaved_p50(files, rounds=rounds)
    from egeunet.benchmarks.tflite_levers import _interp
    print("| graph | bytes | ops | XNNPACK partitions | ms p50 | max abs logit diff vs torch (4 images) "
          "| IoU vs torch (16) |\n|---|---:|---:|---:|---:|---:|---:|")
    for n, b in files.items():
        it = _interp(b)
        d = 0.0
        for img, r in zip(images[:4], ref[:4]):
            it.set_tensor(it.get_input_details()[0]["index"], img[None].astype(np.float32))
            it.invoke()
            d = max(d, float(np.abs(it.get_tensor(it.get_output_details()[0]["index"])[0, :, :, 0] - r).max()))
        ops = len(it._get_ops_details())
        print(f"| {n} | {len(b):,} | {ops} | {partitions(b)} | {ms[n]:.2f} | {d:.2e} | {iou_vs_torch(b, images, ref):.4f} |")


if __name__ == "__main__":
    main()
