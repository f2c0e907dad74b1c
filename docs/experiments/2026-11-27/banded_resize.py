"""Experiment (issue #7): the six loss maps' resize backward as banded gathers (one direct
kernel, `egeunet.model.fast_resize`, in `egeunet-train` since this experiment) against the two
dense matrix products (`egeunet.model.egeunet.upsample_logits_for_training`, before it).

1. Each map alone (8..128 -> 256, batch 8): the backward only, median of 30.
2. The six maps forward + backward, median of 30.
3. Whole `egeunet-train` steps on a fixed batch (2 threads, batch 8, every lever on), the two
   alternating in one process, ROUNDS rounds of STEPS steps each.

    python docs/experiments/2026-11-27/banded_resize.py [ROUNDS] [STEPS]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import alternate, median_ms, training_setup  # noqa: E402

from egeunet.model.egeunet import _bilinear_matrix, upsample_logits_for_training  # noqa: E402
from egeunet.model.fast_resize import _BACKWARD, resize_band, upsample_logits_banded_backward  # noqa: E402
from egeunet.train import training_step  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
model, opt, loss_fn, x, y = training_setup()

for s in (128, 64, 32, 16, 8):
    g = torch.randn(8, 1, 256, 256)
    r, c = _bilinear_matrix(256, s), _bilinear_matrix(256, s)
    band = resize_band(256, s)
    t_matrix = median_ms(lambda: r.T @ g @ c, 30)
    t_band = median_ms(lambda: _BACKWARD(g, *band, *band), 30)
    print(f"{s:3d} -> 256, band {band[0].shape[1]:2d}: backward {t_matrix:.3f} ms as matrix products, "
          f"{t_band:.3f} ms as banded gathers", flush=True)

VARIANTS = {"matrix products (before)": upsample_logits_for_training, "banded gathers (now)": upsample_logits_banded_backward}
xs = [torch.randn(8, 1, s, s, requires_grad=True) for s in (8, 16, 32, 64, 128, 128)]
gs = [torch.randn(8, 1, 256, 256) for _ in xs]
for name, f in VARIANTS.items():
    t = median_ms(lambda: torch.autograd.backward([f(x, (256, 256)) for x in xs], gs), 30)
    print(f"six maps, {name}: {t:.2f} ms forward + backward", flush=True)


def use(f):
    def switch():
        model.upsample_loss_map = f
    return switch


alternate({name: use(f) for name, f in VARIANTS.items()}, lambda: training_step(model, opt, x, y, loss_fn), ROUNDS, STEPS)
