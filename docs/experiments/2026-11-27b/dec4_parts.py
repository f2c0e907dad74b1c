"""The last decoder stage and its bridge (128x128), cut step by step: interleaved p50 (1 thread).

    python docs/experiments/2026-11-27b/dec4_parts.py
"""
import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import _setup, interleaved_p50
from egeunet.export.tf_graph import _np

model, pre, TFEGEUNet, _, _ = _setup(1)


class Cut(Exception):
    def __init__(self, t):
        self.t = t


class Cuttable(TFEGEUNet):
    cut = None

    def at(self, label, t):
        if self.cut == label:
            raise Cut(t)
        return t

    def gab_conv_norms(self, x_high, x_low, mask, block):
        tf = self.tf
        if int(x_low.shape[1]) < 128:
            return super().gab_conv_norms(x_high, x_low, mask, block)
        self.at("gab4 pre_project + resize", x_high)
        n = len(block.groups)
        ch, cl, extra = int(x_high.shape[-1]) // n, int(x_low.shape[-1]) // n, int(mask is not None)
        group = ch + cl + extra
        c = n * group
        src = []
        for g in range(n):
            src += [g * ch + j for j in range(ch)] + [n * ch + g * cl + j for j in range(cl)] + [n * (ch + cl)]
        place = np.zeros((n * (ch + cl) + extra, c))
        place[src, np.arange(c)] = 1.0
        gid = np.arange(c) // group
        mean_of_group = (gid[:, None] == gid[None, :]) / group
        norms = [g[0] for g in block.groups]
        cat = self.at("+ concat", tf.concat([x_high, x_low, mask], -1))
        centred = self.at("+ centring conv", self.norm_conv(cat, place @ (np.eye(c) - mean_of_group)))
        var = self.norm_conv(centred * centred, mean_of_group, np.repeat([nm.eps for nm in norms], group))
        y = self.at("+ square, variance conv, rsqrt, multiply", centred * tf.math.rsqrt(var))
        y = self.at("+ affine", y * np.concatenate([_np(nm.weight) for nm in norms]) + np.concatenate([_np(nm.bias) for nm in norms]))
        fused = tf.concat([self.conv(part, g[1]) for part, g in zip(tf.split(y, n, -1), block.groups)], -1)
        self.at("+ split, 4 dilated dw convs, concat", fused)
        tail_norm, tail_conv = block.tail_conv
        z = self.norm_conv(fused, np.eye(c) - 1.0 / c)
        z = z * tf.math.rsqrt(self.norm_conv(z * z, np.full((c, 1), 1.0 / c), [tail_norm.eps]))
        self.at("+ tail LayerNorm", z)
        return self.conv(z, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))

    def stage_with_norm(self, x, block, norm):
        y = super().stage_with_norm(x, block, norm)
        return self.at("dec4 conv + GroupNorm (64x64)", y) if int(x.shape[-1]) == 16 and int(x.shape[1]) == 64 else y

    def gelu(self, x):
        y = super().gelu(x)
        return self.at("+ resize, GELU (128x128)", y) if int(x.shape[1]) == 128 and int(x.shape[-1]) == 8 else y


labels = ["dec4 conv + GroupNorm (64x64)", "+ resize, GELU (128x128)", "gab4 pre_project + resize", "+ concat",
          "+ centring conv", "+ square, variance conv, rsqrt, multiply", "+ affine", "+ split, 4 dilated dw convs, concat",
          "+ tail LayerNorm", "whole model"]
spec = [tf.TensorSpec([1, pre.size, pre.size, 3], tf.float32)]
files = {}
for label in labels:
    g = Cuttable(model, pre)
    g.cut = label

    def f(pixels, g=g):
        try:
            return g(pixels)
        except Cut as c:
            return c.t
    files[label] = tf.lite.TFLiteConverter.from_concrete_functions(
        [tf.function(f, input_signature=spec).get_concrete_function()], g).convert()
ms = interleaved_p50(files, rounds=7)
prev = 0.0
print("| graph cut after | ms p50 | + ms |\n|---|---:|---:|")
for s, v in ms.items():
    print(f"| {s} | {v:.2f} | {v - prev:+.2f} |")
    prev = v
