"""Where the fp32 file's time goes: the export graph cut after each stage, interleaved p50 (1 thread).

    python docs/experiments/2026-11-27b/prefix_times.py
"""
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import _setup, interleaved_p50


def prefix(g, stop):
    m = g.model

    def f(pixels):
        g.norm_weights = []
        x = g.normalise(pixels)
        skips, out = [], x
        for i in range(5):
            out = g.gelu(g.group_norm_max_pool(g.stage(out, m.encoder[i]), m.encoder_norms[i]))
            skips.append(out)
            if stop == f"enc{i}":
                return out
        deep = g.gelu(g.stage(out, m.encoder[5]))
        if stop == "enc5":
            return deep
        out = deep
        for i in range(5):
            out = g.stage_with_norm(out, m.decoder[i], m.decoder_norms[i])
            out = g.gelu(out if i == 0 else g.resize(out, 2 * int(out.shape[1])))
            aux = g.conv(out, m.aux_heads[i])
            skip = g.gab(deep, skips[4 - i], aux, m.bridges[i])
            deep = skip
            out = out + skip
            if stop == f"dec{i}":
                return out
        return g.resize(g.conv(out, m.head), g.size)
    return f


model, pre, TFEGEUNet, _, _ = _setup(1)
g = TFEGEUNet(model, pre)
spec = [tf.TensorSpec([1, pre.size, pre.size, 3], tf.float32)]
stops = ["enc0", "enc1", "enc2", "enc4", "enc5", "dec1", "dec2", "dec3", "dec4", "all"]
files = {s: tf.lite.TFLiteConverter.from_concrete_functions(
    [tf.function(prefix(g, s), input_signature=spec).get_concrete_function()], g).convert() for s in stops}
ms = interleaved_p50(files, rounds=7)
prev = 0.0
print("| graph cut after | ms p50 | + ms |\n|---|---:|---:|")
for s, v in ms.items():
    print(f"| {s} | {v:.2f} | {v - prev:+.2f} |")
    prev = v
