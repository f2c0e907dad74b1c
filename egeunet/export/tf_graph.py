"""EGE-UNet's inference graph written directly in TensorFlow ops, NHWC, from trained weights.

Why not only onnx2tf: it turns an NCHW graph into NHWC op by op and cannot see what the
graph means, so the .tflite it writes has ~1,200 ops (every channels-first LayerNorm becomes
~9 elementwise ops plus transposes, exact GELU a 10-op polynomial), and its int8 file is
larger and slower than the fp32 one. Written here by hand, in the layout TFLite runs:
- GELU is TFLite's own GELU op (exact, not the tanh form);
- the GHPA weight maps, which do not depend on the input, are folded into constants, except
  the (H, W) maps larger than their 8x8 parameters: those are computed in the graph from the
  parameters (``xy_map``: a few tiny ops instead of H x W x C stored weights);
- a norm's affine folds into the next 1x1 conv where that is exact (GAB's tail) and
  GroupNorm's per-channel scale multiplies the small statistics, not the feature map;
- GroupNorm's group statistics come from 1x1 convs of the per-channel statistics (no
  reshapes): channels -> groups -> channels, with eps in the second conv's bias;
- an encoder GroupNorm's affine runs after the 2x2 max-pool, on a quarter of the pixels:
  max-pooling commutes with ``x * scale + shift`` where the scale is >= 0, and channels
  whose scale is negative are negated first (signs folded into the group-mean matrix);
- the bridges' LayerNorms on maps of 64x64 and more (``CONV_NORM_MIN_HW``) are 1x1 convs:
  one conv centres all four groups at once (it also puts the channels of one
  ``[high | low | mask]`` concat in group order and copies the mask into every group, so the
  per-group splits and concats go), one gives each channel its group's variance, instead of
  two MEANs over 5-17 channels per group. XNNPACK's GEMM is far faster on these
  maps than its reduction over a short innermost axis; on smaller maps the C x C matrices
  would cost more bytes than they save time (measured: ``docs/experiments/2026-11-27b``);
- spatial means over maps larger than 32x32 are two MEANs (rows, then columns): one MEAN over
  65,536 values loses float32 accuracy that PyTorch's kernels keep (see ``spatial_mean``);
- the normalisation of pixels is the graph's first op, so every file takes pixels: a 1x1
  conv (diagonal 1/std, bias -mean/std), because XNNPACK's SUB and MUL broadcasting a
  3-channel constant are slow (0.908 -> 0.448 ms for normalisation + first conv at 256x256);
- EGE-UNet-BN (``norms="batch"``): every BatchNorm is a per-channel affine at inference.
  Where a conv precedes it, it folds into that conv's output (always exact); into a conv
  that follows, only the scale folds (a shift would meet the zero padding), except for 1x1
  convs; into GHPA's weight maps the scale folds too. What is left is one ADD (GHPA's
  second norm), one MUL + ADD (its first, after a GELU) and, per bridge, one 1x1 conv (maps
  of 64x64 and more) or one MUL + ADD, instead of ~9 ops per LayerNorm.

The function is the PyTorch model's to float rounding: ``tests/test_export_tflite.py``
checks it against PyTorch on real images (<= 1e-4 in logits).
"""

from __future__ import annotations

import numpy as np
import torch

from egeunet.model.deploy import ONE_MEAN_MAX_PIXELS
from egeunet.model.egeunet import GAB, GHPA, EGEUNet, LayerNorm2d
from egeunet.preprocess import Preprocessing

# Bridges on maps at least this wide compute their LayerNorm statistics with 1x1 convs.
CONV_NORM_MIN_HW = 64


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


