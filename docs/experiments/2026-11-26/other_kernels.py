"""Experiment (issue #7): three more places for compiled or direct kernels, none adopted, and the
sampling grid (adopted). Each timed alone, 2 threads, median of 40 (AdamW: 100).

1. The deep-supervision loss (six 8x1x256x256 maps) forward + backward: eager, torch.compile
   (what egeunet-train runs), a direct kernel of its value and gradients
   (`torch.func.grad_and_value`), and both with the sums written as two stages.
2. AdamW over the model's 314 parameter tensors: fused (what egeunet-train runs) against
   `torch.compile(optimizer.step)` (learning rate in a tensor), compile time included.
3. The LayerNorm's per-pixel sums as sums of channel slices instead of a reduction, direct kernels.
4. `F.affine_grid` (batched matrix product) against `egeunet.train.affine_grid` (broadcasting).

    python docs/experiments/2026-11-26/other_kernels.py
"""
import functools, time
import torch
import torch.nn.functional as F
from egeunet.model.fast_norms import CompiledKernel, DirectKernel, KernelGroup, _ln_forward, _ln_input_grad
from _common import median_ms
from egeunet.train import DEEP_SUPERVISION_WEIGHTS, affine_grid, build_model_and_optimizer, deep_supervision_loss, random_affines

torch.set_num_threads(2)
group = KernelGroup("experiment")
bench = median_ms


# 1. the loss
torch.manual_seed(0)
maps = [torch.randn(8, 1, 256, 256, requires_grad=True) for _ in range(6)]
target = (torch.rand(8, 1, 256, 256) > 0.5).float()


def two_stage(t):  # (b, n) -> (b,)
    b, n = t.shape
    return t.reshape(b, 64, n // 64).sum(2).sum(1)


def bce_dice_two_stage(logits, t, smooth=1.0):
    z, t = logits.flatten(1), t.flatten(1)
    bce = two_stage(F.binary_cross_entropy_with_logits(z, t, reduction="none")).sum() / z.numel()
    p = torch.sigmoid(z)
    return bce + (1 - (2 * two_stage(p * t) + smooth) / (two_stage(p) + two_stage(t) + smooth)).mean()


def loss_two_stage(outputs, t):
    aux, final = outputs
    loss = bce_dice_two_stage(final, t)
    for w, a in zip(DEEP_SUPERVISION_WEIGHTS, aux):
        loss = loss + w * bce_dice_two_stage(a, t)
    return loss


def direct_loss(loss_fn):
    def flat(*args):
        return loss_fn((list(args[:5]), args[5]), args[6])

    kernel = DirectKernel(lambda *a: (lambda gv: (gv[1], *gv[0]))(torch.func.grad_and_value(flat, argnums=tuple(range(6)))(*a)), group)

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            value, *grads = kernel(*args)
            ctx.save_for_backward(*grads)
            return value

        @staticmethod
        def backward(ctx, g):
            return (*(g * x for x in ctx.saved_tensors), None)

    return lambda outputs, t: Loss.apply(*outputs[0], outputs[1], t)


def run(loss_fn):
    return torch.autograd.grad(loss_fn((maps[:5], maps[5]), target), maps)


ref = run(deep_supervision_loss)
for name, f in (("eager", deep_supervision_loss), ("torch.compile (egeunet-train)", CompiledKernel(deep_supervision_loss, "loss")),
                ("direct value and gradients", direct_loss(deep_supervision_loss)),
                ("torch.compile, two-stage sums", CompiledKernel(loss_two_stage, "loss")),
                ("direct, two-stage sums", direct_loss(loss_two_stage))):
    err = max((a - b).abs().max().item() for a, b in zip(run(f), ref))
    print(f"loss, {name}: {bench(lambda: run(f)):.3f} ms forward + backward (largest gradient difference {err:.1e})", flush=True)

# 2. AdamW
model, opt, _ = build_model_and_optimizer()
params = list(model.parameters())
for p in params:
    p.grad = torch.randn_like(p)
print(f"AdamW, fused: {bench(opt.step, 100):.3f} ms per step ({len(params)} tensors)")
compiled_opt = torch.optim.AdamW(params, lr=torch.tensor(1e-3), weight_decay=1e-2, foreach=False)
step = torch.compile(compiled_opt.step)
t = time.perf_counter(); step(); first = time.perf_counter() - t
print(f"AdamW, torch.compile(step): {bench(step, 100):.3f} ms per step, first call {first:.0f} s", flush=True)


# 3. LayerNorm sums as channel-slice sums
def slice_sum(t):
    out = t[:, 0:1]
    for i in range(1, t.shape[1]):
        out = out + t[:, i:i + 1]
    return out


def fwd_slices(x, w, b, eps: float):
    c = x.shape[1]
    mean = slice_sum(x) / c
    centred = x - mean
    rstd = torch.rsqrt(slice_sum(centred * centred) / c + eps)
    return centred * rstd * w[:, None, None] + b[:, None, None], mean, rstd


def dx_slices(grad, x, w, mean, rstd):
    c = x.shape[1]
    xhat = (x - mean) * rstd
    g = grad * w[:, None, None]
    return rstd * (g - slice_sum(g) / c - xhat * (slice_sum(g * xhat) / c))


for shape in [(8, 5, 128, 128), (8, 9, 64, 64), (8, 20, 128, 128)]:
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    dy = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(shape[1]), torch.randn(shape[1])
    f1, f2 = (DirectKernel(functools.partial(f, eps=1e-6), group) for f in (_ln_forward, fwd_slices))
    d1, d2 = DirectKernel(_ln_input_grad, group), DirectKernel(dx_slices, group)
    _, m, r = f1(x, w, b)
    print(f"LayerNorm {shape}: forward {bench(lambda: f1(x, w, b)):.3f} ms as a reduction, {bench(lambda: f2(x, w, b)):.3f} ms as "
          f"slice sums; input gradient {bench(lambda: d1(dy, x, w, m, r)):.3f} / {bench(lambda: d2(dy, x, w, m, r)):.3f} ms", flush=True)

# 4. the sampling grid
theta = random_affines(8, torch.Generator().manual_seed(0))
err = (affine_grid(theta, 256, 256) - F.affine_grid(theta, [8, 3, 256, 256], align_corners=False)).abs().max().item()
print(f"sampling grid 8x256x256: F.affine_grid {bench(lambda: F.affine_grid(theta, [8, 3, 256, 256], align_corners=False)):.3f} ms, "
      f"broadcast {bench(lambda: affine_grid(theta, 256, 256)):.3f} ms (largest difference {err:.1e})")
