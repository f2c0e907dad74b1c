"""Small fp32 levers on top of the 2026-11-27 graph, interleaved p50 (1 thread) against it:
- GroupNorm variance by SQUARED_DIFFERENCE (the centred map is needed only for the variance now
  that the affine runs after the pool);
- pixel normalisation's 1/std folded into the first conv (only the SUB stays).

    python docs/experiments/2026-11-27b/small_levers.py
"""
import sys

import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import _setup, interleaved_p50, iou_vs_torch
from egeunet.export.tf_graph import _np

model, pre, TFEGEUNet, images, ref = _setup(16)


class SqDiff(TFEGEUNet):
    def group_norm_max_pool(self, x, gn):
        c, g = gn.num_channels, gn.num_groups
        weight = _np(gn.weight)
        sign = np.where(weight < 0, -1.0, 1.0)
        group = np.arange(c) // (c // g)
        avg = (group[:, None] == group[None, :]) / (c // g)
        if (sign < 0).any():
            x = x * sign.astype(np.float32)
        shift = self.norm_conv(self.spatial_mean(x), avg * sign[:, None] * sign[None, :])
        var = self.norm_conv(self.spatial_mean(tf.math.squared_difference(x, shift)), avg, np.full(c, gn.eps))
        scale = tf.math.rsqrt(var) * np.abs(weight)
        return tf.nn.max_pool2d(x, 2, 2, "VALID") * scale + (_np(gn.bias) - shift * scale)


variants = {"2026-11-27 graph": TFEGEUNet, "GN variance by SQUARED_DIFFERENCE": SqDiff}
files = {n: tf.lite.TFLiteConverter.from_concrete_functions([c(model, pre).concrete_function()], None).convert()
         for n, c in variants.items()}
ms = interleaved_p50(files, rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 7)
print("| variant | ms p50 | IoU vs torch (16) |\n|---|---:|---:|")
for n, v in ms.items():
    print(f"| {n} | {v:.2f} | {iou_vs_torch(files[n], images, ref):.4f} |")
