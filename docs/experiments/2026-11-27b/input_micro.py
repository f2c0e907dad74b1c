"""Micro-benchmark: the pixel normalisation (256x256x3) before the first conv, in XNNPACK.

    python docs/experiments/2026-11-27b/input_micro.py
"""
import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import interleaved_p50

rng = np.random.default_rng(0)
mean = np.array([181.0, 146.0, 133.0], np.float32)
inv = (1 / np.array([38.0, 43.0, 46.0])).astype(np.float32)
w = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)


def conv(x, k=w):
    return tf.nn.conv2d(x, k, 1, "SAME")


graphs = {
    "(x - mean) * inv_std, conv": lambda x: conv((x - mean) * inv),
    "x - mean, conv with 1/std folded": lambda x: conv(x - mean, w * inv[None, None, :, None]),
    "1x1 conv 3->3 (diag 1/std, bias), conv": lambda x: conv(tf.nn.bias_add(
        tf.nn.conv2d(x, np.diag(inv)[None, None].astype(np.float32), 1, "VALID"), -mean * inv)),
    "depthwise 1x1 (1/std, bias), conv": lambda x: conv(tf.nn.bias_add(
        tf.nn.depthwise_conv2d(x, inv.reshape(1, 1, 3, 1), [1, 1, 1, 1], "VALID"), -mean * inv)),
    "conv only (no normalisation)": lambda x: conv(x),
}
files = {}
for name, fn in graphs.items():
    f = tf.function(fn, input_signature=[tf.TensorSpec([1, 256, 256, 3], tf.float32)])
    files[name] = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
ms = interleaved_p50(files, rounds=7, runs=40)
print("| 256x256 graph | ms p50 |\n|---|---:|")
for n, v in ms.items():
    print(f"| {n} | {v:.3f} |")
