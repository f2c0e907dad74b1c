"""Experiment (issue #7): the six loss maps' resize with F.interpolate's forward and the
matrix backward (`egeunet.model.egeunet.upsample_logits_for_training` since this
experiment), against two matrix products both ways (before it).

1. The six maps alone (8..128 -> 256, batch 8), forward + backward, median of 30.
2. Whole `egeunet-train` steps on a fixed batch (2 threads, batch 8, every lever on), the two
   resizes alternating in one process, ROUNDS rounds of STEPS steps each.

    python docs/experiments/2026-11-26/loss_maps.py [ROUNDS] [STEPS]
"""
import statistics, sys, time
import torch
from egeunet.host_memory import keep_freed_memory
from egeunet.model.egeunet import _bilinear_matrix, upsample_logits_for_training
from egeunet.train import build_model_and_optimizer, training_step

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(2)
keep_freed_memory()


def matrices_both_ways(x, size):  # the function as it was
    return _bilinear_matrix(int(size[0]), x.shape[2]) @ x @ _bilinear_matrix(int(size[1]), x.shape[3]).T


VARIANTS = {"matrix both ways (before)": matrices_both_ways, "interpolate + matrix backward (now)": upsample_logits_for_training}

xs = [torch.randn(8, 1, s, s, requires_grad=True) for s in (8, 16, 32, 64, 128, 128)]
gs = [torch.randn(8, 1, 256, 256) for _ in xs]
for name, f in VARIANTS.items():
    def maps():
        torch.autograd.backward([f(x, (256, 256)) for x in xs], gs)
    for _ in range(5):
        maps()
    ts = []
    for _ in range(30):
        t = time.perf_counter(); maps(); ts.append(time.perf_counter() - t)
    print(f"six maps, {name}: {statistics.median(ts) * 1e3:.2f} ms forward + backward")

torch.manual_seed(0)
model, opt, loss_fn = build_model_and_optimizer()
x = torch.randn(8, 3, 256, 256).contiguous(memory_format=torch.channels_last)
y = (torch.rand(8, 1, 256, 256) > 0.5).float()


def steps(f, n):
    model.upsample_loss_map = f
    ts = []
    for _ in range(n):
        t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


for f in VARIANTS.values():
    steps(f, 4)
ratios = []
for r in range(ROUNDS):
    before, now = (steps(f, STEPS) for f in VARIANTS.values())
    ratios.append(before / now)
    print(f"round {r}: step {before * 1e3:.1f} ms before, {now * 1e3:.1f} ms now, speed-up {before / now:.3f}", flush=True)
print(f"median speed-up {statistics.median(ratios):.3f}")
