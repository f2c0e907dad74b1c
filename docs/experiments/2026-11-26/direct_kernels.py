"""Experiment (issue #7): torch.compile's kernels against direct inductor kernels
(`egeunet.model.fast_norms.DirectKernel`: traced with make_fx, compiled by
`torch._inductor.compile`, found by a dict lookup, no dynamo guards or AOTAutograd wrappers).

1. The 37 LayerNorms: `compiled_layer_norm(direct=False)` (torch.compile of layer_norm_2d, as
   egeunet-train ran them before) against `direct=True` (three hand-split kernels), whole
   `egeunet-train` steps on a fixed batch alternating in one process (2 threads, batch 8),
   ROUNDS rounds of STEPS steps, after checking that both give the same loss and gradients.
2. The bridges' dilated depthwise weight gradient alone (8 x 5 x 128 x 128 and 8 x 9 x 64 x 64,
   dilation 5): torch.compile of the plain sums (as before) against direct kernels of the plain
   and of the two-stage sums (now: two-stage at 128 x 128, plain below), median of 60, 3 times.
3. One fused bridge-norm kernel (the four groups' concatenation + LayerNorm in one direct
   kernel set, mask channel shared), whole steps against the per-group norms. Not adopted.

    python docs/experiments/2026-11-26/direct_kernels.py [ROUNDS] [STEPS] [PARTS, default 123]
"""
import functools, statistics, sys, time, types
import torch
import torch.nn.functional as F
from egeunet.model.egeunet import GAB, LayerNorm2d
from egeunet.model.fast_convs import _depthwise_weight_grad
from egeunet.model.fast_norms import (DirectKernel, KernelGroup, _ln_forward, _ln_input_grad, compiled_layer_norm,
                                      per_channel_sum)
from egeunet.train import training_step
from _common import median_ms, training_setup

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
PARTS = sys.argv[3] if len(sys.argv) > 3 else "123"
model, opt, loss_fn, x, y = training_setup()


def ab(name_a, use_a, name_b, use_b):
    grads = []
    for use in (use_a, use_b):
        use(); model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y); loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    worst = max((a - b).abs().max().item() / (a.abs().max().item() + 1e-12) for a, b in zip(grads[0][1], grads[1][1]))
    print(f"loss {grads[0][0]:.6f} / {grads[1][0]:.6f}; largest gradient difference {worst:.1e} (relative to each tensor's largest)")

    def steps(use, n):
        use(); ts = []
        for _ in range(n):
            t = time.perf_counter(); training_step(model, opt, x, y, loss_fn); ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    steps(use_a, 4); steps(use_b, 4)
    ratios = []
    for r in range(ROUNDS):
        a, b = steps(use_a, STEPS), steps(use_b, STEPS)
        ratios.append(a / b)
        print(f"round {r + 1}: {name_a} {a * 1e3:.1f} ms, {name_b} {b * 1e3:.1f} ms per step: {a / b:.3f}x", flush=True)
    print(f"median {statistics.median(ratios):.3f}x ({name_b} against {name_a})\n")


# 1. LayerNorms
norms = [m for m in model.modules() if isinstance(m, LayerNorm2d)]
compiled, direct = compiled_layer_norm(direct=False), compiled_layer_norm(direct=True)


def set_norms(kernel):
    return lambda: [setattr(m, "kernel", kernel) for m in norms]


if "1" in PARTS:
    ab("torch.compile LayerNorms", set_norms(compiled), "direct-kernel LayerNorms", set_norms(direct))
set_norms(direct)()

