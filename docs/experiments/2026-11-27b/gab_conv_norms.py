"""Prototype: GAB's five LayerNorms with 1x1-conv centring and group statistics (one norm for
the four groups), against the export's graph. fp32 and TensorFlow dynamic-range int8.

    python docs/experiments/2026-11-27b/gab_conv_norms.py [n_parity]
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from egeunet.benchmarks.tflite_levers import _setup, interleaved_p50, iou_vs_torch, partitions
from egeunet.export import tflite_convert as tc
from egeunet.export.tf_graph import _np
from egeunet.export.tflite_compact import compact, float_weights_to_int8


def group_matrices(ch, cl, extra, n):
    """P (Cin, n*group): the concat [high | low | mask] to the groups' channel order (mask
    copied into every group); A (n*group, n*group): each channel's group mean."""
    group = ch + cl + extra
    cin = n * ch + n * cl + extra
    src = []
    for g in range(n):
        src += [g * ch + j for j in range(ch)] + [n * ch + g * cl + j for j in range(cl)] + ([n * ch + n * cl] if extra else [])
    P = np.zeros((cin, n * group), np.float64)
    P[src, np.arange(n * group)] = 1
    gid = np.arange(n * group) // group
    A = (gid[:, None] == gid[None, :]) / group
    return P, A


def conv1x1(tf, x, w, b=None):
    y = tf.nn.conv2d(x, w.astype(np.float32)[None, None], 1, "VALID")
    return y if b is None else tf.nn.bias_add(y, b.astype(np.float32))


