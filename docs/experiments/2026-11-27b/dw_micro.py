"""Micro-benchmark: GAB's four dilated depthwise convs at 128x128 (5 channels each) in XNNPACK.

    python docs/experiments/2026-11-27b/dw_micro.py
"""
import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import interleaved_p50

rng = np.random.default_rng(0)
HW, G = 128, 5


def k(c):
    return rng.normal(size=(3, 3, c, 1)).astype(np.float32)


def dw(x, c, d):
    return tf.nn.depthwise_conv2d(x, k(c), [1, 1, 1, 1], "SAME", dilations=[d, d])


def graphs():
    yield "split 20 -> 4 x 5, dw d=1,2,5,7, concat", (20,), lambda x: tf.concat(
        [dw(p, G, d) for p, d in zip(tf.split(x, 4, -1), (1, 2, 5, 7))], -1)
    yield "dw 20 ch, d=1 (one op)", (20,), lambda x: dw(x, 20, 1)
    yield "dw 20 ch, d=7 (one op)", (20,), lambda x: dw(x, 20, 7)
    yield "dw 5 ch, d=7 (one op)", (5,), lambda x: dw(x, 5, 7)
    yield "dw 5 ch, d=1 (one op)", (5,), lambda x: dw(x, 5, 1)
    yield "dw 8 ch, d=7 (one op)", (8,), lambda x: dw(x, 8, 7)
    yield "dw 16 ch, d=7 (one op)", (16,), lambda x: dw(x, 16, 7)
    yield "split 32 -> 4 x 8, dw d=1,2,5,7, concat", (32,), lambda x: tf.concat(
        [dw(p, 8, d) for p, d in zip(tf.split(x, 4, -1), (1, 2, 5, 7))], -1)
    yield "split 20 -> 4 x 5 + concat only", (20,), lambda x: tf.concat(tf.split(x, 4, -1)[::-1], -1)
    yield "multiply 20 ch (reference pass)", (20,), lambda x: x * 1.5
    yield "multiply 20 ch by a (1,1,1,20) constant", (20,), lambda x: x * rng.normal(size=20).astype(np.float32)
    yield "multiply 20 ch by a per-pixel (1,H,W,1) tensor", (20,), lambda x: x * x[..., :1]
    yield "multiply 20 ch by a same-shape tensor", (20,), lambda x: x * tf.nn.conv2d(x, np.eye(20, dtype=np.float32)[None, None], 1, "VALID")
    yield "1x1 conv 20 -> 20", (20,), lambda x: tf.nn.conv2d(x, rng.normal(size=(1, 1, 20, 20)).astype(np.float32), 1, "VALID")
    yield "4 x (1x1 conv 20 -> 5 + bias), dw d=1,2,5,7, concat", (20,), lambda x: tf.concat(
        [dw(tf.nn.bias_add(tf.nn.conv2d(x, rng.normal(size=(1, 1, 20, 5)).astype(np.float32), 1, "VALID"),
                           rng.normal(size=5).astype(np.float32)), G, d) for d in (1, 2, 5, 7)], -1)
    yield "4 x 1x1 conv 20 -> 5, dw d=1,2,5,7, 4 x 1x1 conv 5 -> 20 summed", (20,), lambda x: tf.add_n(
        [tf.nn.conv2d(dw(tf.nn.conv2d(x, rng.normal(size=(1, 1, 20, 5)).astype(np.float32), 1, "VALID"), G, d),
                      rng.normal(size=(1, 1, 5, 20)).astype(np.float32), 1, "VALID") for d in (1, 2, 5, 7)])


files = {}
for name, (c,), fn in graphs():
    f = tf.function(fn, input_signature=[tf.TensorSpec([1, HW, HW, c], tf.float32)])
    files[name] = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()
ms = interleaved_p50(files, rounds=7, runs=40)
print("| 128x128 graph | ms p50 |\n|---|---:|")
for n, v in ms.items():
    print(f"| {n} | {v:.3f} |")
