"""Experiment (issue #7, not adopted): the six one-output-channel 1x1 convs (the deep-supervision
heads and the final head) at >= 64x64 with their backward as one direct kernel (input gradient
= gradient x weight, weight/bias gradients as two-stage sums) instead of oneDNN's, whose
backward costs ~1 ms per call at 8 x 8 x 128 x 128 in a step (torch.profiler). Checks the loss
and gradients, then whole steps on a fixed batch, the two alternating in one process.

    python docs/experiments/2026-11-27/pointwise_heads.py ROUNDS
"""
import os, sys, statistics, time, functools, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import training_setup
from egeunet.model.fast_norms import DirectKernel, KernelGroup
from egeunet.train import training_step
G = KernelGroup("pw")
def pw1_grads(g, x, w):
    gx = g * w.view(1, -1, 1, 1)
    c = x.shape[1]
    parts = 64
    gw = (x.permute(0, 2, 3, 1).reshape(parts, -1, c) * g.permute(0, 2, 3, 1).reshape(parts, -1, 1)).sum(1).sum(0)
    return gx, gw.view(1, c, 1, 1), g.reshape(parts, -1).sum(1).sum(0, keepdim=True)
K = DirectKernel(pw1_grads, G)
class PW1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return F.conv2d(x, w, b)
    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous(memory_format=torch.channels_last)
        return tuple(K(g, x, w))
model, opt, loss_fn, x, y = training_setup()
convs = [model.head] + [m for m in model.aux_heads]
def plain(conv, t): return F.conv2d(t, conv.weight, conv.bias)
def fast(conv, t):
    if torch.is_grad_enabled() and t.shape[2] * t.shape[3] >= 64 * 64:
        return PW1.apply(t, conv.weight, conv.bias)
    return F.conv2d(t, conv.weight, conv.bias)
def use(f):
    for c in convs: c.forward = functools.partial(f, c)
# check gradients equal
use(plain); torch.manual_seed(0)
l1 = loss_fn(model(x), y); g1 = torch.autograd.grad(l1, list(model.parameters()))
use(fast); l2 = loss_fn(model(x), y); g2 = torch.autograd.grad(l2, list(model.parameters()))
print("loss", l1.item(), l2.item(), "max rel grad diff", max(((a-b).abs().max()/(b.abs().max()+1e-12)).item() for a, b in zip(g2, g1)), G.failed)
def steps(f, n):
    use(f); ts = []
    for _ in range(n):
        t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
for f in (plain, fast): steps(f, 4)
rs = []
for r in range(int(sys.argv[1])):
    a, b = steps(plain, 10), steps(fast, 10); rs.append(a / b)
    print(f"round {r}: {a*1e3:.1f} vs {b*1e3:.1f} ms, {a/b:.3f}", flush=True)
print("median", statistics.median(rs))
