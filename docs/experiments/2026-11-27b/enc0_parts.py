"""The first encoder stage, op group by op group: interleaved p50 (1 thread) of graph prefixes.

    python docs/experiments/2026-11-27b/enc0_parts.py
"""
import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import _setup, interleaved_p50

model, pre, TFEGEUNet, _, _ = _setup(1)
g = TFEGEUNet(model, pre)
conv, gn = model.encoder[0], model.encoder_norms[0]


def upto(k):
    def f(pixels):
        x = (pixels - g.mean) * g.inv_std
        if k == 0:
            return x
        x = g.conv(x, conv)
        if k == 1:
            return x
        c, groups = gn.num_channels, gn.num_groups
        group = np.arange(c) // (c // groups)
        avg = (group[:, None] == group[None, :]) / (c // groups)
        mean = g.norm_conv(g.spatial_mean(x), avg)
        if k == 2:
            return mean
        centred = x - mean
        var = g.norm_conv(g.spatial_mean(centred * centred), avg, np.full(c, gn.eps))
        scale = tf.math.rsqrt(var)
        if k == 3:
            return scale
        pooled = tf.nn.max_pool2d(x, 2, 2, "VALID")
        if k == 4:
            return pooled + scale
        y = pooled * scale + (mean * scale)
        return y if k == 5 else g.gelu(y)
    return f


names = ["normalise pixels", "+ conv 3->8", "+ spatial mean (2 MEANs) + group conv", "+ centre, square, mean: rsqrt(var)",
         "+ max-pool", "+ affine (128x128)", "+ GELU"]
spec = [tf.TensorSpec([1, pre.size, pre.size, 3], tf.float32)]
files = {n: tf.lite.TFLiteConverter.from_concrete_functions(
    [tf.function(upto(k), input_signature=spec).get_concrete_function()], g).convert() for k, n in enumerate(names)}
ms = interleaved_p50(files, rounds=7)
prev = 0.0
print("| enc0 prefix | ms p50 | + ms |\n|---|---:|---:|")
for s, v in ms.items():
    print(f"| {s} | {v:.3f} | {v - prev:+.3f} |")
    prev = v