def make(TFEGEUNet, min_hw=0, tail="dense", gn_pool=False):
    class ConvNormGAB(TFEGEUNet):
        def stage_with_norm(self, x, block, norm):
            if not gn_pool or getattr(self, "_pool_next", False) is False:
                return super().stage_with_norm(x, block, norm)
            return self.stage(x, block), norm  # group_norm_max_pool does the rest

        def group_norm_max_pool(self, x, gn):
            """maxpool(GroupNorm(x)) with the affine after the pool: channels whose scale is
            negative are negated first (signs in the group-mean matrix), so every scale is >= 0."""
            c, g = gn.num_channels, gn.num_groups
            gamma = _np(gn.weight)
            sign = np.where(gamma < 0, -1.0, 1.0).astype(np.float32)
            group = np.arange(c) // (c // g)
            same = (group[:, None] == group[None, :]) / (c // g)
            avg = same.astype(np.float32)[None, None]
            signed_avg = (same * sign[:, None] * sign[None, :]).astype(np.float32)[None, None]
            xs = x * sign if (sign < 0).any() else x
            shift = tf.nn.conv2d(self.spatial_mean(xs), signed_avg, 1, "VALID")
            centred = xs - shift
            var = tf.nn.bias_add(tf.nn.conv2d(self.spatial_mean(centred * centred), avg, 1, "VALID"),
                                 np.full(c, gn.eps, np.float32))
            scale = tf.math.rsqrt(var) * np.abs(gamma)
            pooled = tf.nn.max_pool2d(xs, 2, 2, "VALID")
            return pooled * scale + (_np(gn.bias) - shift * scale)

        def __call__(self, pixels):
            if not gn_pool:
                return super().__call__(pixels)
            m = self.model
            with tf.name_scope("input"):
                x = (pixels - self.mean) * self.inv_std
            skips, out = [], x
            for i in range(5):
                with tf.name_scope(f"enc{i}"):
                    out = self.gelu(self.group_norm_max_pool(self.stage(out, m.encoder[i]), m.encoder_norms[i]))
                skips.append(out)
            with tf.name_scope("enc5"):
                deep = self.gelu(self.stage(out, m.encoder[5]))
            out = deep
            for i in range(5):
                with tf.name_scope(f"dec{i}"):
                    out = self.stage_with_norm(out, m.decoder[i], m.decoder_norms[i])
                    out = self.gelu(out if i == 0 else self.resize(out, 2 * int(out.shape[1])))
                    aux = self.conv(out, m.aux_heads[i])
                skip = skips[4 - i]
                with tf.name_scope(f"gab{i}"):
                    skip = self.gab(deep, skip, aux, m.bridges[i])
                deep = skip
                with tf.name_scope(f"dec{i}"):
                    out = out + skip
            with tf.name_scope("head"):
                return self.resize(self.conv(out, m.head), self.size)

        def gab(self, x_high, x_low, mask, block):
            if int(x_low.shape[1]) < min_hw:
                return super().gab(x_high, x_low, mask, block)
            n = len(block.groups)
            x_high = self.resize(self.conv(x_high, block.pre_project), int(x_low.shape[1]))
            ch, cl = int(x_high.shape[-1]) // n, int(x_low.shape[-1]) // n
            extra = [mask] if mask is not None else []
            P, A = group_matrices(ch, cl, len(extra), n)
            eye = np.eye(A.shape[0])
            centred = conv1x1(tf, tf.concat([x_high, x_low, *extra], -1), P @ (eye - A))
            eps = np.array([g[0].eps for g in block.groups]).repeat(A.shape[0] // n)
            y = centred * tf.math.rsqrt(conv1x1(tf, centred * centred, A, eps))
            y = y * np.concatenate([_np(g[0].weight) for g in block.groups]) \
                + np.concatenate([_np(g[0].bias) for g in block.groups])
            fused = [self.conv(part, g[1]) for part, g in zip(tf.split(y, n, -1), block.groups)]
            tail_norm, tail_conv = block.tail_conv
            c = A.shape[0]
            z = tf.concat(fused, -1)
            if tail == "dense":
                z = conv1x1(tf, z, np.eye(c) - 1.0 / c)
                z = z * tf.math.rsqrt(conv1x1(tf, z * z, np.eye(c) * 0 + 1.0 / c, np.full(c, tail_norm.eps)))
            elif tail == "dense-centre":
                z = conv1x1(tf, z, np.eye(c) - 1.0 / c)
                z = z * tf.math.rsqrt(conv1x1(tf, z * z, np.full((c, 1), 1.0 / c), np.array([tail_norm.eps])))
            else:
                z = self.layer_norm(z, tail_norm, affine=False)
            return self.conv(z, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))
    return ConvNormGAB


def make_reshape(TFEGEUNet):
    class ReshapeGAB(TFEGEUNet):
        """The four group LayerNorms as one LayerNorm over the last axis of (1, H*W, 4, group)."""
        def gab(self, x_high, x_low, mask, block):
            n = len(block.groups)
            hw = int(x_low.shape[1])
            x_high = self.resize(self.conv(x_high, block.pre_project), hw)
            extra = [mask] if mask is not None else []
            y = tf.concat([t for h, lo in zip(tf.split(x_high, n, -1), tf.split(x_low, n, -1)) for t in (h, lo, *extra)], -1)
            c = int(y.shape[-1])
            y = tf.reshape(y, [1, hw * hw, n, c // n])
            centred = y - tf.reduce_mean(y, -1, keepdims=True)
            eps = block.groups[0][0].eps
            y = centred * tf.math.rsqrt(tf.reduce_mean(centred * centred, -1, keepdims=True) + eps)
            y = tf.reshape(y, [1, hw, hw, c])
            y = y * np.concatenate([_np(g[0].weight) for g in block.groups]) \
                + np.concatenate([_np(g[0].bias) for g in block.groups])
            fused = [self.conv(part, g[1]) for part, g in zip(tf.split(y, n, -1), block.groups)]
            tail_norm, tail_conv = block.tail_conv
            z = self.layer_norm(tf.concat(fused, -1), tail_norm, affine=False)
            return self.conv(z, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))
    return ReshapeGAB


def make_grouped(TFEGEUNet, tail="conv-mean"):
    class GroupedGAB(TFEGEUNet):
        """Concat in group order; group centring and variance as grouped 1x1 convs (4 groups);
        tail centring and variance as 1x1 convs to one channel."""
        def gab(self, x_high, x_low, mask, block):
            n = len(block.groups)
            hw = int(x_low.shape[1])
            x_high = self.resize(self.conv(x_high, block.pre_project), hw)
            extra = [mask] if mask is not None else []
            # XNNPACK takes concatenations of at most a few inputs: one concat per group, then the groups
            y = tf.concat([tf.concat([h, lo, *extra], -1) for h, lo in zip(tf.split(x_high, n, -1), tf.split(x_low, n, -1))], -1)
            c = int(y.shape[-1])
            g = c // n
            centre = np.tile(np.eye(g) - 1.0 / g, (1, n))  # (g, C): in-group rows, one block per group
            avg = np.full((g, c), 1.0 / g)
            centred = conv1x1(tf, y, centre)
            eps = np.full(c, block.groups[0][0].eps)
            y = centred * tf.math.rsqrt(conv1x1(tf, centred * centred, avg, eps))
            y = y * np.concatenate([_np(gr[0].weight) for gr in block.groups]) \
                + np.concatenate([_np(gr[0].bias) for gr in block.groups])
            fused = [self.conv(part, gr[1]) for part, gr in zip(tf.split(y, n, -1), block.groups)]
            tail_norm, tail_conv = block.tail_conv
            z = tf.concat(fused, -1)
            if tail == "conv-mean":
                z = z - conv1x1(tf, z, np.full((c, 1), 1.0 / c))
                z = z * tf.math.rsqrt(conv1x1(tf, z * z, np.full((c, 1), 1.0 / c), np.array([tail_norm.eps])))
            else:
                z = self.layer_norm(z, tail_norm, affine=False)
            return self.conv(z, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))
    return GroupedGAB


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    model, pre, TFEGEUNet, images, ref = _setup(n)
    variants = {"export graph": TFEGEUNet, "GAB conv norms": make(TFEGEUNet),
                "GAB conv norms, tail C->1 var": make(TFEGEUNet, tail="dense-centre"),
                "GAB conv norms at >= 64x64": make(TFEGEUNet, 64, "dense-centre"),
                "GAB conv norms at >= 32x32": make(TFEGEUNet, 32, "dense-centre"),
                "GN affine after max-pool": make(TFEGEUNet, 10**9, gn_pool=True),
                "both (>= 64x64)": make(TFEGEUNet, 64, "dense-centre", gn_pool=True),
                }
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
    if only:
        variants = {k: v for i, (k, v) in enumerate(variants.items()) if str(i) in only}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, cls in variants.items():
            g = cls(model, pre)
            for prec, fn in (("fp32", tc.float_model), ("int8", tc.dynamic_range_model)):
                raw = Path(tmp) / "raw.tflite"
                raw.write_bytes(fn(g))
                out = Path(tmp) / f"{name}-{prec}.tflite".replace(" ", "_")
                compact(raw, out)
                if prec == "int8":
                    float_weights_to_int8(out, out)
                files[f"{name}, {prec}"] = out
            # logits parity of the fp32 graph
            it = tf.lite.Interpreter(model_path=str(files[f"{name}, fp32"]))
            it.allocate_tensors()
            d = 0.0
            for img, r in zip(images[:8], ref[:8]):
                it.set_tensor(it.get_input_details()[0]["index"], img[None].astype(np.float32))
                it.invoke()
                d = max(d, float(np.abs(it.get_tensor(it.get_output_details()[0]["index"])[0, :, :, 0] - r).max()))
            print(name, "fp32 max|logit diff| on 8 images", f"{d:.2e}", flush=True)
        ms = interleaved_p50(files, rounds=7)
        from tensorflow.lite.tools import flatbuffer_utils as fu
        print("| variant | bytes | ops | XNNPACK partitions | ms p50 | IoU vs torch |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, p in files.items():
            ops = len(fu.read_model(str(p)).subgraphs[0].operators)
            print(f"| {name} | {p.stat().st_size:,} | {ops} | {partitions(p)} | {ms[name]:.2f} | {iou_vs_torch(p, images, ref):.4f} |", flush=True)


if __name__ == "__main__":
    main()
