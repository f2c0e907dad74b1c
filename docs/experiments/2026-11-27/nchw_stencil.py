"""Experiment (issue #7, not adopted): the bridges' dilated depthwise 3x3 conv on NCHW memory as
an inductor kernel of nine shifted products (forward, input gradient, weight gradient), against
oneDNN's channels_last forward, at the first two bridges' shapes; each median of 30, 2 threads.

    python docs/experiments/2026-11-27/nchw_stencil.py
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
    out = b.view(1, -1, 1, 1) + sum(p[:, :, i*d:i*d+h, j*d:j*d+ww] * w[:, 0, i, j].view(1, -1, 1, 1) for i in range(3) for j in range(3))
    return out
for (c, s) in [(5, 128), (9, 64)]:
  for d in (1, 2, 5, 7):
    x = torch.randn(8, c, s, s); w = torch.randn(c, 1, 3, 3); b = torch.randn(c); g = torch.randn(8, c, s, s)
    fwd = DirectKernel(functools.partial(dw_fwd, d=d), G)
    wg = DirectKernel(functools.partial(_depthwise_weight_grad, dilation=d, two_stage=True), G)
    ref = F.conv2d(x, w, b, padding=d, dilation=d, groups=c)
    err = (fwd(x, w, b) - ref).abs().max().item()
    wf = w.flip(2, 3)
    t_f = median_ms(lambda: fwd(x, w, b), 30); t_ig = median_ms(lambda: fwd(g, wf, b), 30); t_wg = median_ms(lambda: wg(x, g), 30)
    xc, gc = x.contiguous(memory_format=torch.channels_last), g.contiguous(memory_format=torch.channels_last)
    wc = w.contiguous(memory_format=torch.channels_last)
    o_f = median_ms(lambda: F.conv2d(xc, wc, b, padding=d, dilation=d, groups=c), 30)
    print(f"{c}x{s} d{d}: NCHW stencil fwd {t_f:.3f} inpgrad {t_ig:.3f} wgrad {t_wg:.3f} | oneDNN CL fwd {o_f:.3f}  err {err:.1e}", G.failed, flush=True)
