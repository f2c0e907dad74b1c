"""Experiment (issue #7): the first stages' GroupNorm + 2x2 max-pool as four direct inductor kernels
(statistics as two-stage sums; normalise + pool keeping an int8 argmax; the backward's sums at
the pooled positions; one dense pass for the input gradient), against
`egeunet.model.fast_norms.group_norm_max_pool` (what egeunet-train runs). Forward + backward at
the two stages' training shapes, checked against autograd, median of 30, twice. Not adopted.

    python docs/experiments/2026-11-26/gn_pool_direct.py
"""
import functools, torch
import torch.nn.functional as F
from _common import median_ms
from egeunet.model.fast_norms import DirectKernel, KernelGroup, group_norm_max_pool
torch.set_num_threads(2)
G = 4
def _stats(z, eps: float):
    n, c, h, w = z.shape
    zz = z.permute(0, 2, 3, 1).reshape(n, 64, (h * w) // 64, G, c // G)
    cnt = h * w * (c // G)
    mean = zz.sum((2, 4)).sum(1) / cnt                      # (n, G)
    cen = zz - mean[:, None, None, :, None]
    var = (cen * cen).sum((2, 4)).sum(1) / cnt
    return mean, torch.rsqrt(var + eps)
def _pool(z, mean, rstd, weight, bias):
    n, c, h, w = z.shape
    m = mean.repeat_interleave(c // G, 1)[:, :, None, None]; r = rstd.repeat_interleave(c // G, 1)[:, :, None, None]
    a = r * weight[None, :, None, None]; sh = bias[None, :, None, None] - m * a
    y = z * a + sh
    win = y.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    vals, idx = win.max(-1)
    return vals.contiguous(memory_format=torch.channels_last), idx.to(torch.int8).contiguous(memory_format=torch.channels_last)
def _sums(dy, z, idx, mean, rstd):
    n, c, h, w = z.shape
    zw = z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    zmax = zw.gather(-1, idx.long()[..., None])[..., 0]
    m = mean.repeat_interleave(c // G, 1)[:, :, None, None]; r = rstd.repeat_interleave(c // G, 1)[:, :, None, None]
    xhat = (zmax - m) * r
    def s(t):  # (n, c, h2, w2) -> (n, c)
        return t.permute(0, 2, 3, 1).reshape(n, 64, -1, c).sum(2).sum(1)
    return s(dy), s(dy * xhat)
def _dense(dy, z, idx, coef, const, rw):
    n, c, h, w = z.shape
    pos = (torch.arange(2, device=z.device)[:, None] * 2 + torch.arange(2, device=z.device)[None, :])  # (2, 2)
    hit = idx.long()[:, :, :, None, :, None] == pos[None, None, None, :, None, :]     # (n, c, h2, 2, w2, 2)
    add = torch.where(hit, (dy * rw[:, :, None, None])[:, :, :, None, :, None], 0.0)
    gz = z.view(n, c, h // 2, 2, w // 2, 2) * coef[:, :, None, None, None, None] + const[:, :, None, None, None, None] + add
    return gz.view(n, c, h, w).contiguous(memory_format=torch.channels_last)
grp = KernelGroup("gn")
KS, KP, KSUM, KD = DirectKernel(functools.partial(_stats, eps=1e-5), grp), DirectKernel(_pool, grp), DirectKernel(_sums, grp), DirectKernel(_dense, grp)
class GNPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, weight, bias):
        mean, rstd = KS(z)
        pooled, idx = KP(z, mean, rstd, weight, bias)
        ctx.save_for_backward(z, idx, mean, rstd, weight)
        return pooled
    @staticmethod
    def backward(ctx, dy):
        z, idx, mean, rstd, weight = ctx.saved_tensors
        n, c, h, w = z.shape
        dy = dy.contiguous(memory_format=torch.channels_last)
        sum_dy, sum_dy_xhat = KSUM(dy, z, idx, mean, rstd)
        cnt = (c // G) * h * w
        s1 = (weight * sum_dy).view(n, G, -1).sum(2) / cnt
        s2 = (weight * sum_dy_xhat).view(n, G, -1).sum(2) / cnt
        coef_z = -rstd * rstd * s2
        const = -rstd * s1 - coef_z * mean
        per = lambda t: t.repeat_interleave(c // G, 1)
        gz = KD(dy, z, idx, per(coef_z), per(const), per(rstd) * weight)
        return gz, sum_dy_xhat.sum(0), sum_dy.sum(0)
for shape in [(8, 8, 256, 256), (8, 16, 128, 128)]:
    torch.manual_seed(0)
    gn = torch.nn.GroupNorm(4, shape[1])
    with torch.no_grad(): gn.weight.uniform_(-1.5, 1.5); gn.bias.uniform_(-0.5, 0.5)
    z = (torch.randn(shape) * 2 + 0.5).contiguous(memory_format=torch.channels_last).requires_grad_()
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).contiguous(memory_format=torch.channels_last)
    ref = F.max_pool2d(gn(z), 2, 2); got = GNPool.apply(z, gn.weight, gn.bias)
    r_grads = torch.autograd.grad(ref, (z, gn.weight, gn.bias), g); g_grads = torch.autograd.grad(got, (z, gn.weight, gn.bias), g)
    print(shape, "forward max |difference| %.1e" % (ref - got).detach().abs().max(), "gradients (input, weight, bias)", ["%.1e" % (a - b).abs().max() for a, b in zip(r_grads, g_grads)])
    tm = functools.partial(median_ms, n=30)
    now = lambda: torch.autograd.grad(group_norm_max_pool(gn, z), (z, gn.weight, gn.bias), g)
    new = lambda: torch.autograd.grad(GNPool.apply(z, gn.weight, gn.bias), (z, gn.weight, gn.bias), g)
    print(shape, "forward + backward: group_norm_max_pool %.2f ms, direct kernels %.2f ms; again %.2f, %.2f" % (tm(now), tm(new), tm(now), tm(new)), flush=True)
