"""EGE-UNet, written from the paper (Ruan et al., MICCAI 2023, arXiv:2307.08473).

Blocks are defined small to big: ``LayerNorm2d`` -> ``GHPA`` (group multi-axis Hadamard
product attention) -> ``GAB`` (group aggregation bridge) -> ``EGEUNet``.

With the default widths (8, 16, 24, 32, 48, 64) the network has 53,374 trainable
parameters and 72,096,256 convolution multiply-accumulates for a 1x3x256x256 input,
the figures the paper quotes (0.072 GMACs). ``forward`` returns *logits*: in training mode
the five deep-supervision maps (coarse to fine, upsampled to the input size) and the
final map; in eval mode only the final map. ``predict`` gives probabilities.

Differences from the official code (JCruan519/EGE-UNet), none of which change the
parameter or MAC count of the default model:
- the model emits logits and the loss applies the sigmoid (numerically safer BCE, and int8
  exports want logits);
- ``deep_supervision=False`` works: the bridges then take no mask channel (the official
  code crashes there because GAB always expects one).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


NORMS = ("paper", "batch")  # EGEUNetConfig.norms: the published norms, or EGE-UNet-BN's


@dataclass
class EGEUNetConfig:
    """Hyper-parameters of one EGE-UNet variant."""

    widths: tuple[int, ...] = (8, 16, 24, 32, 48, 64)  # channels of the six encoder stages
    in_channels: int = 3
    num_classes: int = 1
    bridge: bool = True  # group aggregation bridges between encoder and decoder
    deep_supervision: bool = True  # mask-guided bridges + five auxiliary outputs
    # Spatial size of the learnable GHPA weight maps before they are resized to the
    # feature map (8x8 in the paper).
    ghpa_size: tuple[int, int] = (8, 8)
    gab_dilations: tuple[int, ...] = field(default=(1, 2, 5, 7))
    # "paper": channel LayerNorms in GHPA/GAB and GroupNorm(4) in the stages, as published.
    # "batch": EGE-UNet-BN, every norm a BatchNorm2d; at inference each is a per-channel
    # affine that the exporters fold into the neighbouring convolutions (a smaller, faster
    # mobile graph). A different model with its own weights and Dice, never the default.
    norms: str = "paper"

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.ghpa_size = tuple(int(s) for s in self.ghpa_size)
        self.gab_dilations = tuple(int(d) for d in self.gab_dilations)
        if len(self.widths) != 6:
            raise ValueError(f"EGE-UNet needs 6 stage widths, got {len(self.widths)}: {self.widths}")
        bad = [w for w in self.widths if w % 4]
        if bad:
            raise ValueError(f"every stage width must be divisible by 4 (four groups); not: {bad}")
        if len(self.gab_dilations) != 4 or min(self.gab_dilations) < 1:
            raise ValueError(f"gab_dilations needs 4 dilations >= 1 (one per channel group), got {self.gab_dilations}")
        if self.norms not in NORMS:
            raise ValueError(f"norms must be one of {sorted(NORMS)}, not {self.norms!r}")


def layer_norm_2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the channel axis of an NCHW tensor: biased variance, eps inside the root."""
    mean = x.mean(1, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(1, keepdim=True)
    x = centred * torch.rsqrt(var + eps)
    return x * weight[:, None, None] + bias[:, None, None]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (ConvNeXt's channels_first form).

    ``kernel`` computes it; training swaps in a compiled kernel of the same function
    (``egeunet.model.fast_norms``) because eager PyTorch runs these ~8 small element-wise
    ops, and their backward, as separate passes over memory.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.kernel = layer_norm_2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernel(x, self.weight, self.bias, self.eps)


def channel_norm(norms: str, channels: int) -> nn.Module:
    """The norm inside GHPA and GAB: LayerNorm over channels (paper) or BatchNorm."""
    return LayerNorm2d(channels) if norms == "paper" else nn.BatchNorm2d(channels)


def stage_norm(norms: str, channels: int) -> nn.Module:
    """The norm after each encoder/decoder stage: GroupNorm with 4 groups (paper) or BatchNorm."""
    return nn.GroupNorm(4, channels) if norms == "paper" else nn.BatchNorm2d(channels)


def interpolate_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with align_corners=True (the official code's mode throughout)."""
    return F.interpolate(x, size=tuple(int(n) for n in size), mode="bilinear", align_corners=True)


class GHPA(nn.Module):
    """Group multi-axis Hadamard product attention.

    The input (after LayerNorm) is split into four channel groups. Three are multiplied
    element-wise by learnable weight maps on the (H, W), (C, W) and (C, H) planes, each map
    resized to the feature size and refined by a depthwise + pointwise conv; the fourth goes
    through a plain depthwise conv. A depthwise-separable conv then mixes the groups.
    The weight maps do not depend on the input, so an exporter can fold them to constants.
    """

    def __init__(self, dim_in: int, dim_out: int, size: tuple[int, int] = (8, 8), norms: str = "paper") -> None:
        super().__init__()
        c = dim_in // 4
        h, w = size
        self.params_xy = nn.Parameter(torch.ones(1, c, h, w))
        self.conv_xy = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.GELU(), nn.Conv2d(c, c, 1))
        self.params_zx = nn.Parameter(torch.ones(1, 1, c, h))
        self.conv_zx = nn.Sequential(nn.Conv1d(c, c, 3, padding=1, groups=c), nn.GELU(), nn.Conv1d(c, c, 1))
        self.params_zy = nn.Parameter(torch.ones(1, 1, c, w))
        self.conv_zy = nn.Sequential(nn.Conv1d(c, c, 3, padding=1, groups=c), nn.GELU(), nn.Conv1d(c, c, 1))
        self.dw = nn.Sequential(nn.Conv2d(c, c, 1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1, groups=c))
        self.norm1 = channel_norm(norms, dim_in)
        self.norm2 = channel_norm(norms, dim_in)
        self.ldw = nn.Sequential(
            nn.Conv2d(dim_in, dim_in, 3, padding=1, groups=dim_in), nn.GELU(), nn.Conv2d(dim_in, dim_out, 1)
        )

    def attention_maps(self, c: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three input-independent weight maps for a (c, h, w) group, shaped to broadcast."""
        xy = self.conv_xy(interpolate_bilinear(self.params_xy, (h, w)))  # 1, c, h, w
        # (C, H) plane, broadcast over W; the 1x1xCx8 parameter is resized to C x H and each
        # channel row is convolved along H (Conv1d with batch 1, channels c).
        zx = self.conv_zx(interpolate_bilinear(self.params_zx, (c, h))[0])  # 1, c, h
        # (C, W) plane, broadcast over H.
        zy = self.conv_zy(interpolate_bilinear(self.params_zy, (c, w))[0])  # 1, c, w
        return xy, zx[:, :, :, None], zy[:, :, None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        x1, x2, x3, x4 = torch.chunk(x, 4, dim=1)
        xy, zx, zy = self.attention_maps(x1.shape[1], x1.shape[2], x1.shape[3])
        # The official code permutes x2/x3 so the C-x-H / C-x-W maps broadcast over the
        # remaining axis; broadcasting the maps directly is the same product without transposes.
        x = torch.cat([x1 * xy, x2 * zx, x3 * zy, self.dw(x4)], dim=1)
        return self.ldw(self.norm2(x))


def call_module(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``: GAB's default way of calling its dilated convs."""
    return module(x)


class GAB(nn.Module):
    """Group aggregation bridge: fuse a deep feature, a skip feature and (optionally) the
    decoder's mask prediction with four dilated depthwise convs, one per channel group."""

    def __init__(self, dim_high: int, dim_low: int, dilations: tuple[int, ...] = (1, 2, 5, 7), with_mask: bool = True,
                 norms: str = "paper") -> None:
        super().__init__()
        self.pre_project = nn.Conv2d(dim_high, dim_low, 1)
        group = dim_low // 2 + int(with_mask)  # half from each feature (+ the mask channel)
        self.groups = nn.ModuleList(
            nn.Sequential(channel_norm(norms, group), nn.Conv2d(group, group, 3, padding=d, dilation=d, groups=group))
            for d in dilations
        )
        fused = group * len(dilations)
        self.tail_conv = nn.Sequential(channel_norm(norms, fused), nn.Conv2d(fused, dim_low, 1))
        # calls each group's dilated conv; training may swap in a faster backward
        # (egeunet.model.fast_convs.dilated_depthwise_conv)
        self.dilated_conv = call_module

    def forward(self, x_high: torch.Tensor, x_low: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x_high = F.interpolate(self.pre_project(x_high), size=x_low.shape[2:], mode="bilinear", align_corners=True)
        parts_high = torch.chunk(x_high, len(self.groups), dim=1)
        parts_low = torch.chunk(x_low, len(self.groups), dim=1)
        extra = [mask] if mask is not None else []
        fused = [self.dilated_conv(conv, norm(torch.cat([h, l, *extra], dim=1)))
                 for (norm, conv), h, l in zip(self.groups, parts_high, parts_low)]
        return self.tail_conv(torch.cat(fused, dim=1))


def norm_then_max_pool(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An encoder stage's tail before its GELU: the norm, then 2x2 max-pooling. Training swaps
    in a version with a faster backward (``egeunet.model.fast_norms.group_norm_max_pool``)."""
    return F.max_pool2d(norm(x), 2, 2)


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


@functools.lru_cache(maxsize=64)
def _bilinear_matrix(n_out: int, n_in: int, device: torch.device | None = None) -> torch.Tensor:
    """(n_out, n_in) weights of 1-D bilinear resizing with align_corners=True, cached per
    device (so a CUDA-graph capture of the training step finds them already on the GPU)."""
    if device is not None and device.type != "cpu":
        return _bilinear_matrix(n_out, n_in).to(device)
    if n_in == 1:
        return torch.ones(n_out, 1)
    pos = torch.arange(n_out, dtype=torch.float64) * ((n_in - 1) / max(n_out - 1, 1))
    lo = pos.floor().long().clamp(max=n_in - 2)
    frac = pos - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m[rows, lo] = 1 - frac
    m[rows, lo + 1] += frac
    return m.float()


class _ResizeWithMatrixBackward(torch.autograd.Function):
    """``F.interpolate`` forward; backward as two matrix products (the resize's transpose)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        ctx.in_hw = (x.shape[2], x.shape[3])
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (h_in, w_in), (h, w) = ctx.in_hw, grad.shape[2:]
        rows, cols = _bilinear_matrix(h, h_in, grad.device), _bilinear_matrix(w, w_in, grad.device)
        return rows.T @ grad @ cols, None, None


def upsample_logits_for_training(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear (align_corners=True) resize of a one-channel map for the training loss.

    Forward: ``F.interpolate`` itself. Backward: the resize's transpose as two matrix
    products, a GEMM instead of ``upsample_bilinear2d_backward``'s scatter (~4x faster on CPU
    for the six full-resolution loss maps of a training step); equal to autograd's gradient to
    float rounding. (Until 2026-11-26 the forward was the two matrix products as well: 6.7 ms
    forward + backward for a step's six maps, against 5.3 ms now; BENCHMARKS.md.) Training only.
    """
    return _ResizeWithMatrixBackward.apply(x, int(size[0]), int(size[1]))


class EGEUNet(nn.Module):
    """Six-stage U-shaped network: three plain conv stages, three GHPA stages, mirrored."""

    def __init__(self, config: EGEUNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or EGEUNetConfig()
        c = cfg.widths
        size, n = cfg.ghpa_size, cfg.norms
        # encoder: stage i halves the resolution (after the norm) except the last
        self.encoder = nn.ModuleList(
            [_conv3x3(cfg.in_channels, c[0]), _conv3x3(c[0], c[1]), _conv3x3(c[1], c[2]),
             GHPA(c[2], c[3], size, n), GHPA(c[3], c[4], size, n), GHPA(c[4], c[5], size, n)]
        )
        self.encoder_norms = nn.ModuleList(stage_norm(n, c[i]) for i in range(5))
        # decoder: deepest first, mirrors the encoder
        self.decoder = nn.ModuleList(
            [GHPA(c[5], c[4], size, n), GHPA(c[4], c[3], size, n), GHPA(c[3], c[2], size, n),
             _conv3x3(c[2], c[1]), _conv3x3(c[1], c[0])]
        )
        self.decoder_norms = nn.ModuleList(stage_norm(n, c[i]) for i in (4, 3, 2, 1, 0))
        # bridges[i] joins encoder stage 5-i with the deeper feature, deepest first
        self.bridges = (
            nn.ModuleList(GAB(c[i + 1], c[i], cfg.gab_dilations, cfg.deep_supervision, n) for i in (4, 3, 2, 1, 0))
            if cfg.bridge else None
        )
        self.aux_heads = (
            # one channel whatever num_classes is, as in the official code: each aux map is also
            # the mask a bridge concatenates to every one of its groups (GAB takes one channel)
            nn.ModuleList(nn.Conv2d(c[i], 1, 1) for i in (4, 3, 2, 1, 0))
            if cfg.deep_supervision else None
        )
        self.head = nn.Conv2d(c[0], cfg.num_classes, 1)
        # resizes the training outputs (the loss maps) to full resolution
        self.upsample_loss_map = upsample_logits_for_training
        self.stage_norm_pool = norm_then_max_pool  # training may swap in a faster backward
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor):
        skips = []
        out = x
        for i in range(5):
            out = F.gelu(self.stage_norm_pool(self.encoder_norms[i], self.encoder[i](out)))
            skips.append(out)
        deep = F.gelu(self.encoder[5](out))  # same resolution as skips[4]

        aux: list[torch.Tensor] = []
        out = deep
        for i in range(5):
            out = self.decoder_norms[i](self.decoder[i](out))
            out = F.gelu(out if i == 0 else _up2(out))  # the deepest decoder keeps its size
            skip = skips[4 - i]
            if self.aux_heads is not None:
                aux_logits = self.aux_heads[i](out)
                if self.training:  # the loss maps; inference needs only the bridges' input
                    aux.append(self.upsample_loss_map(aux_logits, x.shape[2:]))
            else:
                aux_logits = None
            if self.bridges is not None:
                skip = self.bridges[i](deep, skip, aux_logits)
            deep = skip  # the next bridge's high-level input is this bridged skip
            out = out + skip
        if self.training:
            head = self.head(out)
            logits = self.upsample_loss_map(head, [2 * n for n in head.shape[2:]])  # = _up2
            return (aux, logits) if self.aux_heads is not None else logits
        return _up2(self.head(out))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of the final map (eval mode, no deep-supervision outputs)."""
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(x))
        finally:
            self.train(was_training)


class InferenceModel(nn.Module):
    """The exportable inference graph: final map only, as logits or as probabilities."""

    def __init__(self, model: EGEUNet, output: str = "logits") -> None:
        super().__init__()
        if output not in ("logits", "probs"):
            raise ValueError(f"output must be 'logits' or 'probs', not {output!r}")
        self.model = model.eval()
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return torch.sigmoid(logits) if self.output == "probs" else logits


def _init_weights(m: nn.Module) -> None:
    # He-normal on fan-out, as in the official code.
    if isinstance(m, nn.Conv1d):
        m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.out_channels)))
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            m.bias.data.zero_()


def egeunet(**overrides) -> EGEUNet:
    """The paper's EGE-UNet (widths 8-16-24-32-48-64); keyword overrides go to the config."""
    return EGEUNet(EGEUNetConfig(**overrides))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_conv_macs(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 256, 256)) -> int:
    """Multiply-accumulates of every Conv1d/Conv2d call (forward hooks; bias adds excluded)."""
    total = 0

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        per_output = (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        total += out.numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