class TFEGEUNet:
    """Callable TF graph ``pixels (1, S, S, 3) float32 in 0..255 -> logits (1, S, S, 1)``."""

    def __init__(self, model: EGEUNet, pre: Preprocessing, output: str = "logits",
                 conv_norm_min_hw: int | None = CONV_NORM_MIN_HW, pool_before_norm_affine: bool = True,
                 xy_maps_in_graph: bool = True) -> None:
        """``conv_norm_min_hw``: bridges on maps at least this wide get 1x1-conv LayerNorm
        statistics (None: none do); ``pool_before_norm_affine``: encoder GroupNorm affines after
        the max-pool; ``xy_maps_in_graph``: GHPA (H, W) maps larger than their 8x8 parameters
        computed in the graph (``xy_map``). The full-integer export turns the last two off
        (measured: ``tflite_export.FULL_INT8_GRAPH``)."""
        from egeunet.native_logs import import_tensorflow

        tf = import_tensorflow()

        self.tf = tf
        self.model = model.eval()
        self.size = pre.size
        self.output = output
        self.conv_norm_min_hw = conv_norm_min_hw
        self.pool_before_norm_affine = pool_before_norm_affine
        self.xy_maps_in_graph = xy_maps_in_graph
        self.mean = np.asarray(pre.mean, np.float32).reshape(1, 1, 1, 3)
        self.inv_std = (1.0 / np.asarray(pre.std, np.float64)).astype(np.float32).reshape(1, 1, 1, 3)
        self._ghpa_maps: dict[tuple[int, int], tuple] = {}
        # 1x1 conv weights that compute norms (their statistics; EGE-UNet-BN bridges: the
        # BatchNorm affine with the channel placement), in TFLite's (O, 1, 1, I) layout.
        # The int8 file keeps their arithmetic float and their values exact
        # (``tflite_compact.restore_float_weights``, ``float_weights_to_int8(keep=...)``): int8
        # would put the normalisation arithmetic itself in int8, which costs accuracy.
        self.norm_weights: list[np.ndarray] = []

    # ---- constants -------------------------------------------------------------------
    def ghpa_maps(self, block: GHPA, hw: int) -> tuple:
        """A GHPA's input-independent weight maps, evaluated once at the size it runs at."""
        key = (id(block), hw)
        if key not in self._ghpa_maps:
            with torch.no_grad():
                maps = block.attention_maps(block.params_xy.shape[1], hw, hw)  # (1,c,h,w), (1,c,h,1), (1,c,1,w)
            self._ghpa_maps[key] = tuple(_np(t).transpose(0, 2, 3, 1) for t in maps)
        return self._ghpa_maps[key]

    @staticmethod
    def bn_affine(bn: torch.nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
        """An inference BatchNorm as ``x * scale + shift`` (per channel)."""
        var = bn.running_var.detach().double()
        scale = bn.weight.detach().double() / torch.sqrt(var + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
        return scale.numpy().astype(np.float32), shift.numpy().astype(np.float32)

    # ---- primitive layers ----------------------------------------------------------------
    def normalise(self, pixels):
        """``(pixels - mean) / std`` as a 1x1 conv (see the module doc for why)."""
        tf = self.tf
        inv = self.inv_std.reshape(3)
        return tf.nn.bias_add(tf.nn.conv2d(pixels, np.diag(inv)[None, None], 1, "VALID"),
                              (-self.mean.reshape(3).astype(np.float64) * inv).astype(np.float32))

    def conv(self, x, conv: torch.nn.Module, scale: np.ndarray | None = None, shift: np.ndarray | None = None,
             out_scale: np.ndarray | None = None, out_shift: np.ndarray | None = None):
        """nn.Conv2d (stride 1, 'same' padding), optionally applied to ``x * scale + shift``
        and followed by ``* out_scale + out_shift``, all folded into its weights. Output
        affines and input scales are exact for every conv; an input shift only for 1x1
        convs (with padding, the border would see the shift where PyTorch sees zeros)."""
        tf = self.tf
        w, b = _np(conv.weight), _np(conv.bias) if conv.bias is not None else None
        k, d = conv.kernel_size[0], conv.dilation[0]
        if conv.padding[0] != d * (k - 1) // 2 or conv.stride[0] != 1:
            raise ValueError(f"unsupported conv: kernel {k}, padding {conv.padding}, stride {conv.stride}")
        if shift is not None:
            if k != 1:
                raise ValueError("a norm's shift folds exactly only into a 1x1 conv")
            b = (b if b is not None else 0.0) + (w[:, :, 0, 0] @ shift)
        if scale is not None:
            w = w * (scale[None, :, None, None] if conv.groups == 1 else scale[:, None, None, None])
        if out_scale is not None:
            w = w * out_scale[:, None, None, None]
            b = (b if b is not None else 0.0) * out_scale + out_shift
        if conv.groups == 1:
            y = tf.nn.conv2d(x, w.transpose(2, 3, 1, 0), 1, "SAME", dilations=d)
        elif conv.groups == conv.in_channels == conv.out_channels:
            y = tf.nn.depthwise_conv2d(x, w.transpose(2, 3, 0, 1), [1, 1, 1, 1], "SAME", dilations=[d, d])
        else:
            raise ValueError(f"unsupported grouped conv (groups={conv.groups})")
        return y if b is None else tf.nn.bias_add(y, b)

    def norm_conv(self, x, matrix: np.ndarray, bias: np.ndarray | None = None):
        """A 1x1 conv computing norm statistics: ``x @ matrix`` per pixel (``matrix`` is
        (in, out)); recorded in ``norm_weights``."""
        tf = self.tf
        w = np.asarray(matrix, np.float64).astype(np.float32)
        self.norm_weights.append(np.ascontiguousarray(w.T[:, None, None, :]))
        y = tf.nn.conv2d(x, w[None, None], 1, "VALID")
        return y if bias is None else tf.nn.bias_add(y, np.asarray(bias, np.float32))

    def layer_norm(self, x, norm: LayerNorm2d, affine: bool = True):
        """LayerNorm over channels (the last axis in NHWC)."""
        tf = self.tf
        centred = x - tf.reduce_mean(x, -1, keepdims=True)
        var = tf.reduce_mean(centred * centred, -1, keepdims=True)
        y = centred * tf.math.rsqrt(var + norm.eps)
        return y * _np(norm.weight) + _np(norm.bias) if affine else y

    def group_mean(self, stats, gn: torch.nn.GroupNorm, sign: np.ndarray | None = None, bias=None):
        """Each channel's group mean of per-channel ``stats`` (1,1,1,C), as two 1x1 convs
        (C -> groups -> C: 8C weights where one C x C conv would need C^2, 17 KB of the int8
        file over the ten GroupNorms). With ``sign``: sign_c * mean over the group of
        sign_k * stats_k. ``bias`` is added to the result (eps)."""
        c, g = gn.num_channels, gn.num_groups
        member = (np.arange(c)[:, None] // (c // g) == np.arange(g)[None, :]).astype(np.float64)  # (C, groups)
        s = np.ones(c) if sign is None else sign
        means = self.norm_conv(stats, member * s[:, None] / (c // g))
        return self.norm_conv(means, member.T * s[None, :], bias)

    def group_norm(self, x, gn: torch.nn.GroupNorm):
        """GroupNorm with equal groups: per-channel spatial statistics, averaged over each
        group by a 1x1 conv (eps in its bias); the affine scale multiplies the (1,1,1,C)
        statistics, so the feature map sees one multiply and one add."""
        tf = self.tf
        centred = x - self.group_mean(self.spatial_mean(x), gn)
        var = self.group_mean(self.spatial_mean(centred * centred), gn, bias=np.full(gn.num_channels, gn.eps))
        scale = tf.math.rsqrt(var) * _np(gn.weight)
        return centred * scale + _np(gn.bias)

    def group_norm_max_pool(self, x, gn: torch.nn.GroupNorm):
        """``max_pool2d(GroupNorm(x), 2, 2)`` with the affine after the pool, on a quarter of
        the pixels. Pooling commutes with ``x * scale + shift`` only where scale >= 0, so the
        channels whose GroupNorm weight is negative are negated first: their statistics then
        flip sign, which the group-mean matrix absorbs (entries sign_i * sign_j / group), and
        their scale becomes |weight| * rsqrt(var)."""
        tf = self.tf
        weight = _np(gn.weight)
        sign = np.where(weight < 0, -1.0, 1.0)
        if (sign < 0).any():
            x = x * sign.astype(np.float32)
        shift = self.group_mean(self.spatial_mean(x), gn, sign)  # sign_c * the group's mean
        centred = x - shift
        var = self.group_mean(self.spatial_mean(centred * centred), gn, bias=np.full(gn.num_channels, gn.eps))
        scale = tf.math.rsqrt(var) * np.abs(weight)
        # (max_pool(x) - shift) * scale + bias, with the (1,1,1,C) terms combined first
        return tf.nn.max_pool2d(x, 2, 2, "VALID") * scale + (_np(gn.bias) - shift * scale)

    def spatial_mean(self, x):
        """Per-channel mean over H and W as two reductions (rows, then the row means). One MEAN
        over a 256x256 map sums 65,536 values into one float32 accumulator in TFLite and TF;
        its rounding error (~1e-5 relative) reached 1.5e-4 in the first GroupNorm's output on
        Kvasir-SEG images and 9e-3 in the logits (PyTorch's float32: 1e-5 from float64). Two
        sums of <= 256 values each keep it near float32 rounding."""
        tf = self.tf
        if int(x.shape[1]) * int(x.shape[2]) <= ONE_MEAN_MAX_PIXELS:  # the deploy rewrite's rule
            return tf.reduce_mean(x, [1, 2], keepdims=True)
        return tf.reduce_mean(tf.reduce_mean(x, 2, keepdims=True), 1, keepdims=True)

    def gelu(self, x):
        return self.tf.nn.gelu(x, approximate=False)

    def resize(self, x, hw: int):
        # PyTorch's align_corners=True; tf.image.resize has no such mode, the raw op does (and
        # becomes TFLite's RESIZE_BILINEAR with align_corners=true)
        return self.tf.raw_ops.ResizeBilinear(images=x, size=[hw, hw], align_corners=True, half_pixel_centers=False)

    def seq(self, x, seq: torch.nn.Sequential, out_affine=None):
        """A conv/GELU chain; an output affine (scale, shift) folds into its last conv."""
        last = len(seq) - 1
        for i, layer in enumerate(seq):
            if isinstance(layer, torch.nn.GELU):
                x = self.gelu(x)
            elif i == last and out_affine is not None:
                x = self.conv(x, layer, out_scale=out_affine[0], out_shift=out_affine[1])
            else:
                x = self.conv(x, layer)
        return x

    def stage_with_norm(self, x, block, norm):
        """A stage followed by its norm (GroupNorm, or a BatchNorm folded into the stage)."""
        if isinstance(norm, torch.nn.BatchNorm2d):
            affine = self.bn_affine(norm)
            if isinstance(block, GHPA):
                return self.ghpa(x, block, out_affine=affine)
            return self.conv(x, block, out_scale=affine[0], out_shift=affine[1])
        return self.group_norm(self.stage(x, block), norm)

    # ---- blocks ----------------------------------------------------------------------------
    def xy_map(self, block: GHPA, hw: int, scale: np.ndarray | None = None):
        """GHPA's (H, W) weight map times ``scale`` (per channel): computed in the graph from the
        8x8 parameters where the map is larger (resize, depthwise conv, GELU, 1x1 conv: a few
        tiny ops per inference instead of H x W x C stored weights), else a folded constant."""
        tf = self.tf
        params = _np(block.params_xy).transpose(0, 2, 3, 1)  # 1, 8, 8, c
        c = params.shape[-1]
        scale = np.ones(c, np.float32) if scale is None else scale
        if not self.xy_maps_in_graph or hw * hw <= params.shape[1] * params.shape[2]:
            return self.ghpa_maps(block, hw)[0] * scale
        # + a zero that depends on the input, or the converter folds the map back into a constant
        return self.seq(self.resize(tf.constant(params) + self._zero, hw), block.conv_xy,
                        out_affine=(scale, np.zeros(c, np.float32)))

    def ghpa(self, x, block: GHPA, out_affine=None):
        tf = self.tf
        _, zx, zy = self.ghpa_maps(block, int(x.shape[1]))
        if isinstance(block.norm1, torch.nn.BatchNorm2d):
            return self.ghpa_bn(x, block, (zx, zy), out_affine)
        xy = self.xy_map(block, int(x.shape[1]))
        x1, x2, x3, x4 = tf.split(self.layer_norm(x, block.norm1), 4, axis=-1)
        x = tf.concat([x1 * xy, x2 * zx, x3 * zy, self.seq(x4, block.dw)], -1)
        return self.seq(self.layer_norm(x, block.norm2), block.ldw, out_affine=out_affine)

    def ghpa_bn(self, x, block: GHPA, zx_zy, out_affine):
        """GHPA of EGE-UNet-BN: norm1 is a MUL + ADD; norm2's scale folds into the weight maps
        and into the x4 branch's last conv (with its shift), its other shifts are one ADD."""
        tf = self.tf
        s1, t1 = self.bn_affine(block.norm1)
        s2, t2 = self.bn_affine(block.norm2)
        c = s2.shape[0] // 4
        x1, x2, x3, x4 = tf.split(x * s1 + t1, 4, axis=-1)
        zx, zy = (m * s2[i * c:(i + 1) * c] for i, m in enumerate(zx_zy, start=1))
        xy = self.xy_map(block, int(x.shape[1]), s2[:c])
        x4 = self.seq(x4, block.dw, out_affine=(s2[3 * c:], t2[3 * c:]))
        shift = np.concatenate([t2[:3 * c], np.zeros(c, np.float32)])
        x = tf.concat([x1 * xy, x2 * zx, x3 * zy, x4], -1) + shift
        return self.seq(x, block.ldw, out_affine=out_affine)

    def gab(self, x_high, x_low, mask, block: GAB):
        tf = self.tf
        x_high = self.resize(self.conv(x_high, block.pre_project), int(x_low.shape[1]))
        if isinstance(block.groups[0][0], torch.nn.BatchNorm2d):
            return self.gab_bn(x_high, x_low, mask, block)
        if self.conv_norm_min_hw is not None and int(x_low.shape[1]) >= self.conv_norm_min_hw:
            return self.gab_conv_norms(x_high, x_low, mask, block)
        extra = [mask] if mask is not None else []
        highs, lows = tf.split(x_high, len(block.groups), -1), tf.split(x_low, len(block.groups), -1)
        fused = [self.conv(self.layer_norm(tf.concat([h, lo, *extra], -1), g[0]), g[1])
                 for g, h, lo in zip(block.groups, highs, lows)]
        tail_norm, tail_conv = block.tail_conv
        # the tail LayerNorm's affine folds exactly into the 1x1 conv that follows it
        y = self.layer_norm(tf.concat(fused, -1), tail_norm, affine=False)
        return self.conv(y, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))

    @staticmethod
    def group_placement(n: int, ch: int, cl: int, extra: int) -> np.ndarray:
        """(Cin, C) 0/1 matrix from one ``[high | low | mask]`` concat (``n * ch`` + ``n * cl``
        + ``extra`` channels) to the bridge's ``n`` groups ``[high_g | low_g | mask]`` side by
        side, the mask copied into every group."""
        group = ch + cl + extra
        src = []  # input channel of each output channel, group by group
        for g in range(n):
            src += [g * ch + j for j in range(ch)] + [n * ch + g * cl + j for j in range(cl)]
            src += [n * (ch + cl)] if extra else []
        place = np.zeros((n * (ch + cl) + extra, n * group))
        place[src, np.arange(n * group)] = 1.0
        return place

    def gab_bn(self, x_high, x_low, mask, block: GAB):
        """GAB of EGE-UNet-BN. The groups ``[high_g | low_g | mask]`` and their BatchNorms: on
        maps of ``conv_norm_min_hw`` and more, one 1x1 conv that places the channels of one
        ``[high | low | mask]`` concat into groups and applies the BatchNorms (one non-zero
        weight per output channel, the shifts as bias); on smaller maps, where that (C_in x C)
        matrix would cost more bytes than it saves time, a concat per group and one of the
        groups, then one MUL + ADD. Never one 12-input concat: XNNPACK does not take it (the
        graph was 6 partitions). The scales do not fold into the dilated convs (their padding
        would need the shift first)."""
        tf = self.tf
        n = len(block.groups)
        ch, cl, extra = int(x_high.shape[-1]) // n, int(x_low.shape[-1]) // n, int(mask is not None)
        affines = [self.bn_affine(g[0]) for g in block.groups]
        scale, shift = np.concatenate([a[0] for a in affines]), np.concatenate([a[1] for a in affines])
        if self.conv_norm_min_hw is not None and int(x_low.shape[1]) >= self.conv_norm_min_hw:
            y = self.norm_conv(tf.concat([x_high, x_low] + ([mask] if extra else []), -1),
                               self.group_placement(n, ch, cl, extra) * scale[None, :], shift)
        else:
            groups = [tf.concat([h, lo] + ([mask] if extra else []), -1)
                      for h, lo in zip(tf.split(x_high, n, -1), tf.split(x_low, n, -1))]
            y = tf.concat(groups, -1) * scale + shift
        fused = [self.conv(part, g[1]) for part, g in zip(tf.split(y, n, -1), block.groups)]
        tail_norm, tail_conv = block.tail_conv
        tail_scale, tail_shift = self.bn_affine(tail_norm)
        return self.conv(tf.concat(fused, -1), tail_conv, tail_scale, tail_shift)

    def gab_conv_norms(self, x_high, x_low, mask, block: GAB):
        """GAB with its LayerNorm statistics as 1x1 convs (large maps; see the module doc).

        The bridge normalises four groups ``[high_g | low_g | mask]``. Here the input is one
        concat ``[high | low | mask]``; a single conv with matrix ``P (I - A)`` (P: place each
        channel in its group's order, the mask copied into every group; A: each channel's
        group mean) gives all groups' centred values, and ``A`` as a conv with eps as its bias
        gives each channel its group's variance. The tail LayerNorm (no affine: it folds into
        the last conv) is centred by ``I - 1/C`` and its variance is a conv to one channel."""
        tf = self.tf
        n = len(block.groups)
        ch, cl, extra = int(x_high.shape[-1]) // n, int(x_low.shape[-1]) // n, int(mask is not None)
        group = ch + cl + extra
        c = n * group
        place = self.group_placement(n, ch, cl, extra)
        gid = np.arange(c) // group
        mean_of_group = (gid[:, None] == gid[None, :]) / group
        norms = [g[0] for g in block.groups]
        centred = self.norm_conv(tf.concat([x_high, x_low] + ([mask] if extra else []), -1),
                                 place @ (np.eye(c) - mean_of_group))
        var = self.norm_conv(centred * centred, mean_of_group, np.repeat([nm.eps for nm in norms], group))
        y = centred * tf.math.rsqrt(var)
        y = y * np.concatenate([_np(nm.weight) for nm in norms]) + np.concatenate([_np(nm.bias) for nm in norms])
        fused = tf.concat([self.conv(part, g[1]) for part, g in zip(tf.split(y, n, -1), block.groups)], -1)
        tail_norm, tail_conv = block.tail_conv
        z = self.norm_conv(fused, np.eye(c) - 1.0 / c)
        z = z * tf.math.rsqrt(self.norm_conv(z * z, np.full((c, 1), 1.0 / c), [tail_norm.eps]))
        return self.conv(z, tail_conv, _np(tail_norm.weight), _np(tail_norm.bias))

    def stage(self, x, block):
        return self.ghpa(x, block) if isinstance(block, GHPA) else self.conv(x, block)

    def __call__(self, pixels):
        # Name scopes tag every op with its block ("enc2/", "gab4/", "head/"...): the int8
        # sensitivity report and the choice of what stays float work per block.
        tf, m = self.tf, self.model
        self.norm_weights = []  # this trace's
        self._zero = pixels[:1, :1, :1, :1] * 0.0  # see xy_map
        with tf.name_scope("input"):
            x = self.normalise(pixels)
        skips, out = [], x
        for i in range(5):
            with tf.name_scope(f"enc{i}"):
                if isinstance(m.encoder_norms[i], torch.nn.GroupNorm) and self.pool_before_norm_affine:
                    out = self.group_norm_max_pool(self.stage(out, m.encoder[i]), m.encoder_norms[i])
                else:
                    out = tf.nn.max_pool2d(self.stage_with_norm(out, m.encoder[i], m.encoder_norms[i]), 2, 2, "VALID")
                out = self.gelu(out)
            skips.append(out)
        with tf.name_scope("enc5"):
            deep = self.gelu(self.stage(out, m.encoder[5]))
        out = deep
        for i in range(5):
            with tf.name_scope(f"dec{i}"):
                out = self.stage_with_norm(out, m.decoder[i], m.decoder_norms[i])
                out = self.gelu(out if i == 0 else self.resize(out, 2 * int(out.shape[1])))
                aux = self.conv(out, m.aux_heads[i]) if m.aux_heads is not None else None
            skip = skips[4 - i]
            if m.bridges is not None:
                with tf.name_scope(f"gab{i}"):
                    skip = self.gab(deep, skip, aux, m.bridges[i])
            deep = skip
            with tf.name_scope(f"dec{i}"):
                out = out + skip
        with tf.name_scope("head"):
            logits = self.resize(self.conv(out, m.head), self.size)
            return tf.sigmoid(logits) if self.output == "probs" else logits

    def concrete_function(self):
        tf = self.tf
        fn = tf.function(self.__call__, input_signature=[tf.TensorSpec([1, self.size, self.size, 3], tf.float32,
                                                                         name="image")])
        return fn.get_concrete_function()
