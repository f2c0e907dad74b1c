"""Experiment (issue #7): the GHPA blocks' weight maps as compiled kernel pairs
(`egeunet.model.fast_maps`, in `egeunet-train` since this experiment) against each block's own
code (before), and against maps that cost nothing (frozen: computed once, no gradient; not a
training option, the bound of what any change to the maps can save).

Whole `egeunet-train` steps on a fixed batch (2 threads, batch 8, every lever on), the variants
alternating in one process, ROUNDS rounds of STEPS steps each.

    python docs/experiments/2026-11-27/ghpa_maps.py [ROUNDS] [STEPS]
"""
import functools
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import alternate, training_setup  # noqa: E402

from egeunet.model.egeunet import GHPA  # noqa: E402
from egeunet.train import training_step  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
model, opt, loss_fn, x, y = training_setup()
blocks = [m for m in model.modules() if isinstance(m, GHPA)]
fused = {id(b): b.attention_maps for b in blocks}  # what egeunet-train installed
frozen_maps = {}


def frozen(block, c, h, w):
    if (id(block), c, h, w) not in frozen_maps:
        with torch.no_grad():
            frozen_maps[id(block), c, h, w] = GHPA.attention_maps(block, c, h, w)
    return frozen_maps[id(block), c, h, w]


VARIANTS = {
    "each block's own code (before)": lambda b: functools.partial(GHPA.attention_maps, b),
    "compiled kernel pairs (now)": lambda b: fused[id(b)],
    "frozen maps (bound)": lambda b: functools.partial(frozen, b),
}


def use(name):
    def switch():
        for b in blocks:
            b.attention_maps = VARIANTS[name](b)
    return switch


alternate({name: use(name) for name in VARIANTS}, lambda: training_step(model, opt, x, y, loss_fn), ROUNDS, STEPS)
