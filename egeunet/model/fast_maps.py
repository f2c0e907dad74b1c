"""The GHPA blocks' weight maps as compiled kernels (CPU training).

Each GHPA block turns three small learnable parameters into three weight maps: a bilinear
resize to the feature size, a depthwise conv, GELU and a pointwise conv per map. These maps do
not depend on the input, so per training step they are 18 tiny batch-1 computations of many
small operator calls forward and backward (36 oneDNN convolutions each way, each with a fixed
cost of tens of microseconds whatever the size). Per block they are one small function of 15 parameter tensors: inductor
compiles it, and its gradient (``torch.func.vjp``), into one forward and one backward kernel
(``egeunet.model.fast_norms.DirectKernel``), the convolutions written out as sums of products
and the resizes as matrix products, so that they fuse. Blocks of the same shape share their
kernels. Whole training steps ~1.03x (BENCHMARKS.md). Same mathematics (equal to the blocks'
own autograd to float rounding, tested).

Evaluation and export never get here (gradients off: each block's own code), nor does anything
if compiling fails (each block's own code, with one warning).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from egeunet.model.egeunet import GHPA, _bilinear_matrix
from egeunet.model.fast_norms import DirectKernel, KernelGroup


# --- the maps, written for inductor (no annotations: make_fx would copy them into the graph) --

def _depthwise3x3(x, weight, bias):
    """(1, c, h, w) depthwise 3x3 conv, padding 1, as nine shifted products."""
    h, w = x.shape[2], x.shape[3]
    p = F.pad(x, (1, 1, 1, 1))
    taps = (p[:, :, i:i + h, j:j + w] * weight[:, 0, i, j].view(1, -1, 1, 1) for i in range(3) for j in range(3))
    return bias.view(1, -1, 1, 1) + sum(taps)


def _depthwise3(x, weight, bias):
    """(1, c, n) depthwise conv1d with kernel 3, padding 1, as three shifted products."""
    n = x.shape[2]
    p = F.pad(x, (1, 1))
    return bias.view(1, -1, 1) + sum(p[:, :, j:j + n] * weight[:, 0, j].view(1, -1, 1) for j in range(3))


def _pointwise(x, weight, bias):
    """(1, c, ...) 1x1 conv (weight (o, c, 1[, 1])) as a broadcast product summed over c."""
    w = weight.reshape(weight.shape[0], weight.shape[1])
    out = bias.view(-1, 1) + (w[:, :, None] * x.reshape(x.shape[1], -1)[None]).sum(1)
    return out.view(1, weight.shape[0], *x.shape[2:])


PARAMS_PER_BLOCK = 15


def block_parameters(block: GHPA) -> list[nn.Parameter]:
    """The 15 tensors one block's maps are made from, in :func:`ghpa_maps`'s order."""
    tensors = []
    for params, conv in ((block.params_xy, block.conv_xy), (block.params_zx, block.conv_zx), (block.params_zy, block.conv_zy)):
        tensors += [params, conv[0].weight, conv[0].bias, conv[2].weight, conv[2].bias]
    return tensors


def ghpa_maps(pxy, xy_dw_w, xy_dw_b, xy_pw_w, xy_pw_b, pzx, zx_dw_w, zx_dw_b, zx_pw_w, zx_pw_b,
              pzy, zy_dw_w, zy_dw_b, zy_pw_w, zy_pw_b, rows, cols):
    """One block's (xy, zx, zy) maps, as ``GHPA.attention_maps`` makes them, from the block's
    :func:`block_parameters`; ``rows`` (h, h0) and ``cols`` (w, w0) are the bilinear resize
    (align_corners=True) of the parameters' (h0, w0) to the feature map's (h, w) as matrices
    (``egeunet.model.egeunet._bilinear_matrix``): as products they compile in a fraction of the
    time inductor takes for its resize, whose backward is a scatter, and run faster."""
    xy = _pointwise(F.gelu(_depthwise3x3(rows @ pxy @ cols.T, xy_dw_w, xy_dw_b)), xy_pw_w, xy_pw_b)
    zx = _pointwise(F.gelu(_depthwise3((pzx @ rows.T)[0], zx_dw_w, zx_dw_b)), zx_pw_w, zx_pw_b)
    zy = _pointwise(F.gelu(_depthwise3((pzy @ cols.T)[0], zy_dw_w, zy_dw_b)), zy_pw_w, zy_pw_b)
    return xy, zx[:, :, :, None], zy[:, :, None, :]


def _ghpa_maps_vjp(*tensors_and_grads):
    """The gradients of :func:`ghpa_maps`'s 15 parameter tensors, given all its inputs and its
    maps' gradients."""
    n = PARAMS_PER_BLOCK
    resize = tensors_and_grads[n:n + 2]
    _, vjp = torch.func.vjp(lambda *tensors: ghpa_maps(*tensors, *resize), *tensors_and_grads[:n])
    return vjp(tuple(tensors_and_grads[n + 2:]))


class _GHPAMaps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels, rows, cols, *tensors):
        ctx.kernels = kernels
        ctx.save_for_backward(rows, cols, *tensors)
        return tuple(kernels[0](*tensors, rows, cols))

    @staticmethod
    def backward(ctx, *grads):  # an unused map's gradient arrives as zeros (materialised by autograd)
        rows, cols, *tensors = ctx.saved_tensors
        return (None, None, None, *ctx.kernels[1](*tensors, rows, cols, *(g.contiguous() for g in grads)))


class FusedGHPAMaps:
    """Makes the GHPA blocks' maps with one compiled kernel pair per block shape while gradients
    are recorded on the CPU; the block's own code otherwise (evaluation, export) or if compiling
    fails."""

    def __init__(self) -> None:
        self.group = KernelGroup("GHPA weight maps")
        # one kernel per input layout (DirectKernel): blocks of the same shape share theirs
        self.kernels = (DirectKernel(ghpa_maps, self.group), DirectKernel(_ghpa_maps_vjp, self.group))

    def __call__(self, block: GHPA, c: int, h: int, w: int):
        if (self.group.failed is None and torch.is_grad_enabled() and block.params_xy.device.type == "cpu"
                and block.params_zx.shape[2] == block.params_zy.shape[2] == c):  # always, as GHPA builds them
            rows = _bilinear_matrix(h, block.params_xy.shape[2])
            cols = _bilinear_matrix(w, block.params_xy.shape[3])
            return _GHPAMaps.apply(self.kernels, rows, cols, *block_parameters(block))
        return GHPA.attention_maps(block, c, h, w)


def use_fused_ghpa_maps(model: nn.Module) -> FusedGHPAMaps:
    """Route every GHPA block's ``attention_maps`` of ``model`` through one :class:`FusedGHPAMaps`."""
    fused = FusedGHPAMaps()
    for block in model.modules():
        if isinstance(block, GHPA):
            block.attention_maps = functools.partial(fused, block)
    return fused
