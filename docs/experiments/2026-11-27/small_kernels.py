"""Experiment (issue #7): two small changes of 2026-11-27, measured apart.

1. The bridges' dilated depthwise weight gradient as the direct kernel at every size (before:
   eager sums below 64x64, where `torch.compile`'s version had been no faster): each shape of a
   step, median of 50; then whole steps on a fixed batch, before and after alternating in one
   process (ROUNDS rounds of STEPS steps).
2. The first stages' GroupNorm + max-pool backward: its dense full-resolution part as one
   `torch.addcmul` pass instead of a multiply and an in-place add (8 x 8 x 256 x 256), median of 30.

    python docs/experiments/2026-11-27/small_kernels.py [ROUNDS] [STEPS]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import alternate, median_ms, training_setup  # noqa: E402

import egeunet.model.fast_convs as fast_convs  # noqa: E402
from egeunet.train import training_step  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
model, opt, loss_fn, x, y = training_setup()

for c, s in [(9, 64), (13, 32), (17, 16), (25, 8)]:
    for d in (2, 5, 7):
        t = torch.randn(8, c, s, s).contiguous(memory_format=torch.channels_last)
        g = torch.randn_like(t)
        k = fast_convs._weight_grad_kernel(d)
        eager = median_ms(lambda: fast_convs._depthwise_weight_grad(t, g, d), 50)
        print(f"weight gradient 8x{c}x{s}x{s}, dilation {d}: eager {eager:.3f} ms, direct kernel {median_ms(lambda: k(t, g), 50):.3f} ms",
              flush=True)

z = torch.randn(8, 8, 256, 256).contiguous(memory_format=torch.channels_last)
a, b = torch.randn(8, 8, 1, 1), torch.randn(8, 8, 1, 1)


def mul_add():
    out = z * a
    out += b
    return out


print(f"GroupNorm backward's dense part: multiply + add {median_ms(mul_add, 30):.3f} ms, "
      f"addcmul {median_ms(lambda: torch.addcmul(b, z, a), 30):.3f} ms", flush=True)

kernel_at = fast_convs._weight_grad_kernel


def eager_below_64x64(d):  # the rule before
    k = kernel_at(d)
    return lambda t, g: k(t, g) if t.shape[2] * t.shape[3] >= 64 * 64 else fast_convs._depthwise_weight_grad(t, g, d)


VARIANTS = {"eager below 64x64 (before)": eager_below_64x64, "direct kernel at every size (now)": kernel_at}


def use(rule):
    def switch():
        fast_convs._weight_grad_kernel = rule
    return switch


alternate({name: use(rule) for name, rule in VARIANTS.items()}, lambda: training_step(model, opt, x, y, loss_fn),
          ROUNDS, STEPS)
