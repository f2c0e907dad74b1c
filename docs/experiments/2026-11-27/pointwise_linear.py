"""Experiment (issue #7): the 1x1 convolutions on small maps as matrix products (`F.linear` on the
channels_last map viewed as pixels x channels: one GEMM forward, two backward) instead of
oneDNN's convolution, whose fixed cost per call dominates on 8x8 and 16x16 maps.

1. One 1x1 conv, forward + backward, at each shape a training step has (batch 8, 2 threads),
   median of 60: oneDNN convolution vs `F.linear`.
2. Whole `egeunet-train` steps on a fixed batch, alternating in one process (ROUNDS rounds of
   STEPS steps): every 1x1 conv on oneDNN, against those on maps of at most MAX_PIXELS pixels
   as matrix products.

    python docs/experiments/2026-11-27/pointwise_linear.py [ROUNDS] [STEPS]
"""
import functools
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import alternate, median_ms, training_setup  # noqa: E402

from egeunet.train import training_step  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
model, opt, loss_fn, x, y = training_setup()


def as_linear(conv, t):
    return F.linear(t.permute(0, 2, 3, 1), conv.weight.view(conv.out_channels, -1), conv.bias).permute(0, 3, 1, 2)


for cin, cout, s in [(20, 8, 128), (8, 1, 128), (36, 16, 64), (16, 1, 64), (52, 24, 32), (24, 32, 32), (68, 32, 16),
                     (32, 24, 16), (8, 8, 16), (64, 48, 8), (48, 32, 8), (12, 12, 8), (100, 48, 8)]:
    conv = nn.Conv2d(cin, cout, 1).to(memory_format=torch.channels_last)
    t = torch.randn(8, cin, s, s).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(8, cout, s, s).contiguous(memory_format=torch.channels_last)
    a = median_ms(lambda: conv(t).backward(g), 60)
    b = median_ms(lambda: as_linear(conv, t).backward(g), 60)
    print(f"1x1 conv {cin} -> {cout} at {s}x{s}: oneDNN {a * 1e3:.0f} us, F.linear {b * 1e3:.0f} us ({a / b:.2f}x)", flush=True)

pointwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1]
print(f"{len(pointwise)} 1x1 convs in the model", flush=True)


def routed(conv, t, max_pixels):
    if t.shape[2] * t.shape[3] <= max_pixels and torch.is_grad_enabled():
        return as_linear(conv, t)
    return conv._conv_forward(t, conv.weight, conv.bias)


def use(max_pixels):
    def switch():
        for m in pointwise:
            if max_pixels:
                m.forward = functools.partial(routed, m, max_pixels=max_pixels)
            else:
                m.__dict__.pop("forward", None)
    return switch


alternate({"oneDNN everywhere (before)": use(0), "matrix products at <= 16x16": use(256),
           "matrix products at <= 8x8": use(64)},
          lambda: training_step(model, opt, x, y, loss_fn), ROUNDS, STEPS)
