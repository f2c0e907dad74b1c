"""Experiment (issue #7, not adopted): each GHPA block's three map products and its concatenation
as one direct kernel forward and one backward (the maps' gradients as batch sums inside it),
instead of three multiplies, a concatenation and their autograd backward. Checks the loss and
gradients, then whole steps on a fixed batch, the two alternating in one process (6 rounds).

    python docs/experiments/2026-11-27/gate_concat.py
"""
import os
import sys, statistics, time, functools, torch
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import training_setup
from egeunet.model.egeunet import GHPA
from egeunet.model.fast_norms import DirectKernel, KernelGroup
from egeunet.train import training_step
G = KernelGroup("gate")
def gate_fwd(x1, x2, x3, d4, xy, zx, zy):
    return torch.cat([x1 * xy, x2 * zx, x3 * zy, d4], dim=1)
def gate_bwd(g, x1, x2, x3, xy, zx, zy):
    c = x1.shape[1]
    g1, g2, g3 = g[:, :c], g[:, c:2 * c], g[:, 2 * c:3 * c]
    return (g1 * xy, g2 * zx, g3 * zy, g[:, 3 * c:].contiguous(memory_format=torch.channels_last),
            (g1 * x1).sum(0, keepdim=True), (g2 * x2).sum((0, 3), keepdim=True), (g3 * x3).sum((0, 2), keepdim=True))
KF, KB = DirectKernel(gate_fwd, G), DirectKernel(gate_bwd, G)
class Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x1, x2, x3, d4, xy, zx, zy):
        ctx.save_for_backward(x1, x2, x3, xy, zx, zy)
        return KF(x1, x2, x3, d4, xy, zx, zy)
    @staticmethod
    def backward(ctx, g):
        return tuple(KB(g.contiguous(memory_format=torch.channels_last), *ctx.saved_tensors))
def fwd_gate(self, x):
    x = self.norm1(x)
    x1, x2, x3, x4 = torch.chunk(x, 4, dim=1)
    xy, zx, zy = self.attention_maps(x1.shape[1], x1.shape[2], x1.shape[3])
    return self.ldw(self.norm2(Gate.apply(x1, x2, x3, self.dw(x4), xy, zx, zy)))
model, opt, loss_fn, x, y = training_setup()
blocks = [m for m in model.modules() if isinstance(m, GHPA)]
def use(on):
    for b in blocks:
        if on: b.forward = functools.partial(fwd_gate, b)
        else: b.__dict__.pop("forward", None)
use(False); torch.manual_seed(0)
l1 = loss_fn(model(x), y); g1 = torch.autograd.grad(l1, list(model.parameters()))
use(True); l2 = loss_fn(model(x), y); g2 = torch.autograd.grad(l2, list(model.parameters()))
print("loss", l1.item(), l2.item(), "max rel grad diff", max(((a-b).abs().max()/(b.abs().max()+1e-12)).item() for a, b in zip(g2, g1)), G.failed)
def steps(on, n):
    use(on); ts = []
    for _ in range(n):
        t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
steps(False, 3); steps(True, 3)
rs = []
for r in range(6):
    a, b = steps(False, 10), steps(True, 10); rs.append(a / b)
    print(f"plain {a*1e3:.1f} ms, gate kernel {b*1e3:.1f} ms, {a/b:.3f}", flush=True)
print("median", statistics.median(rs))
