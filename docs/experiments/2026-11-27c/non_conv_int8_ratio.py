"""What full int8 does to the ops that are not convolutions: each op kind EGE-UNet's graph uses,
alone on a 128x128x16 map (the sizes of its large stages), converted to float32 and to full int8
(int8 in and out), timed here (interleaved p50, 1 thread) and, with an emulated core as argument,
counted in aarch64 instructions per inference. conv_time_bound.py needs the ratio r (int8 / fp32)
of these ops to bound a whole int8 file.

    python docs/experiments/2026-11-27c/non_conv_int8_ratio.py [cortex-a76]
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import interleaved_p50

cpu = sys.argv[1] if len(sys.argv) > 1 else None
HW, C = 128, 16
rng = np.random.default_rng(0)
vec = rng.normal(size=C).astype(np.float32)
OPS = {
    "ADD (two maps)": lambda x, y: x + y,
    "MUL (two maps)": lambda x, y: x * y,
    "MUL by a per-channel constant": lambda x: x * vec,
    "GELU": lambda x: tf.nn.gelu(x, approximate=False),
    "MEAN over channels": lambda x: tf.reduce_mean(x, -1, keepdims=True),
    "MAX_POOL 2x2": lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"),
    "RESIZE_BILINEAR x2": lambda x: tf.compat.v1.image.resize_bilinear(x, [2 * HW, 2 * HW], align_corners=True),
    "CONCATENATION of two maps": lambda x, y: tf.concat([x, y], -1),
}


def convert(fn, int8):
    # binary ops take a second input (only the first is set when timing and counting: these
    # kernels' speed does not depend on the values)
    n_in = fn.__code__.co_argcount
    f = tf.function(fn, input_signature=[tf.TensorSpec([1, HW, HW, C], tf.float32)] * n_in)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.standard_normal((1, HW, HW, C)).astype(np.float32)] * n_in for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


models = {(name, kind): convert(fn, kind == "int8") for name, fn in OPS.items() for kind in ("fp32", "int8")}
ms = interleaved_p50({f"{n} {k}": m for (n, k), m in models.items()}, rounds=7, runs=40)
counts = {}
if cpu:
    from egeunet.benchmarks import emulate

    lab = emulate.Lab()
    with tempfile.TemporaryDirectory() as d:
        for (n, k), blob in models.items():
            path = Path(d) / "m.tflite"
            path.write_bytes(blob)
            counts[n, k] = emulate.count_instructions(lab, cpu, path, np.zeros((1, 1, HW, HW, C), np.float32))["per_inference"]["total"]
head = f" {cpu} fp32 | int8 | int8/fp32 |" if cpu else ""
print(f"| op at {HW}x{HW}x{C} | ms fp32 | ms int8 | int8/fp32 |{head}\n|---|---:|---:|---:|" + ("---:|---:|---:|" if cpu else ""))
for n in OPS:
    a, b = ms[f"{n} fp32"], ms[f"{n} int8"]
    row = f"| {n} | {a:.3f} | {b:.3f} | {b / a:.2f} |"
    if cpu:
        ca, cb = counts[n, "fp32"], counts[n, "int8"]
        row += f" {ca / 1e6:.2f} M | {cb / 1e6:.2f} M | {cb / ca:.2f} |"
    print(row)
