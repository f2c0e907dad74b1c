"""A faster backward for the group aggregation bridges' dilated depthwise convolutions (training).

oneDNN's CPU backward of a depthwise 3x3 convolution with dilation 2, 5 or 7 is slow: at the
first bridge's shape (8 x 5 x 128 x 128, channels_last) ~3.5 ms per forward + backward, against
~1.1 ms without dilation; 2-3x slower than written out at every bridge's shape down to 16x16
(micro-benchmarks, 2026-11-26). Its two parts are cheap when written out:
- the input gradient of a stride-1, same-padded convolution is the same depthwise convolution
  of the output gradient with the kernel rotated by 180 degrees (oneDNN's fast forward kernel);
- the weight gradient is nine sums of shifted products per channel, one direct inductor
  kernel (``egeunet.model.fast_norms.DirectKernel``) with two-stage sums: 0.98 -> 0.66 ms at
  8 x 5 x 128 x 128, 0.27 -> 0.22 ms at 8 x 9 x 64 x 64 against ``torch.compile`` of the plain
  sums; 0.27 -> 0.10 ms at 8 x 13 x 32 x 32 and 0.12 -> 0.03 ms at 8 x 17 x 16 x 16 against the
  eager sums (BENCHMARKS.md); eager if compiling fails, as for the LayerNorms.
Same mathematics (tested against autograd in tests/test_fast_training.py). Used for every
dilated (>= 2) depthwise 3x3 convolution while gradients are recorded; undilated ones keep
oneDNN's backward, which is faster.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from egeunet.model.egeunet import GAB
from egeunet.model.fast_norms import DirectKernel, KernelGroup, per_channel_sum


def _depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, dilation: int,
                           two_stage: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) gradients of a depthwise 3x3 convolution, padding = dilation, stride 1.
    ``two_stage``: the sums in the form inductor compiles well (the compiled kernel's)."""
    h, w, d = x.shape[2], x.shape[3], dilation
    padded = F.pad(x, (d, d, d, d))
    total = per_channel_sum if two_stage else (lambda t: t.sum((0, 2, 3)))
    taps = [total(padded[:, :, i * d:i * d + h, j * d:j * d + w] * grad_out) for i in range(3) for j in range(3)]
    return torch.stack(taps, 1).view(-1, 1, 3, 3), total(grad_out)


_WEIGHT_GRAD_KERNELS = KernelGroup("depthwise weight gradient")


@functools.cache  # one kernel per dilation, shared by every bridge, made on first use
def _weight_grad_kernel(dilation: int) -> DirectKernel:
    return DirectKernel(functools.partial(_depthwise_weight_grad, dilation=dilation, two_stage=True),
                        _WEIGHT_GRAD_KERNELS)


class _DilatedDepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int, compiled: bool):
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.compiled = dilation, compiled
        return F.conv2d(x, weight, bias, padding=dilation, dilation=dilation, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        d = ctx.dilation
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)  # often a slice of a concat's gradient
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad_out, weight.flip(2, 3), padding=d, dilation=d, groups=weight.shape[0])
        if ctx.compiled:
            grad_w, grad_b = _weight_grad_kernel(d)(x, grad_out)
        else:
            grad_w, grad_b = _depthwise_weight_grad(x, grad_out, d)
        return grad_x, grad_w, grad_b, None, None


def _is_dilated_depthwise_3x3(conv: nn.Conv2d) -> bool:
    d = conv.dilation[0]
    return (conv.groups == conv.in_channels == conv.out_channels and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.dilation == (d, d) and conv.padding == (d, d) and d >= 2
            and conv.bias is not None and conv.padding_mode == "zeros")


def dilated_depthwise_conv(conv: nn.Conv2d, x: torch.Tensor, compiled: bool = True) -> torch.Tensor:
    """``conv(x)``, with the backward above where it was measured faster, else exactly ``conv(x)``.
    ``compiled=False``: the weight gradient always eager (``egeunet-train --no-compile``)."""
    if (torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and _is_dilated_depthwise_3x3(conv)
            and x.is_contiguous(memory_format=torch.channels_last)):
        return _DilatedDepthwiseConv.apply(x, conv.weight, conv.bias, conv.dilation[0], compiled)
    return conv(x)


def use_written_out_dilated_convs(model: nn.Module, compiled: bool = True) -> None:
    """Route every group aggregation bridge's dilated convs through :func:`dilated_depthwise_conv`."""
    for m in model.modules():
        if isinstance(m, GAB):
            m.dilated_conv = functools.partial(dilated_depthwise_conv, compiled=compiled)
