"""Experiment (issue #7, not adopted): the GHPA blocks' undilated depthwise 3x3 convs on small maps
as direct inductor kernels (forward, input gradient, weight gradient: sums of nine shifted
products) against oneDNN's convolution forward + backward, batch 8, channels_last, 2 threads,
median of 60, at the step's shapes.

    python docs/experiments/2026-11-27/small_depthwise.py
"""
import os, sys, functools, torch, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "2026-11-26"))
from _common import median_ms
from egeunet.model.fast_norms import DirectKernel, KernelGroup
from egeunet.model.fast_convs import _depthwise_weight_grad
torch.set_num_threads(2)
from egeunet.host_memory import keep_freed_memory; keep_freed_memory()
G = KernelGroup("st")
def dw_fwd(x, w, b, d):
    h, ww = x.shape[2], x.shape[3]
    p = F.pad(x, (d, d, d, d))
    return b.view(1, -1, 1, 1) + sum(p[:, :, i*d:i*d+h, j*d:j*d+ww] * w[:, 0, i, j].view(1, -1, 1, 1) for i in range(3) for j in range(3))
def dw_bwd_input(g, w, d):
    h, ww = g.shape[2], g.shape[3]
    p = F.pad(g, (d, d, d, d)); wf = w.flip(2, 3)
    return sum(p[:, :, i*d:i*d+h, j*d:j*d+ww] * wf[:, 0, i, j].view(1, -1, 1, 1) for i in range(3) for j in range(3))
for (c, s) in [(6, 32), (24,32), (13, 32), (8, 16), (32,16), (17,16), (12, 8), (48, 8), (64,8), (25,8)]:
  d=1
  x = torch.randn(8, c, s, s).contiguous(memory_format=torch.channels_last); w = torch.randn(c, 1, 3, 3).contiguous(memory_format=torch.channels_last); b = torch.randn(c); g = torch.randn(8, c, s, s).contiguous(memory_format=torch.channels_last)
  fwd = DirectKernel(functools.partial(dw_fwd, d=d), G)
  ig = DirectKernel(functools.partial(dw_bwd_input, d=d), G)
  wg = DirectKernel(functools.partial(_depthwise_weight_grad, dilation=d, two_stage=True), G)
  ref = F.conv2d(x, w, b, padding=d, dilation=d, groups=c)
  err = (fwd(x, w, b) - ref).abs().max().item()
  t = median_ms(lambda: (fwd(x, w, b), ig(g, w), wg(x, g)), 60)
  xr = x.detach().requires_grad_(); wr = w.detach().requires_grad_(); br = b.detach().requires_grad_()
  def onednn():
      F.conv2d(xr, wr, br, padding=d, dilation=d, groups=c).backward(g)
  o = median_ms(onednn, 60)
  print(f"{c}x{s}: direct fwd+bwd {t*1e3:.0f} us | oneDNN {o*1e3:.0f} us  ({o/t:.2f}x) err {err:.1e}", G.failed, flush=True)