# 2. the dilated depthwise weight gradient alone
bench = functools.partial(median_ms, n=60)
group = KernelGroup("experiment")
for shape in [(8, 5, 128, 128), (8, 9, 64, 64)] if "2" in PARTS else []:
    a = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    g = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    before = torch.compile(functools.partial(_depthwise_weight_grad, dilation=5), dynamic=False)
    plain = DirectKernel(functools.partial(_depthwise_weight_grad, dilation=5), group)
    two_stage = DirectKernel(functools.partial(_depthwise_weight_grad, dilation=5, two_stage=True), group)
    for _ in range(3):
        with torch.enable_grad():  # as the trainer called its torch.compile'd kernel
            t_before = bench(lambda: before(a, g))
        print(f"dilated weight gradient {shape}: torch.compile of the plain sums {t_before:.3f} ms, direct kernel "
              f"of the plain sums {bench(lambda: plain(a, g)):.3f} ms, of the two-stage sums {bench(lambda: two_stage(a, g)):.3f} ms")
print()

# 3. the four bridge groups' concatenation + LayerNorm fused
G = 4


def _groups(xh, xl, mask):
    return [torch.cat([h, l, mask], 1) for h, l in zip(xh.chunk(G, 1), xl.chunk(G, 1))]


def gab_fwd(xh, xl, mask, *wb, eps):
    outs = [_ln_forward(z, w, b, eps) for z, w, b in zip(_groups(xh, xl, mask), wb[:G], wb[G:])]
    return tuple(o[i] for i in range(3) for o in outs)


def gab_dx(*args):
    grads, (xh, xl, mask), ws, ms, rs = args[:G], args[G:G + 3], args[G + 3:2 * G + 3], args[2 * G + 3:3 * G + 3], args[3 * G + 3:]
    k = xh.shape[1] // G
    dz = [_ln_input_grad(g, z, w, m, r) for g, z, w, m, r in zip(grads, _groups(xh, xl, mask), ws, ms, rs)]
    return (torch.cat([d[:, :k] for d in dz], 1), torch.cat([d[:, k:2 * k] for d in dz], 1),
            functools.reduce(torch.add, [d[:, 2 * k:] for d in dz]))


def gab_dwdb(*args):
    grads, (xh, xl, mask), ms, rs = args[:G], args[G:G + 3], args[G + 3:2 * G + 3], args[2 * G + 3:]
    zs = _groups(xh, xl, mask)
    return (*[per_channel_sum(g * ((z - m) * r)) for g, z, m, r in zip(grads, zs, ms, rs)], *[per_channel_sum(g) for g in grads])


K_F, K_DX, K_DW = (DirectKernel(f, group) for f in (functools.partial(gab_fwd, eps=1e-6), gab_dx, gab_dwdb))


class _BridgeNorms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xh, xl, mask, *wb):
        out = K_F(xh, xl, mask, *wb)
        ctx.save_for_backward(xh, xl, mask, *wb[:G], *out[G:])
        return tuple(out[:G])

    @staticmethod
    def backward(ctx, *grads):
        s = ctx.saved_tensors
        xh, xl, mask, ws, ms, rs = s[0], s[1], s[2], s[3:3 + G], s[3 + G:3 + 2 * G], s[3 + 2 * G:]
        return (*K_DX(*grads, xh, xl, mask, *ws, *ms, *rs), *K_DW(*grads, xh, xl, mask, *ms, *rs))


def fused_forward(self, x_high, x_low, mask=None):
    x_high = F.interpolate(self.pre_project(x_high), size=x_low.shape[2:], mode="bilinear", align_corners=True)
    norms_ = [n for n, _ in self.groups]
    normed = _BridgeNorms.apply(x_high, x_low, mask, *(n.weight for n in norms_), *(n.bias for n in norms_))
    return self.tail_conv(torch.cat([self.dilated_conv(conv, z) for (_, conv), z in zip(self.groups, normed)], dim=1))


bridges = [m for m in model.modules() if isinstance(m, GAB)]


def plain_bridges():
    for m in bridges:
        m.__dict__.pop("forward", None)


def fused_bridges():
    for m in bridges:
        m.forward = types.MethodType(fused_forward, m)


if "3" in PARTS:
    ab("per-group bridge norms", plain_bridges, "fused bridge norms", fused_bridges)
