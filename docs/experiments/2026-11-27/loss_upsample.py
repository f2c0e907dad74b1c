"""Experiment (issue #7, not adopted): the six loss maps' upsampling fused into the loss kernels.
Today each low-resolution map is resized to 256x256 by `F.interpolate` (written out, 2 MB per
map at batch 8) and the compiled loss reads them; fused, one direct inductor kernel computes the
loss from the low-resolution maps and another the loss's gradient with respect to the six
upsampled maps, recomputing the upsampling inline (saves writing and re-reading 12 MB). Forward +
backward of the loss part of a step, median of 30, three times; 2 threads, batch 8.

    python docs/experiments/2026-11-27/loss_upsample.py
"""
import os, sys, torch, torch.nn.functional as F  # noqa: E401
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import median_ms
from egeunet.model.fast_norms import DirectKernel, KernelGroup, CompiledKernel
from egeunet.train import deep_supervision_loss
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory; keep_freed_memory()
G = KernelGroup("loss")
sizes = [8, 16, 32, 64, 128]
torch.manual_seed(0)
maps = [torch.randn(8, 1, s, s) for s in sizes] + [torch.randn(8, 1, 128, 128)]
target = (torch.rand(8, 1, 256, 256) > 0.5).float()
def up(m): return F.interpolate(m, size=(256, 256), mode="bilinear", align_corners=True)
def fused_fwd(m0, m1, m2, m3, m4, m5, t):
    return (deep_supervision_loss(([up(m) for m in (m0, m1, m2, m3, m4)], up(m5)), t),)
def fused_grads(m0, m1, m2, m3, m4, m5, t):
    ups = [up(m) for m in (m0, m1, m2, m3, m4, m5)]
    loss, vjp = torch.func.vjp(lambda *u: deep_supervision_loss((list(u[:5]), u[5]), t), *ups)
    return vjp(torch.ones_like(loss))
K1 = DirectKernel(fused_fwd, G); K2 = DirectKernel(fused_grads, G)
with torch.no_grad():
    l1 = K1(*maps, target)[0]; g1 = K2(*maps, target)
print("compile failed:", G.failed)
# reference: current path
C = CompiledKernel(deep_supervision_loss, "loss")
def current():
    ups = [up(m).requires_grad_() for m in maps]
    loss = C((ups[:5], ups[5]), target)
    gs = torch.autograd.grad(loss, ups)
    return loss, gs
l0, g0 = current()
print("loss", l0.item(), l1.item(), "grad diff", max((a - b).abs().max().item() for a, b in zip(g0, g1)))
def fused():
    with torch.no_grad():
        return K1(*maps, target), K2(*maps, target)
for _ in range(3):
    print(f"current (6 interpolates + compiled loss fwd+bwd) {median_ms(current, 30):.2f} ms | fused kernels {median_ms(fused, 30):.2f} ms", flush=True)
up_only = median_ms(lambda: [up(m) for m in maps], 30)
print(f"6 interpolates alone {up_only:.2f} ms")
