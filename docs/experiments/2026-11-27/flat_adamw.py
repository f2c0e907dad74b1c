"""Experiment (issue #7): AdamW over one flat buffer (`egeunet.flat_adamw.FlatAdamW`) against
PyTorch's fused AdamW over the 314 parameter tensors, in `egeunet-train`'s step.

1. Same updates: both from the same weights, a few steps on the same batches; max |difference|.
2. `torch.profiler`: the optimizer's share of a step (step, zero_grad, the gradient adds).
3. Whole steps, two model copies alternating in one process (ROUNDS rounds of STEPS steps).

    python docs/experiments/2026-11-27/flat_adamw.py [ROUNDS] [STEPS]
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import alternate, training_setup  # noqa: E402

from egeunet.flat_adamw import FlatAdamW  # noqa: E402
from egeunet.train import training_step  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
model, opt, loss_fn, x, y = training_setup()
flat_model = copy.deepcopy(model)
flat_opt = FlatAdamW(flat_model.parameters(), lr=1e-3, weight_decay=1e-2)
pairs = {"fused AdamW, 314 tensors (before)": (model, opt), "FlatAdamW, one buffer (now)": (flat_model, flat_opt)}

g = torch.Generator().manual_seed(1)
for i in range(3):
    xb, yb = torch.randn(x.shape, generator=g).contiguous(memory_format=torch.channels_last), (torch.rand(y.shape, generator=g) > 0.5).float()
    losses = [training_step(m, o, xb, yb, loss_fn) for m, o in pairs.values()]
    diff = max((a - b).abs().max().item() for a, b in zip(model.parameters(), flat_model.parameters()))
    print(f"step {i}: losses {losses[0]:.6f} / {losses[1]:.6f}, max |weight difference| {diff:.3g}", flush=True)

from torch.profiler import ProfilerActivity, profile  # noqa: E402

for name, (m, o) in pairs.items():
    for _ in range(3):
        training_step(m, o, x, y, loss_fn)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            training_step(m, o, x, y, loss_fn)
    ka = {k.key: k for k in prof.key_averages()}
    parts = {k: v.cpu_time_total / 5e3 for k, v in ka.items() if k.startswith("Optimizer.")}
    adds = ka.get("aten::add_")
    print(f"{name}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(parts.items()))
          + (f", aten::add_ {adds.count // 5} calls {adds.self_cpu_time_total / 5e3:.2f} ms" if adds else ""), flush=True)

current = {}


def use(name):
    return lambda: current.update(pair=pairs[name])


alternate({name: use(name) for name in pairs}, lambda: training_step(*current["pair"], x, y, loss_fn), ROUNDS, STEPS)
