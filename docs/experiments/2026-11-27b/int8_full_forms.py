"""Full-integer int8 of the graph's norm formulations: mask IoU vs PyTorch on the export's 64
parity images, calibrated as the export does (200 train images, 95th-percentile ranges).

    python docs/experiments/2026-11-27b/int8_full_forms.py
"""
import numpy as np

from egeunet.benchmarks.tflite_levers import _setup, iou_vs_torch
from egeunet.data import resolve_data_root
from egeunet.export import calibration
from egeunet.export import tflite_convert as tc
from egeunet.export.tflite_export import FULL_INT8_FLOAT_OPS
from egeunet.preprocess import resize_image

model, pre, TFEGEUNet, images, ref = _setup(64)
calib, _ = calibration.calibration_images(None, 200, pre.size, resolve_data_root(None))
calib = np.stack([resize_image(im, pre.size) for im in calib])
forms = {"MEAN norms, affine before pool (the previous graph)": dict(conv_norm_min_hw=None, pool_before_norm_affine=False),
         "MEAN norms, affine after pool": dict(conv_norm_min_hw=None),
         "conv norms >= 64x64, affine before pool": dict(pool_before_norm_affine=False),
         "conv norms >= 64x64, affine after pool (the fp32/int8 graph)": {}}
print("| int8-full graph | bytes | IoU vs torch (64) |\n|---|---:|---:|")
for name, kw in forms.items():
    g = TFEGEUNet(model, pre, **kw)
    cal = tc.calibrate(g, calib)
    q = tc.quantize(cal, tc.nodes_matching(tc.op_outputs(cal), op_types=FULL_INT8_FLOAT_OPS))
    print(f"| {name} | {len(q):,} | {iou_vs_torch(q, images, ref):.4f} |", flush=True)
